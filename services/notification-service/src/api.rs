//! HTTP handlers: queue e-mails and SMS, list what was sent and what failed, retry a
//! failure.
//!
//! Queuing a message and the dead letters are for admins only ([`Admin`]): an ad hoc
//! message goes to any address, and a retry replays any failed message. The list of
//! notifications is for every signed-in user ([`Caller`]), limited to their own.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json as AxumJson, Router};
use platform::auth::UNAUTHORIZED;
use platform::auth::{Admin, Caller, NOT_ADMIN};
use platform::clock::rfc3339_ms;
use platform::config::KafkaConfig;
use platform::db::Db;
use platform::extract::{Json, Query};
use platform::problem::Problem;
use platform::validate::{self, TextRule};
use serde::{Deserialize, Serialize};
use shared_events::{EmailSendMessage, Event, SmsSendMessage};
use utoipa::openapi::schema::Object as Rule;
use uuid::Uuid;

use crate::domain::Channel;
use crate::handlers::{self, Retried};
use crate::store::{self, Failure, Filter, Notification};

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service's database.
    pub db: Db,
    /// Kafka: its topic prefix, taken off a failure's topic before it goes back through
    /// the outbox.
    pub kafka: KafkaConfig,
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(paths(send_email, send_sms, list, failed, retry),
    tags((name = "notifications", description = "E-mail and SMS, what was sent and what failed")))]
pub struct ApiDoc;

/// The routes of `/api/emails`, `/api/sms` and `/api/notifications`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/emails/send", post(send_email))
        .route("/api/sms/send", post(send_sms))
        .route("/api/notifications", get(list))
        .route("/api/notifications/failed", get(failed))
        .route("/api/notifications/failed/{id}/retry", post(retry))
        .with_state(state)
}

/// `POST /api/emails/send` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"from": "shop@example.com", "to": "kim+fail@example.com", "subject": "Hello", "body": "Hi"}))]
struct SendEmailRequest {
    #[schema(schema_with = email_rule)]
    from: String,
    #[schema(schema_with = email_rule)]
    to: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    body: String,
}

// The rules the handlers apply, as the document states them.
fn email_rule() -> Rule {
    validate::EMAIL.schema()
}

fn phone_rule() -> Rule {
    validate::PHONE.schema()
}

fn text_rule() -> Rule {
    SMS_TEXT.schema()
}

fn channel_rule() -> Rule {
    validate::words_schema(Channel::ALL)
}

/// An SMS text: up to 1,600 characters (ten parts), not blank.
static SMS_TEXT: TextRule = TextRule::new(1..=1600, Some(r"[^ \x00-\x1f\x7f-\x9f]"), "must not be blank");

/// The answer to a queued message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Queued {
    event_id: String,
    status: &'static str,
}

fn address(field: &str, value: &str) -> Result<String, Problem> {
    validate::email_address(value).map(str::to_owned).map_err(|rule| Problem::invalid(field, rule))
}

/// Queues an e-mail on `email.send`. A recipient ending in `+fail` fails every attempt
/// (and lands in the failed list); `+flaky` fails twice, then succeeds.
#[utoipa::path(post, path = "/api/emails/send", tag = "notifications", request_body = SendEmailRequest,
    responses((status = 202, description = "Accepted", body = Queued),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "from or to missing or not an address", body = Problem, content_type = "application/problem+json")))]
async fn send_email(
    _admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<SendEmailRequest>,
) -> Result<Response, Problem> {
    let message = EmailSendMessage {
        from: address("from", &request.from)?,
        to: address("to", &request.to)?,
        subject: request.subject,
        body: request.body,
    };
    queue(&state.db, &message).await
}

/// Puts `message` in the outbox for its topic and answers 202 with its event id.
async fn queue(db: &Db, message: &impl Event) -> Result<Response, Problem> {
    let mut tx = db.begin_write().await?;
    let event_id = tx.publish(message).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, AxumJson(Queued { event_id: event_id.to_string(), status: "QUEUED" }))
        .into_response())
}

/// `POST /api/sms/send` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"to": "+821012345678", "text": "Your order shipped"}))]
struct SendSmsRequest {
    #[schema(schema_with = phone_rule)]
    to: String,
    #[schema(schema_with = text_rule)]
    text: String,
}

/// Queues an SMS on `sms.send`.
#[utoipa::path(post, path = "/api/sms/send", tag = "notifications", request_body = SendSmsRequest,
    responses((status = 202, description = "Accepted", body = Queued),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "to or text breaks a rule", body = Problem, content_type = "application/problem+json")))]
async fn send_sms(
    _admin: Admin,
    State(state): State<AppState>,
    Json(request): Json<SendSmsRequest>,
) -> Result<Response, Problem> {
    let to = validate::phone_number(&request.to).map_err(|rule| Problem::invalid("to", rule))?;
    SMS_TEXT.check(&request.text).map_err(|rule| Problem::invalid("text", rule))?;
    queue(&state.db, &SmsSendMessage { to, text: request.text }).await
}

/// `GET /api/notifications` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only those about this user. A user who is not an admin may name only themselves
    /// (another user is a 403), and sees only their own without it.
    user_id: Option<String>,
    /// Only those about this order.
    order_id: Option<String>,
    /// EMAIL or SMS.
    #[param(schema_with = channel_rule)]
    channel: Option<String>,
}

/// A notification as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct NotificationView {
    id: Uuid,
    /// EMAIL or SMS.
    channel: &'static str,
    recipient: String,
    subject: Option<String>,
    /// WELCOME, ORDER_CONFIRMED, ORDER_CANCELLED or ADHOC.
    kind: &'static str,
    user_id: Option<Uuid>,
    order_id: Option<Uuid>,
    attempts: i32,
    created_at: String,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            channel: n.channel.as_str(),
            recipient: n.recipient,
            subject: n.subject,
            kind: n.kind.as_str(),
            user_id: n.user_id,
            order_id: n.order_id,
            attempts: n.attempts,
            created_at: rfc3339_ms(n.created_at_ms),
        }
    }
}

/// What was sent (simulated: recorded, not mailed). A user sees only the notifications
/// about them (those with their user id: not ad hoc messages, which belong to no user);
/// an admin sees every one, or one user's with `userId`.
#[utoipa::path(get, path = "/api/notifications", tag = "notifications", params(ListQuery),
    responses((status = 200, description = "OK", body = Vec<NotificationView>),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = "userId names another user (for a user who is not an admin)", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "channel is not EMAIL or SMS", body = Problem, content_type = "application/problem+json")))]
async fn list(
    caller: Caller,
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<Response, Problem> {
    let channel = query
        .channel
        .as_deref()
        .map(str::parse::<Channel>)
        .transpose()
        .map_err(|_| Problem::invalid("channel", "must be EMAIL or SMS"))?;
    let parse_id = |text: Option<String>| text.map(|text| text.parse::<Uuid>()).transpose();
    // An id that is not a UUID is nobody's: it matches nothing (not a 422), and so reveals
    // nothing to a user either.
    let (Ok(user_id), Ok(order_id)) = (parse_id(query.user_id), parse_id(query.order_id)) else {
        return Ok(AxumJson(Vec::<NotificationView>::new()).into_response());
    };
    let filter = Filter { user_id: caller.scope(user_id)?, order_id, channel };
    let mut conn = state.db.pool().acquire().await?;
    let found = store::list(&mut conn, &filter, 500).await?;
    Ok(AxumJson(found.into_iter().map(NotificationView::from).collect::<Vec<_>>()).into_response())
}

/// A failure as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct FailureView {
    id: Uuid,
    topic: String,
    partition: Option<i32>,
    offset: Option<i64>,
    dead_letter_topic: String,
    dead_letter_partition: i32,
    dead_letter_offset: i64,
    event_id: Option<String>,
    event_type: Option<String>,
    key: Option<String>,
    payload: Option<String>,
    error: String,
    attempts: i32,
    first_failure_at: Option<String>,
    last_failure_at: Option<String>,
    retried_at: Option<String>,
}

impl From<Failure> for FailureView {
    fn from(f: Failure) -> Self {
        Self {
            id: f.id,
            topic: f.original_topic,
            partition: f.original_partition,
            offset: f.original_offset,
            dead_letter_topic: f.dead_letter_topic,
            dead_letter_partition: f.dead_letter_partition,
            dead_letter_offset: f.dead_letter_offset,
            event_id: f.event_id,
            event_type: f.event_type,
            key: f.message_key,
            payload: f.payload,
            error: f.error,
            attempts: f.attempts,
            first_failure_at: f.first_failure_at,
            last_failure_at: f.last_failure_at,
            retried_at: f.retried_at_ms.map(rfc3339_ms),
        }
    }
}

/// What reached a dead-letter topic of this service, with the error.
#[utoipa::path(get, path = "/api/notifications/failed", tag = "notifications",
    responses((status = 200, description = "OK", body = Vec<FailureView>),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json")))]
async fn failed(_admin: Admin, State(state): State<AppState>) -> Result<Response, Problem> {
    let mut conn = state.db.pool().acquire().await?;
    let found = store::failures(&mut conn).await?;
    Ok(AxumJson(found.into_iter().map(FailureView::from).collect::<Vec<_>>()).into_response())
}

/// Puts a failed message back on its original topic, to be tried again from scratch: as
/// it was (the same event id), through the outbox.
#[utoipa::path(post, path = "/api/notifications/failed/{id}/retry", tag = "notifications",
    params(("id" = String, Path, description = "A failure's id from the failed list")),
    responses((status = 202, description = "Put back on its topic", body = Object,
            example = json!({"id": "…", "status": "REPLAYED", "topic": "email.send"})),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not found", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The failure lacks what its message needs to go back (topic, event id, \
            type or payload)", body = Problem, content_type = "application/problem+json")))]
async fn retry(
    _admin: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("no failed notification {id}"));
    let failure_id: Uuid = id.parse().map_err(|_| not_found())?;
    match handlers::retry(&state.db, &state.kafka, failure_id).await? {
        Retried::Replayed { topic } => {
            let body = serde_json::json!({ "id": id, "status": "REPLAYED", "topic": topic });
            Ok((StatusCode::ACCEPTED, AxumJson(body)).into_response())
        }
        Retried::NotFound => Err(not_found()),
        Retried::Incomplete(missing) => Err(Problem::conflict(format!(
            "failed notification {id} cannot be put back on its topic: {missing}"
        ))),
    }
}
