//! `GET /api/board/stream`: every change of the view as a server-sent event, `order` with
//! the order's summary and `dead-letter` with the dead letter. Changes are gathered for a
//! moment and each changed thing is sent once, as it is then: under load an order changes
//! several times in a few milliseconds, and the page wants its state, not each step.
//!
//! A stream that falls behind the changes (or cannot read them) ends: the client
//! reconnects and reads the lists afresh, rather than showing rows that went stale. It
//! ends too when the service stops, so that a stop does not wait for the browser.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use platform::auth::{Admin, NOT_ADMIN, UNAUTHORIZED};
use platform::problem::Problem;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use uuid::Uuid;

use crate::api::{Board, DeadLetterView, OrderSummary, STUCK_AFTER, dead_letter_views};
use crate::changes::Change;
use crate::domain::Position;
use crate::store;

/// How long changes are gathered before they are sent.
const GATHER: Duration = Duration::from_millis(200);

/// The live stream of changes.
#[utoipa::path(get, path = "/api/board/stream", tag = "board",
    responses((status = 200, description = "Server-sent events: `order` (data: an order summary) and \
            `dead-letter` (data: a dead letter), with comment lines to keep the connection open",
            content_type = "text/event-stream", body = StreamData),
        (status = 401, description = UNAUTHORIZED, body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "Bearer"))),
        (status = 403, description = NOT_ADMIN, body = Problem, content_type = "application/problem+json")))]
pub async fn stream(
    _admin: Admin,
    State(board): State<Board>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = board.changes.listen();
    let stopping = board.stopping.clone();
    let events = futures::stream::unfold((board, receiver), |(board, mut receiver)| async move {
        loop {
            let first = match receiver.recv().await {
                Ok(change) => change,
                Err(RecvError::Lagged(missed)) => return fell_behind(missed),
                Err(RecvError::Closed) => return None,
            };
            tokio::time::sleep(GATHER).await;
            let mut changes = vec![first];
            loop {
                match receiver.try_recv() {
                    Ok(change) => changes.push(change),
                    Err(TryRecvError::Lagged(missed)) => return fell_behind(missed),
                    Err(_) => break,
                }
            }
            if changes.contains(&Change::Missed) {
                tracing::info!("changes may have been missed: the stream ends, its client reconnects");
                return None;
            }
            match render(&board, changes).await {
                Ok(events) if !events.is_empty() => {
                    return Some((futures::stream::iter(events.into_iter().map(Ok)), (board, receiver)));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "cannot read the changes: the stream ends, its client reconnects");
                    return None;
                }
            }
        }
    });
    let events = events.flatten().take_until(stopping.cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// Ends a stream that missed changes: its client reconnects and reads the lists again.
fn fell_behind<T>(missed: u64) -> Option<T> {
    tracing::info!(missed, "a stream fell behind the changes: it ends, its client reconnects");
    None
}

/// The events of `changes`: each changed order and dead letter once, as it is now.
async fn render(board: &Board, changes: Vec<Change>) -> Result<Vec<Event>, sqlx::Error> {
    let mut orders = BTreeSet::<Uuid>::new();
    let mut letters = BTreeSet::<Position>::new();
    for change in changes {
        match change {
            Change::Order(id) => {
                orders.insert(id);
            }
            Change::DeadLetter(position) => {
                letters.insert(position);
            }
            Change::Missed => {}
        }
    }
    let mut conn = board.db.pool().acquire().await?;
    let ids: Vec<Uuid> = orders.into_iter().collect();
    let mut events = Vec::new();
    for chunk in ids.chunks(500) {
        for row in store::orders_by_id(&mut conn, chunk).await? {
            let summary = OrderSummary::of(row, STUCK_AFTER.as_millis() as i64);
            events.extend(event("order", &StreamData::Order(&summary)));
        }
    }
    let mut found = Vec::new();
    for position in &letters {
        found.extend(store::dead_letter(&mut conn, position).await?);
    }
    let views: Vec<DeadLetterView> = dead_letter_views(&mut conn, found).await?;
    events.extend(views.iter().filter_map(|view| event("dead-letter", &StreamData::DeadLetter(view))));
    Ok(events)
}

/// What one event of the stream carries as its data, as the document states it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(untagged)]
enum StreamData<'a> {
    /// An `order` event: the order's summary.
    Order(&'a OrderSummary),
    /// A `dead-letter` event: the dead letter.
    DeadLetter(&'a DeadLetterView),
}

fn event(name: &str, data: &StreamData<'_>) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}
