//! notification-service: e-mail and SMS (:8085). A welcome mail on `UserSignedUp`, a mail
//! on every `OrderConfirmed` and `OrderCancelled`, and whatever `POST /api/emails/send`
//! and `POST /api/sms/send` queue on `email.send` and `sms.send`. Sending is simulated
//! (`mailer`); refusals are retried, then dead-lettered, and the dead letters recorded.

pub mod api;
pub mod handlers;
pub mod mailer;
pub mod messages;
pub mod store;

use axum::Router;
use platform::consumer::Subscriptions;
use platform::db::Migrations;
use platform::{Context, ServiceDefaults, ServiceSpec};
use shared_events::topics;

use crate::handlers::{AdHocEmail, AdHocSms, OrderMail, RecordFailure, Welcome};

/// Name and port from the contract.
pub const DEFAULTS: ServiceDefaults = ServiceDefaults { name: "notification-service", port: 8085 };

/// The recipients, notifications and failures schema.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: || sqlx::migrate!("../../migrations/notification-service"),
    postgres: || sqlx::migrate!("../../migrations/notification-service"),
};

/// The topics it consumes; a failure on any of them ends in its dead-letter topic.
const CONSUMED: [&str; 5] = [
    topics::USER_SIGNED_UP,
    topics::ORDER_CONFIRMED,
    topics::ORDER_CANCELLED,
    topics::EMAIL_SEND,
    topics::SMS_SEND,
];

/// How the platform starts this service.
pub fn spec() -> ServiceSpec {
    ServiceSpec {
        migrations: vec![MIGRATIONS],
        topics: CONSUMED.to_vec(),
        subscriptions,
        api_doc: <api::ApiDoc as utoipa::OpenApi>::openapi,
        ..ServiceSpec::new(DEFAULTS)
    }
}

fn subscriptions(context: &Context) -> Subscriptions {
    let mut subscriptions = Subscriptions::new()
        .on::<shared_events::UserSignedUp>(Welcome)
        .on::<shared_events::OrderConfirmed>(OrderMail)
        .on::<shared_events::OrderCancelled>(OrderMail)
        .on::<shared_events::EmailSendMessage>(AdHocEmail)
        .on::<shared_events::SmsSendMessage>(AdHocSms);
    for topic in CONSUMED {
        subscriptions =
            subscriptions.on_dead_letters(topic, RecordFailure { group: context.config.consumer_group() });
    }
    subscriptions
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and `/metrics`.
pub fn routes(context: &Context) -> Router {
    context.routes_on_db(|db| api::router(api::AppState { db, kafka: context.config.kafka.clone() }))
}
