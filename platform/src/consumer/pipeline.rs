//! The step every partition worker repeats: a batch of one partition's messages in,
//! their effects committed or the failing ones forwarded. It composes the layers around
//! the handler: tracing (`span`), dedupe (`dedupe`), retry and dead letters (`forward`)
//! and the handler metrics.

use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Interrupted;
use super::dedupe;
use super::delivery::Incoming;
use super::forward::{Destination, Forwarder};
use super::handler::{HandlerError, Route, Subscriptions};
use super::span::consume_span;
use crate::clock::now_ms;
use crate::db::{Backend, Db};
use crate::{error_chain, metrics};

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its effects were committed.
    Applied,
    /// It was applied before (a redelivered copy): dropped.
    Duplicate,
    /// It failed and went to the retry topic of its attempt.
    Retried,
    /// It failed for good and went to its dead-letter topic.
    DeadLettered,
}

impl Outcome {
    /// Its `outcome` label in the handler metrics.
    fn label(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::Retried => "retry",
            Self::DeadLettered => "dead_letter",
        }
    }
}

/// What a batch came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Whether it was applied in one transaction (false: all or part of it message by
    /// message).
    pub together: bool,
    /// The outcome of each message, in the batch's order.
    pub outcomes: Vec<Outcome>,
}

/// The handlers of a consumer group with everything around them.
pub(crate) struct Pipeline {
    pub db: Db,
    pub group: String,
    pub routes: Subscriptions,
    pub topic_prefix: String,
    pub forwarder: Forwarder,
}

impl Pipeline {
    /// Applies `batch`, messages of one partition in offset order. On SQLite, a batch of
    /// messages that are all due (none waiting out a retry backoff) goes through ONE
    /// transaction: one dedupe statement, the handlers in order, one outbox write, one
    /// commit. If any of them fails, or the commit does, that transaction rolls back and
    /// each message is applied on its own, so only the failing one is retried or
    /// dead-lettered. A lone message takes the same way, unless the handlers act outside
    /// the database ([`Subscriptions::acting_outside`]). Those have acted for the messages
    /// before a failing one already (sent their mail), so there the transaction keeps
    /// them: it rolls back to a savepoint taken before the failing message and commits,
    /// and only the rest go on their own (unless a statement failed, which leaves the
    /// transaction in doubt). `Err` only when shutdown interrupted.
    ///
    /// On PostgreSQL partitions are applied in parallel, and batches that lock rows of
    /// several aggregates (the wallets of several users) as their events come deadlock
    /// each other; each deadlock stalls both for PostgreSQL's `deadlock_timeout` (1 s).
    /// Measured: 29 sagas/s at saturation with such batches, 126 and 154 (two runs) with a
    /// transaction per message. SQLite has one writer at a time, so no deadlock there. So
    /// on PostgreSQL a batch goes in one transaction only when its handlers lock in one
    /// order ([`Subscriptions::batched_on_postgres`]): it first takes the advisory locks
    /// its handlers name ([`Handler::locks`](super::Handler::locks)), sorted; otherwise
    /// each message has a transaction of its own.
    pub async fn process_batch(
        &self,
        batch: &[rdkafka::message::OwnedMessage],
        shutdown: &CancellationToken,
    ) -> Result<BatchOutcome, Interrupted> {
        let attempts = self.forwarder.retry.max_attempts;
        let incoming: Vec<Incoming<'_>> = batch.iter().map(|m| Incoming::read(m, attempts)).collect();
        let now = now_ms();
        // Alone, a message goes this way too when it need not be looked up first: a
        // transaction without that look-up, and the checked way only if it fails.
        let together = incoming.len() > 1 || !self.routes.acts_outside();
        let batched = match self.db.backend() {
            Backend::Sqlite => true,
            Backend::Postgres => self.routes.batches_on_postgres(),
        };
        let mut outcomes = Vec::with_capacity(incoming.len());
        if together && batched && incoming.iter().all(|m| m.is_due(now)) {
            let topic = &incoming[0].delivery.topic;
            outcomes = self.apply_together(&incoming).await.unwrap_or_default();
            if outcomes.len() == incoming.len() {
                metrics::batch_applied(topic, incoming.len());
                return Ok(BatchOutcome { together: true, outcomes });
            }
            metrics::batch_fell_back(topic);
        }
        for message in &incoming[outcomes.len()..] {
            outcomes.push(self.process(message, shutdown).await?);
        }
        Ok(BatchOutcome { together: false, outcomes })
    }

    /// The messages of `batch` in one transaction, and their outcomes: of all of them, or
    /// with handlers acting outside, of those before the first that failed. `None`
    /// (nothing applied) when the transaction rolled back.
    async fn apply_together(&self, batch: &[Incoming<'_>]) -> Option<Vec<Outcome>> {
        let mut ids = Vec::with_capacity(batch.len());
        // A message that cannot be read fails where it would be applied, as it would alone.
        let mut read = Vec::with_capacity(batch.len());
        for message in batch {
            let route = self.route(message).ok()?;
            ids.push(route.dedupe_id(message).ok()?);
            read.push(route.read(message));
        }
        let mut tx = self.db.begin_write().await.ok()?;
        if self.db.backend() == Backend::Postgres {
            let names: Vec<String> = read.iter().flatten().flat_map(|message| message.locks()).collect();
            tx.lock_names(&names).await.ok()?;
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let outside = self.routes.acts_outside();
        // On PostgreSQL a write runs at once and a key conflict aborts the transaction:
        // there the ids are looked up as they are recorded.
        let new = if outside || self.db.backend() == Backend::Postgres {
            dedupe::claim(&mut tx, &self.group, &ids).await.ok()?
        } else {
            // A copy inside the batch is dropped here. One applied before fails the
            // transaction on its key, at its next read or its commit, and then each
            // message goes the checked way.
            let mut seen = std::collections::HashSet::with_capacity(ids.len());
            let new: Vec<bool> = ids.iter().map(|id| seen.insert(*id)).collect();
            let unseen: Vec<&str> =
                ids.iter().zip(&new).filter(|(_, new)| **new).map(|(id, _)| *id).collect();
            dedupe::record_unseen(&mut tx, &self.group, &unseen).await.ok()?;
            new
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for (index, (message, read)) in batch.iter().zip(read).enumerate() {
            let started = Instant::now();
            let outcome = if new[index] {
                let point = if outside { Some(tx.savepoint().await.ok()?) } else { None };
                let applied = match read {
                    Ok(read) => read.apply(&mut tx).instrument(consume_span(message)).await,
                    Err(error) => Err(error),
                };
                if let Err(error) = applied {
                    // Nothing acted on yet, or a failed statement (the transaction is in
                    // doubt): the whole batch goes message by message.
                    let point = point.filter(|_| index > 0 && !error.is_database())?;
                    tx.rollback_to(point).await.ok()?;
                    let later: Vec<&str> = ids[index..]
                        .iter()
                        .zip(&new[index..])
                        .filter(|(_, new)| **new)
                        .map(|(id, _)| *id)
                        .collect();
                    dedupe::release(&mut tx, &self.group, &later).await.ok()?;
                    break;
                }
                if let Some(point) = point {
                    tx.release(point).await.ok()?;
                }
                Outcome::Applied
            } else {
                Outcome::Duplicate
            };
            outcomes.push((outcome, started.elapsed().as_secs_f64()));
        }
        tx.commit().await.ok()?;
        for (message, (outcome, seconds)) in batch.iter().zip(&outcomes) {
            metrics::handled(&message.delivery.topic, outcome.label(), *seconds);
        }
        Some(outcomes.into_iter().map(|(outcome, _)| outcome).collect())
    }

    /// Applies one message in a transaction of its own, or forwards it to a retry or
    /// dead-letter topic. `Err` only when shutdown interrupted it.
    async fn process(
        &self,
        message: &Incoming<'_>,
        shutdown: &CancellationToken,
    ) -> Result<Outcome, Interrupted> {
        if let Some(due) = message.delivery.not_before_ms {
            let wait = std::time::Duration::from_millis((due - now_ms()).max(0) as u64);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.cancelled() => return Err(Interrupted),
            }
        }
        let span = consume_span(message);
        let started = Instant::now();
        let applied = self.apply_alone(message).instrument(span.clone()).await;
        let seconds = started.elapsed().as_secs_f64();
        // Logs and forwards run inside the span by `instrument`, never by an entered
        // guard: a guard held across an await stays entered on the thread the task left,
        // and tracing's registry then panics in whatever task runs there next.
        async {
            let delivery = &message.delivery;
            let outcome = match applied {
                Ok(outcome) => {
                    if outcome == Outcome::Duplicate {
                        tracing::debug!(topic = %delivery.topic, "duplicate event dropped");
                    }
                    outcome
                }
                Err(failure) => {
                    let error = error_chain(&failure);
                    let forward = self.forwarder.route(message, &failure, &error);
                    let outcome = match forward.destination {
                        Destination::Retry => {
                            tracing::warn!(topic = %delivery.topic, attempt = delivery.attempt, %error, "handler failed, will retry");
                            Outcome::Retried
                        }
                        Destination::DeadLetter => {
                            tracing::error!(topic = %delivery.topic, attempt = delivery.attempt, %error, "message sent to the dead-letter topic");
                            Outcome::DeadLettered
                        }
                    };
                    if self.forwarder.forward(message, &forward, shutdown).await? {
                        match forward.destination {
                            Destination::Retry => metrics::retried(&delivery.topic),
                            Destination::DeadLetter => metrics::dead_lettered(&delivery.topic),
                        }
                    }
                    outcome
                }
            };
            metrics::handled(&delivery.topic, outcome.label(), seconds);
            Ok(outcome)
        }
        .instrument(span)
        .await
    }

    /// Applies one message in a transaction of its own, unless it was applied before.
    async fn apply_alone(&self, message: &Incoming<'_>) -> Result<Outcome, HandlerError> {
        let route = self.route(message)?;
        let id = route.dedupe_id(message)?;
        // A copy of a message that cannot be read is still a copy: it is dropped below.
        let read = route.read(message);
        let mut tx = self.db.begin_write().await?;
        if self.db.backend() == Backend::Postgres
            && self.routes.batches_on_postgres()
            && let Ok(read) = &read
        {
            // As a batch takes them: a transaction that locked rows unnamed could hold one
            // that a batch waits for while it waits for one that batch holds.
            tx.lock_names(&read.locks()).await?;
        }
        if !dedupe::first_time(&mut tx, &self.group, &id).await? {
            tx.rollback().await?;
            return Ok(Outcome::Duplicate);
        }
        read?.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(Outcome::Applied)
    }

    fn route(&self, message: &Incoming<'_>) -> Result<&std::sync::Arc<dyn Route>, HandlerError> {
        let topic = &message.delivery.topic;
        self.routes.route(topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(topic))
    }
}
