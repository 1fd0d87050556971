//! notification-service: e-mail and SMS (:8085). A welcome mail on `UserSignedUp`, a mail
//! on every `OrderConfirmed` and `OrderCancelled`, and whatever `POST /api/emails/send`
//! and `POST /api/sms/send` queue on `email.send` and `sms.send`. Sending is simulated
//! (`mailer`); refusals are retried, then dead-lettered, and the dead letters recorded.

pub mod api;
pub mod domain;
pub mod handlers;
pub mod mailer;
pub mod messages;
pub mod store;

use axum::Router;
use platform::consumer::Subscriptions;
use platform::db::Migrations;
use platform::{Context, ServiceSpec};
use shared_events::topics;

use crate::handlers::{AdHocEmail, AdHocSms, OrderMail, RecordFailure, Welcome};

/// The recipients, notifications and failures schema.
pub const MIGRATIONS: Migrations =
    Migrations::portable(|| sqlx::migrate!("../../migrations/notification-service"));

/// How the platform starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec::registered("notification-service")
        .migrations(MIGRATIONS)
        .publishes(&[topics::EMAIL_SEND, topics::SMS_SEND])
        .subscriptions(subscriptions)
        // Mail goes out after the saga has ended: 50 ms more before it is sent cost no
        // order anything, and batch ten times the messages per fetch and transaction.
        .fetch_linger(std::time::Duration::from_millis(50))
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
}

/// Every event it sends mail for; a failure on any of them ends in its dead-letter
/// topic, and is recorded from there.
fn subscriptions(context: &Context) -> Subscriptions {
    Subscriptions::new()
        // Mail is sent from the handler: a duplicate must be known before, not at commit.
        .acting_outside()
        // Its handlers add rows whose keys only a copy of the same event shares (copies
        // are claimed before any handler runs), and the welcome names the address it
        // writes: batched on PostgreSQL too.
        .batched_on_postgres()
        .on::<shared_events::UserSignedUp>(Welcome)
        .on::<shared_events::OrderConfirmed>(OrderMail)
        .on::<shared_events::OrderCancelled>(OrderMail)
        .on::<shared_events::EmailSendMessage>(AdHocEmail)
        .on::<shared_events::SmsSendMessage>(AdHocSms)
        .on_every_dead_letter(RecordFailure { group: context.config.consumer_group() })
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(|db| api::router(api::AppState { db, kafka: context.config.kafka.clone() }))
}
