//! What services write: typed handlers, the metadata they get, how they fail, and the
//! table that routes each topic to its handler.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use rdkafka::message::Message;
use shared_events::{Event, headers, topics};
use uuid::Uuid;

use super::delivery::Incoming;
use crate::db::Tx;

/// What a handler knows about the event besides its payload.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// `ce_id`: the event's unique id.
    pub id: Uuid,
    /// `ce_type`, e.g. `order.created.v1`.
    pub event_type: String,
    /// `ce_source`: the producing service.
    pub source: Option<String>,
    /// `ce_time`: when it was committed (RFC 3339).
    pub time: Option<String>,
    /// The topic it was first published on (not the retry topic).
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// 1 on the first delivery, n on the n-th attempt.
    pub attempt: u32,
    /// Whether this is the last attempt: a transient failure now goes to the dead-letter
    /// topic. A handler that waits for something (a wallet not opened yet) decides here
    /// instead, while the decision can still be published.
    pub last_attempt: bool,
    /// Every header of the message, as text.
    pub headers: HashMap<String, String>,
}

/// How a handler failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// It may pass (database busy, a service down): tried again after the backoff.
    #[error("transient failure")]
    Transient(#[source] anyhow::Error),
    /// It never will (the event breaks a rule): straight to the dead-letter topic.
    #[error("permanent failure")]
    Permanent(#[source] anyhow::Error),
}

impl HandlerError {
    /// A permanent failure with a message.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(anyhow::anyhow!("{message}"))
    }

    /// A transient failure with a message.
    pub fn transient(message: impl std::fmt::Display) -> Self {
        Self::Transient(anyhow::anyhow!("{message}"))
    }

    /// Whether a database statement failed (rather than the handler's own rules or a
    /// service it called): its transaction is then in doubt.
    pub(crate) fn is_database(&self) -> bool {
        let (Self::Transient(error) | Self::Permanent(error)) = self;
        error.chain().any(|cause| cause.is::<sqlx::Error>())
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(error.into())
    }
}

/// Applies one kind of event. The effect goes through `tx`, which commits (with any
/// events the handler publishes) only if it returns `Ok`.
#[async_trait]
pub trait Handler<E: Event>: Send + Sync + 'static {
    /// Applies `event`.
    async fn handle(&self, event: E, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError>;

    /// Names every row `handle` may lock for `event` that another transaction of this
    /// group may lock too (`wallet:<user id>`). With [`Subscriptions::batched_on_postgres`]
    /// a batch takes them all, sorted, before its handlers run ([`Tx::lock_names`]), so
    /// batches cannot deadlock however their events are ordered. Other transactions on
    /// those rows (an HTTP handler's) must lock at most one of them, or name them too.
    /// None by default.
    fn locks(&self, _event: &E) -> Vec<String> {
        Vec::new()
    }
}

/// A message as it is on its topic, whatever its payload (it may not even be JSON): what
/// a dead-letter topic holds, and what a read model of every message sees.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The key, as text.
    pub key: Option<String>,
    /// The value, as text (lossy for bytes that are not UTF-8).
    pub payload: Option<String>,
    /// Every header, as text (on a dead-letter topic the `dlt_` ones say where it came
    /// from and why).
    pub headers: HashMap<String, String>,
}

/// Applies messages as they are, unparsed: those of a dead-letter topic (records them,
/// alerts someone), or every message of a topic for a read model.
#[async_trait]
pub trait RawHandler: Send + Sync + 'static {
    /// Applies `message` through `tx`.
    async fn handle(&self, message: RawMessage, tx: &mut Tx) -> Result<(), HandlerError>;
}

/// A handler with its event type erased, so one table can route every topic.
pub(crate) trait Route: Send + Sync {
    /// The id the message's effects are recorded under for deduplication.
    fn dedupe_id(&self, incoming: &Incoming<'_>) -> Result<String, HandlerError>;

    /// Reads the message for its handler, once: a batch asks what it locks before any
    /// message of it is applied.
    fn read<'r>(&'r self, incoming: &Incoming<'_>) -> Result<Box<dyn Readied + 'r>, HandlerError>;
}

/// A message read for its handler.
#[async_trait]
pub(crate) trait Readied: Send {
    /// What its handler names for [`Handler::locks`].
    fn locks(&self) -> Vec<String> {
        Vec::new()
    }

    /// Applies it through `tx`; the caller has made sure it is new, and commits.
    async fn apply(self: Box<Self>, tx: &mut Tx) -> Result<(), HandlerError>;
}

struct Typed<E, H> {
    handler: H,
    event: PhantomData<fn() -> E>,
}

impl<E: Event, H: Handler<E>> Route for Typed<E, H> {
    fn dedupe_id(&self, incoming: &Incoming<'_>) -> Result<String, HandlerError> {
        Ok(event_id(incoming)?.to_string())
    }

    fn read<'r>(&'r self, incoming: &Incoming<'_>) -> Result<Box<dyn Readied + 'r>, HandlerError> {
        let (event, meta) = decode::<E>(incoming)?;
        Ok(Box::new(TypedEvent { handler: &self.handler, event, meta }))
    }
}

/// An event decoded for its handler.
struct TypedEvent<'h, E, H> {
    handler: &'h H,
    event: E,
    meta: EventMeta,
}

#[async_trait]
impl<E: Event, H: Handler<E>> Readied for TypedEvent<'_, E, H> {
    fn locks(&self) -> Vec<String> {
        self.handler.locks(&self.event)
    }

    async fn apply(self: Box<Self>, tx: &mut Tx) -> Result<(), HandlerError> {
        let Self { handler, event, meta } = *self;
        handler.handle(event, &meta, tx).await
    }
}

/// The event of a message, as its current version, with its metadata.
fn decode<E: Event>(incoming: &Incoming<'_>) -> Result<(E, EventMeta), HandlerError> {
    let (meta, version) = event_meta::<E>(incoming)?;
    let payload = incoming.message.payload().ok_or_else(|| HandlerError::permanent("empty message"))?;
    let invalid = |e: serde_json::Error| {
        HandlerError::permanent(format!("payload is not a valid {}: {e}", meta.event_type))
    };
    let event: E = if version == current_version::<E>() {
        serde_json::from_slice(payload).map_err(invalid)?
    } else {
        // An older version, read through the event's one upcaster.
        let mut fields: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(payload).map_err(invalid)?;
        E::upcast(version, &mut fields);
        serde_json::from_value(fields.into()).map_err(invalid)?
    };
    Ok((event, meta))
}

fn event_id(incoming: &Incoming<'_>) -> Result<Uuid, HandlerError> {
    incoming
        .headers
        .get(headers::CE_ID)
        .ok_or_else(|| HandlerError::permanent("no ce_id header"))?
        .parse::<Uuid>()
        .map_err(|e| HandlerError::permanent(format!("ce_id is not a UUID: {e}")))
}

/// The version `E` is published as now.
fn current_version<E: Event>() -> u32 {
    shared_events::name_and_version(E::TYPE).map_or(1, |(_, version)| version)
}

/// The CloudEvents metadata of a message and the version of its type, checked against
/// the versions of `E` this consumer reads: a version it does not know (a newer producer
/// deployed before its consumers) is a permanent failure that names it, so the message
/// waits in the dead-letter topic for a consumer that reads it.
fn event_meta<E: Event>(incoming: &Incoming<'_>) -> Result<(EventMeta, u32), HandlerError> {
    let Incoming { headers, delivery, .. } = incoming;
    let id = event_id(incoming)?;
    let event_type =
        headers.get(headers::CE_TYPE).ok_or_else(|| HandlerError::permanent("no ce_type header"))?;
    let current = current_version::<E>();
    let expected = E::TYPE.rsplit_once(".v").map_or(E::TYPE, |(name, _)| name);
    let versions = format!("{expected}.v{} to v{current}", E::OLDEST_VERSION);
    let version = match shared_events::name_and_version(event_type) {
        Some((name, version)) if name == expected => version,
        _ => {
            return Err(HandlerError::permanent(format!(
                "unknown event type {event_type} on {} (expected {versions})",
                delivery.topic
            )));
        }
    };
    if !(E::OLDEST_VERSION..=current).contains(&version) {
        return Err(HandlerError::permanent(format!(
            "{event_type}: version {version} is not one this consumer reads ({versions})"
        )));
    }
    let meta = EventMeta {
        id,
        event_type: event_type.clone(),
        source: headers.get(headers::CE_SOURCE).cloned(),
        time: headers.get(headers::CE_TIME).cloned(),
        topic: delivery.topic.clone(),
        partition: delivery.partition,
        offset: delivery.offset,
        attempt: delivery.attempt,
        last_attempt: delivery.last_attempt,
        headers: headers.clone(),
    };
    Ok((meta, version))
}

struct Raw<H> {
    handler: H,
    /// Prefixes the position in the dedupe id: `dlt` for dead letters (as ever), `raw` for
    /// a topic read as it is.
    marker: &'static str,
}

impl<H: RawHandler> Route for Raw<H> {
    /// Keyed by position, not by ce_id: the same event replayed and applied later must
    /// not look processed already, and a message without a ce_id is still a message.
    fn dedupe_id(&self, incoming: &Incoming<'_>) -> Result<String, HandlerError> {
        let Incoming { delivery, .. } = incoming;
        Ok(format!("{}:{}:{}:{}", self.marker, delivery.topic, delivery.partition, delivery.offset))
    }

    fn read<'r>(&'r self, incoming: &Incoming<'_>) -> Result<Box<dyn Readied + 'r>, HandlerError> {
        let Incoming { message, headers, delivery } = incoming;
        let text = |bytes: Option<&[u8]>| bytes.map(|b| String::from_utf8_lossy(b).into_owned());
        let message = RawMessage {
            topic: delivery.topic.clone(),
            partition: delivery.partition,
            offset: delivery.offset,
            key: text(message.key()),
            payload: text(message.payload()),
            headers: headers.clone(),
        };
        Ok(Box::new(RawRead { handler: &self.handler, message }))
    }
}

/// A message as it is, for its handler.
struct RawRead<'h, H> {
    handler: &'h H,
    message: RawMessage,
}

#[async_trait]
impl<H: RawHandler> Readied for RawRead<'_, H> {
    async fn apply(self: Box<Self>, tx: &mut Tx) -> Result<(), HandlerError> {
        self.handler.handle(self.message, tx).await
    }
}

/// Which handler applies the events of which topic.
#[derive(Default, Clone)]
pub struct Subscriptions {
    routes: HashMap<String, Arc<dyn Route>>,
    /// Whether a handler acts outside the database (see [`Subscriptions::acting_outside`]).
    acting_outside: bool,
    /// Whether batches go in one transaction on PostgreSQL too (see
    /// [`Subscriptions::batched_on_postgres`]).
    batched_on_postgres: bool,
}

impl std::fmt::Debug for Subscriptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.routes.keys()).finish()
    }
}

impl Subscriptions {
    /// No subscriptions yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies events of type `E` from their topic with `handler`.
    pub fn on<E: Event>(self, handler: impl Handler<E>) -> Self {
        self.on_topic::<E>(E::TOPIC, handler)
    }

    /// Applies events of type `E` read from `topic` (a dead-letter topic, say) with `handler`.
    pub fn on_topic<E: Event>(mut self, topic: &str, handler: impl Handler<E>) -> Self {
        self.routes.insert(topic.to_owned(), Arc::new(Typed { handler, event: PhantomData::<fn() -> E> }));
        self
    }

    /// Applies what lands in `<topic>.dlt` with `handler`.
    pub fn on_dead_letters(mut self, topic: &str, handler: impl RawHandler) -> Self {
        self.routes.insert(topics::dead_letter(topic), Arc::new(Raw { handler, marker: "dlt" }));
        self
    }

    /// Applies every message of `topic`, unparsed, with `handler`: a read model that
    /// records what passes, whether or not it is a valid event.
    pub fn on_raw(mut self, topic: &str, handler: impl RawHandler) -> Self {
        self.routes.insert(topic.to_owned(), Arc::new(Raw { handler, marker: "raw" }));
        self
    }

    /// Applies what lands in the dead-letter topic of every topic subscribed so far with
    /// `handler`, one handler for them all: the topics are named once, by the `on` calls.
    pub fn on_every_dead_letter(mut self, handler: impl RawHandler) -> Self {
        let route: Arc<dyn Route> = Arc::new(Raw { handler, marker: "dlt" });
        let subscribed: Vec<String> = self
            .routes
            .keys()
            .filter(|topic| !topic.ends_with(topics::DEAD_LETTER_SUFFIX))
            .cloned()
            .collect();
        for topic in subscribed {
            self.routes.insert(topics::dead_letter(&topic), Arc::clone(&route));
        }
        self
    }

    /// Says that the handlers act outside the database too (they send mail): then every
    /// event is looked up among those applied before its handler runs. Otherwise, on
    /// SQLite, a batch is recorded as applied without a look first, in the script of its
    /// effects; a redelivered event then fails that batch's transaction on its key, and the
    /// batch is applied again event by event, each looked up first. That saves the look-up's
    /// round trip to the database on every batch, at the price of running the handlers of
    /// a redelivered batch once in vain: harmless for effects that roll back, not for mail.
    pub fn acting_outside(mut self) -> Self {
        self.acting_outside = true;
        self
    }

    /// Whether [`Subscriptions::acting_outside`] was said.
    pub(crate) fn acts_outside(&self) -> bool {
        self.acting_outside
    }

    /// Says that the handlers' transactions cannot deadlock each other: every row that
    /// two of them may both lock, they lock in one order (the board locks a batch's
    /// orders sorted, just before the commit, through [`crate::db::Tx::deferred`]), or
    /// name in [`Handler::locks`], whose names a batch locks sorted before its handlers
    /// run. Then a batch goes in one transaction on PostgreSQL too, as on SQLite.
    /// Handlers that lock rows as events come (the stock of one order, then of the next)
    /// and do not name them must not say it: two batches would lock in different orders
    /// and wait on each other.
    pub fn batched_on_postgres(mut self) -> Self {
        self.batched_on_postgres = true;
        self
    }

    /// Whether [`Subscriptions::batched_on_postgres`] was said.
    pub(crate) fn batches_on_postgres(&self) -> bool {
        self.batched_on_postgres
    }

    /// The topics subscribed to.
    pub fn topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self.routes.keys().cloned().collect();
        topics.sort();
        topics
    }

    /// Whether there is nothing to consume.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route of `topic` (without the deployment's topic prefix).
    pub(crate) fn route(&self, topic: &str) -> Result<&Arc<dyn Route>, HandlerError> {
        self.routes.get(topic).ok_or_else(|| HandlerError::permanent(format!("no handler for topic {topic}")))
    }
}
