//! The board's HTTP API under `/api/board`, for admins only ([`Admin`]): the orders with
//! their sagas, one order's timeline, the dead letters and their replay, the figures of
//! the strip on top of the page, and a live stream of changes.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use platform::auth::{Admin, NOT_ADMIN, UNAUTHORIZED};
use platform::clock::{now_ms, rfc3339_ms};
use platform::config::KafkaConfig;
use platform::db::Db;
use platform::dead_letter::{self, ReplayError, Selection};
use platform::extract::Query;
use platform::problem::Problem;
use platform::validate::{self, IntRule, LIST_LIMIT};
use serde::{Deserialize, Serialize};
use utoipa::openapi::Ref;
use utoipa::openapi::schema::{AnyOfBuilder, Object, ObjectBuilder, Schema, Type};
use uuid::Uuid;

use crate::changes::Changes;
use crate::consumers::Consumers;
use crate::domain::{Position, Status};
use crate::record::{DeadLetterRecord, EventRecord};
use crate::stats::{self, Stats};
use crate::store::{self, OrderFilter, OrderRow};
use crate::{Settings, stream};

/// How long after its creation an order counts as stuck when the query does not say.
pub const STUCK_AFTER: Duration = Duration::from_secs(30);

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Board {
    /// The store.
    pub db: Db,
    /// Kafka, for replays.
    pub kafka: KafkaConfig,
    /// The board's settings.
    pub settings: Arc<Settings>,
    /// The changes the stream follows.
    pub changes: Changes,
    /// Calls the services' `/metrics`.
    pub client: reqwest::Client,
    /// Cancelled when the service stops: open streams end.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Where the services' consumer groups stand (none when the readers could not be made).
    pub consumers: Option<Consumers>,
}

/// The OpenAPI description of these routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(orders, order, dead_letters, replay, board_stats, stream::stream),
    tags((name = "board", description = "The saga board: a read model of every saga, built from Kafka (admins only)"))
)]
pub struct ApiDoc;

/// The routes of `/api/board`.
pub fn router(board: Board) -> Router {
    Router::new()
        .route("/api/board/orders", get(orders))
        .route("/api/board/orders/{id}", get(order))
        .route("/api/board/dead-letters", get(dead_letters))
        .route("/api/board/dead-letters/{topic}/{partition}/{offset}/replay", post(replay))
        .route("/api/board/stats", get(board_stats))
        .route("/api/board/stream", get(stream::stream))
        .with_state(board)
}

/// One order's saga in the list and in the stream.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OrderSummary {
    order_id: Uuid,
    user_id: Option<String>,
    #[schema(example = "CONFIRMED")]
    status: String,
    reason: Option<String>,
    /// `FORWARD`, `REJECTED`, `COMPENSATION` or `USER_CANCEL`.
    path: String,
    created_at: Option<String>,
    updated_at: Option<String>,
    /// From created to confirmed, or to cancelled without confirmation.
    saga_millis: Option<i64>,
    #[schema(value_type = Vec<crate::store::StepJson>)]
    steps: serde_json::Value,
    /// The topics of the events that would move it on; empty once it is final.
    waiting_for: Vec<String>,
    /// Not final long after its creation (see the `stuck` filter; 30 s by default).
    stuck: bool,
    trace_id: Option<String>,
    /// How many of its messages are in dead-letter topics.
    dead_letters: i64,
}

impl OrderSummary {
    /// The summary of `row`, stuck if not final `stuck_after_ms` after creation.
    pub fn of(row: OrderRow, stuck_after_ms: i64) -> Self {
        let stuck =
            !row.terminal && row.created_ms.is_some_and(|created| now_ms() - created > stuck_after_ms);
        Self {
            order_id: row.order_id,
            user_id: row.user_id,
            status: row.status.as_str().to_owned(),
            reason: row.reason,
            path: row.path.as_str().to_owned(),
            created_at: row.created_ms.map(rfc3339_ms),
            updated_at: row.updated_ms.map(rfc3339_ms),
            saga_millis: row.saga_ms,
            steps: row.steps,
            waiting_for: row.waiting_for,
            stuck,
            trace_id: row.trace_id,
            dead_letters: row.dead_letters,
        }
    }
}

/// `GET /api/board/orders` filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct OrdersQuery {
    /// Where the orders stand.
    #[param(schema_with = status_rule)]
    status: Option<String>,
    /// A failure reason, e.g. `INSUFFICIENT_FUNDS`.
    reason: Option<String>,
    /// One user's orders.
    user_id: Option<String>,
    /// Only orders not final this many seconds after their creation.
    #[param(schema_with = stuck_rule)]
    stuck: Option<i64>,
    /// At most this many (50 by default).
    #[param(schema_with = limit_rule)]
    limit: Option<i64>,
}

/// `stuck`, in seconds: up to a week.
const STUCK_SECONDS: IntRule = IntRule(1..=604_800);

// The rules the handlers apply, as the document states them.
fn limit_rule() -> Object {
    LIST_LIMIT.schema()
}

fn stuck_rule() -> Object {
    STUCK_SECONDS.schema()
}

fn status_rule() -> Object {
    validate::words_schema(Status::ALL)
}

/// A list's `limit`: `default` when absent.
fn limit(given: Option<i64>, default: i64) -> Result<i64, Problem> {
    LIST_LIMIT.check(given.unwrap_or(default)).map_err(|rule| Problem::invalid("limit", rule))
}

/// The orders, newest first.
#[utoipa::path(get, path = "/api/board/orders", tag = "board", params(OrdersQuery),
    responses((status = 200, description = "OK", body = Vec<OrderSummary>),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A filter out of its range", body = Problem, content_type = "application/problem+json")))]
async fn orders(
    _admin: Admin,
    State(board): State<Board>,
    Query(query): Query<OrdersQuery>,
) -> Result<Json<Vec<OrderSummary>>, Problem> {
    let status = query
        .status
        .as_deref()
        .map(Status::from_str)
        .transpose()
        .map_err(|e| Problem::invalid("status", e))?;
    let limit = limit(query.limit, 50)?;
    let stuck_after_ms = query
        .stuck
        .map(|seconds| STUCK_SECONDS.check(seconds).map(|seconds| seconds * 1000))
        .transpose()
        .map_err(|rule| Problem::invalid("stuck", format!("{rule} seconds")))?;
    let filter = OrderFilter {
        status,
        reason: query.reason.filter(|r| !r.is_empty()),
        user_id: query.user_id.filter(|u| !u.is_empty()),
        stuck_before_ms: stuck_after_ms.map(|after| now_ms() - after),
        limit,
    };
    let mut conn = board.db.pool().acquire().await?;
    let rows = store::orders(&mut conn, &filter).await?;
    let after = stuck_after_ms.unwrap_or(STUCK_AFTER.as_millis() as i64);
    Ok(Json(rows.into_iter().map(|row| OrderSummary::of(row, after)).collect()))
}

/// One message in an order's timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct TimelineEntry {
    /// `EVENT` (on its topic) or `DEAD_LETTER` (on a dead-letter topic).
    kind: &'static str,
    topic: String,
    partition: i32,
    offset: i64,
    event_id: Option<String>,
    event_type: Option<String>,
    source: Option<String>,
    /// `ce_time`, or for a dead letter its last failure.
    at: Option<String>,
    /// Time since the entry before it in the timeline, dead letters included.
    hop_millis: Option<i64>,
    trace_id: Option<String>,
    key: Option<String>,
    /// The payload: JSON, or the text as it was when it is not JSON.
    payload: serde_json::Value,
    headers: std::collections::BTreeMap<String, String>,
    /// An event id seen earlier in the timeline (the outbox publishes at least once).
    duplicate: bool,
    /// The dead letter it was replayed from.
    replayed_from: Option<String>,
    error: Option<String>,
    consumer_group: Option<String>,
    attempts: Option<i32>,
    /// The services whose consumer group has committed past it (events only; absent when
    /// Kafka did not say).
    consumed_by: Option<Vec<&'static str>>,
}

/// One order's saga with every message of it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct OrderTimeline {
    /// The order's view (absent when nothing but invalid messages was seen of it).
    #[serde(flatten)]
    #[schema(schema_with = summary_or_none)]
    summary: Option<OrderSummary>,
    /// The order's trace in Zipkin.
    trace_url: Option<String>,
    timeline: Vec<TimelineEntry>,
}

/// A flattened optional summary: its fields, or none of them (no `orderId`).
fn summary_or_none() -> Schema {
    let none = ObjectBuilder::new()
        .property("orderId", ObjectBuilder::new().schema_type(Type::Null))
        .description(Some("No summary: nothing but invalid messages was seen of the order"));
    AnyOfBuilder::new().item(Ref::from_schema_name("OrderSummary")).item(none).build().into()
}

fn payload_value(payload: Option<&str>) -> serde_json::Value {
    match payload {
        None => serde_json::Value::Null,
        Some(text) => {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
        }
    }
}

fn entry(event: &EventRecord, kind: &'static str) -> TimelineEntry {
    TimelineEntry {
        kind,
        topic: event.position.topic.clone(),
        partition: event.position.partition,
        offset: event.position.offset,
        event_id: event.event_id.clone(),
        event_type: event.event_type.clone(),
        source: event.source.clone(),
        at: event.time_ms.map(rfc3339_ms),
        hop_millis: None,
        trace_id: event.trace_id.clone(),
        key: event.key.clone(),
        payload: payload_value(event.payload.as_deref()),
        headers: event.headers.clone(),
        duplicate: false,
        replayed_from: event.replayed_from.clone(),
        error: None,
        consumer_group: None,
        attempts: None,
        consumed_by: None,
    }
}

/// The timeline: events and dead letters by time, each event's copies marked.
fn timeline(events: Vec<EventRecord>, letters: Vec<DeadLetterRecord>) -> Vec<TimelineEntry> {
    let mut entries: Vec<(Option<i64>, TimelineEntry)> =
        events.iter().map(|event| (event.time_ms, entry(event, "EVENT"))).collect();
    entries.extend(letters.iter().map(|letter| {
        let mut dead = entry(&letter.message, "DEAD_LETTER");
        dead.at = letter.last_failure_at.clone();
        dead.error = letter.error.clone();
        dead.consumer_group = letter.consumer_group.clone();
        dead.attempts = letter.attempts;
        (letter.last_failure_ms, dead)
    }));
    entries.sort_by(|(a, x), (b, y)| {
        a.unwrap_or(i64::MAX)
            .cmp(&b.unwrap_or(i64::MAX))
            .then_with(|| (&x.topic, x.partition, x.offset).cmp(&(&y.topic, y.partition, y.offset)))
    });
    let mut ids = std::collections::HashSet::new();
    let mut previous: Option<i64> = None;
    entries
        .into_iter()
        .map(|(time, mut entry)| {
            if entry.kind == "EVENT" {
                entry.duplicate = entry.event_id.as_ref().is_some_and(|id| !ids.insert(id.clone()));
            }
            entry.hop_millis = time.zip(previous).map(|(now, before)| (now - before).max(0));
            previous = time.or(previous);
            entry
        })
        .collect()
}

/// One order's timeline: every message of its saga, with payloads and headers.
#[utoipa::path(get, path = "/api/board/orders/{id}", tag = "board", params(("id" = Uuid, Path)),
    responses((status = 200, description = "OK", body = OrderTimeline),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Nothing seen of this order", body = Problem, content_type = "application/problem+json")))]
async fn order(
    _admin: Admin,
    State(board): State<Board>,
    Path(raw): Path<String>,
) -> Result<Response, Problem> {
    let not_found = || Problem::not_found(format!("nothing seen of order {raw}"));
    let order_id: Uuid = raw.parse().map_err(|_| not_found())?;
    let mut conn = board.db.pool().acquire().await?;
    let row = store::order(&mut conn, order_id).await?;
    let events = store::events_of(&mut conn, &order_id.to_string()).await?;
    let letters = store::dead_letters_of(&mut conn, &order_id.to_string()).await?;
    if row.is_none() && events.is_empty() && letters.is_empty() {
        return Err(not_found());
    }
    let positions: Vec<Position> = events.iter().map(|e| e.position.clone()).collect();
    let summary = row.map(|row| OrderSummary::of(row, STUCK_AFTER.as_millis() as i64));
    let trace_url = summary
        .as_ref()
        .and_then(|s| s.trace_id.as_ref())
        .zip(board.settings.zipkin_ui.as_ref())
        .map(|(trace, ui)| format!("{ui}/traces/{trace}"));
    let mut timeline = timeline(events, letters);
    if let Some(consumers) = &board.consumers {
        match consumers.of(positions).await {
            Ok(mut passed) => {
                for entry in timeline.iter_mut().filter(|e| e.kind == "EVENT") {
                    let position = Position {
                        topic: entry.topic.clone(),
                        partition: entry.partition,
                        offset: entry.offset,
                    };
                    entry.consumed_by = passed.remove(&position);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the consumer groups' offsets"),
        }
    }
    Ok(Json(OrderTimeline { summary, trace_url, timeline }).into_response())
}

/// Where a replayed dead letter came back.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PositionView {
    topic: String,
    partition: i32,
    offset: i64,
}

impl From<Position> for PositionView {
    fn from(p: Position) -> Self {
        Self { topic: p.topic, partition: p.partition, offset: p.offset }
    }
}

/// A message of a dead-letter topic with what its headers say.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterView {
    /// `<topic>/<partition>/<offset>`.
    id: String,
    topic: String,
    partition: i32,
    offset: i64,
    original_topic: Option<String>,
    original_partition: Option<i32>,
    original_offset: Option<i64>,
    consumer_group: Option<String>,
    error: Option<String>,
    attempts: Option<i32>,
    first_failure_at: Option<String>,
    last_failure_at: Option<String>,
    key: Option<String>,
    order_id: Option<Uuid>,
    event_type: Option<String>,
    /// The value as text, as it was.
    payload: Option<String>,
    headers: std::collections::BTreeMap<String, String>,
    /// Where it came back each time it was replayed.
    replays: Vec<PositionView>,
}

impl DeadLetterView {
    /// The view of `letter`, replayed to `replays`.
    pub fn of(letter: DeadLetterRecord, replays: Vec<Position>) -> Self {
        let id = letter.id();
        let original = letter.original;
        let message = letter.message;
        Self {
            id,
            topic: letter.position.topic,
            partition: letter.position.partition,
            offset: letter.position.offset,
            original_topic: original.as_ref().map(|o| o.topic.clone()),
            original_partition: original.as_ref().map(|o| o.partition),
            original_offset: original.as_ref().map(|o| o.offset),
            consumer_group: letter.consumer_group,
            error: letter.error,
            attempts: letter.attempts,
            first_failure_at: letter.first_failure_at,
            last_failure_at: letter.last_failure_at,
            key: message.key,
            order_id: message.order_id,
            event_type: message.event_type,
            payload: message.payload,
            headers: message.headers,
            replays: replays.into_iter().map(PositionView::from).collect(),
        }
    }
}

/// The views of `letters` with their replays.
pub async fn dead_letter_views(
    conn: &mut sqlx::AnyConnection,
    letters: Vec<DeadLetterRecord>,
) -> Result<Vec<DeadLetterView>, sqlx::Error> {
    let ids: Vec<String> = letters.iter().map(DeadLetterRecord::id).collect();
    let mut replays = store::replays_of(conn, &ids).await?;
    Ok(letters
        .into_iter()
        .map(|letter| {
            let replayed = replays.remove(&letter.id()).unwrap_or_default();
            DeadLetterView::of(letter, replayed)
        })
        .collect())
}

/// `GET /api/board/dead-letters` options.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct DeadLettersQuery {
    /// At most this many (100 by default).
    #[param(schema_with = limit_rule)]
    limit: Option<i64>,
}

/// What reached the dead-letter topics, newest first, with the error and the replays.
#[utoipa::path(get, path = "/api/board/dead-letters", tag = "board", params(DeadLettersQuery),
    responses((status = 200, description = "OK", body = Vec<DeadLetterView>),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "limit out of its range", body = Problem, content_type = "application/problem+json")))]
async fn dead_letters(
    _admin: Admin,
    State(board): State<Board>,
    Query(query): Query<DeadLettersQuery>,
) -> Result<Json<Vec<DeadLetterView>>, Problem> {
    let limit = limit(query.limit, 100)?;
    let mut conn = board.db.pool().acquire().await?;
    let letters = store::dead_letters(&mut conn, limit).await?;
    Ok(Json(dead_letter_views(&mut conn, letters).await?))
}

/// What a replay did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Replayed {
    /// The topic the message went back to.
    replayed_to: String,
}

/// Puts a dead letter back on its original topic, as it was (key, value, event id); it
/// shows among the dead letter's replays once the board reads it there.
#[utoipa::path(post, path = "/api/board/dead-letters/{topic}/{partition}/{offset}/replay", tag = "board",
    params(("topic" = String, Path, description = "The dead-letter topic"), ("partition" = i32, Path), ("offset" = i64, Path)),
    responses((status = 202, description = "Put back on its topic", body = Replayed),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such dead letter", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The dead letter does not say where it came from", body = Problem,
            content_type = "application/problem+json"),
        (status = 503, description = "Kafka did not take it", body = Problem, content_type = "application/problem+json")))]
async fn replay(
    _admin: Admin,
    State(board): State<Board>,
    Path((topic, partition, offset)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<Replayed>), Problem> {
    let not_found = || Problem::not_found(format!("no dead letter {topic}/{partition}/{offset}"));
    let position = Position {
        topic: topic.clone(),
        partition: partition.parse().map_err(|_| not_found())?,
        offset: offset.parse().map_err(|_| not_found())?,
    };
    let mut conn = board.db.pool().acquire().await?;
    let letter = store::dead_letter(&mut conn, &position).await?.ok_or_else(not_found)?;
    drop(conn);
    let replayed_to = letter.original.map(|o| o.topic).ok_or_else(|| {
        Problem::conflict(format!("dead letter {} does not say where it came from", letter.position.topic))
    })?;
    let one = Selection::One { partition: position.partition, offset: position.offset };
    match dead_letter::replay(&board.kafka, &board.kafka.topic(&position.topic), one).await {
        Ok(_) => {
            tracing::info!(dead_letter = %format!("{topic}/{partition}/{offset}"), to = %replayed_to, "replayed");
            Ok((StatusCode::ACCEPTED, Json(Replayed { replayed_to })))
        }
        Err(ReplayError::NoMessage { .. } | ReplayError::NoTopic(_)) => Err(not_found()),
        Err(error) => {
            tracing::warn!(error = %platform::error_chain(&error), "replay failed");
            Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(format!("replay failed: {error}"))))
        }
    }
}

/// The figures of the strip on top of the page.
#[utoipa::path(get, path = "/api/board/stats", tag = "board",
    responses((status = 200, description = "OK", body = Stats),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json")))]
async fn board_stats(_admin: Admin, State(board): State<Board>) -> Result<Json<Stats>, Problem> {
    Ok(Json(stats::gather(&board).await?))
}
