//! The consumers that build the board: every message of the saga topics and of every
//! dead-letter topic is kept as it came, and the view of its order recomputed, in the
//! transaction that records the message as processed (so exactly once, like every
//! consumer here): once per transaction, however many of the order's messages a batch
//! brought. Changes are recorded in the same transaction, and heard once it has
//! committed (see [`Changes`]).

use std::collections::BTreeSet;

use async_trait::async_trait;
use futures::future::BoxFuture;
use platform::config::KafkaConfig;
use platform::consumer::{HandlerError, RawHandler, RawMessage, Subscriptions};
use platform::db::{Deferred, Tx};
use shared_events::topics;

use crate::changes::{Change, Changes};
use crate::domain::Step;
use crate::record::{DeadLetterRecord, EventRecord, parse_position_id};
use crate::store;

/// What a transaction keeps, written just before it commits: its messages (of the saga
/// topics, and replays seen on the others) in one statement, then the views of their
/// orders and of its dead letters' orders, recomputed from one read however many of an
/// order's messages it brought.
#[derive(Default)]
struct Keep {
    events: Vec<EventRecord>,
    orders: BTreeSet<uuid::Uuid>,
}

impl Deferred for Keep {
    fn run(self, tx: &mut Tx) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            store::insert_events(tx, &self.events).await?;
            store::refresh_orders(tx, &self.orders).await
        })
    }
}

/// Keeps the messages of a topic; those of a saga topic move their order's view.
pub struct Events {
    kafka: KafkaConfig,
    changes: Changes,
}

#[async_trait]
impl RawHandler for Events {
    async fn handle(&self, message: RawMessage, tx: &mut Tx) -> Result<(), HandlerError> {
        let topic = self.kafka.contract_name(&message.topic);
        let mut event = EventRecord::read(&message, topic);
        // Contract names throughout the board, as in the dead letters' ids.
        event.replayed_from = event.replayed_from.map(|from| self.kafka.contract_name(&from).to_owned());
        let replayed = event.replayed_from.as_deref().and_then(parse_position_id);
        // Other topics (sign-ups, e-mails) are read only to see replays come back.
        if Step::of_topic(topic).is_none() && replayed.is_none() {
            return Ok(());
        }
        if let Some(order_id) = event.order_id {
            tx.deferred::<Keep>().orders.insert(order_id);
            self.changes.record(tx, Change::Order(order_id));
        }
        if let Some(dead_letter) = replayed {
            self.changes.record(tx, Change::DeadLetter(dead_letter));
        }
        tx.deferred::<Keep>().events.push(event);
        Ok(())
    }
}

/// Keeps the messages of a dead-letter topic.
pub struct DeadLetters {
    kafka: KafkaConfig,
    changes: Changes,
}

#[async_trait]
impl RawHandler for DeadLetters {
    async fn handle(&self, message: RawMessage, tx: &mut Tx) -> Result<(), HandlerError> {
        let mut letter = DeadLetterRecord::read(&message, self.kafka.contract_name(&message.topic));
        if let Some(original) = &mut letter.original {
            original.topic = self.kafka.contract_name(&original.topic).to_owned();
        }
        letter.message.replayed_from =
            letter.message.replayed_from.map(|from| self.kafka.contract_name(&from).to_owned());
        store::insert_dead_letter(tx, &letter).await?;
        if let Some(order_id) = letter.message.order_id {
            tx.deferred::<Keep>().orders.insert(order_id);
            self.changes.record(tx, Change::Order(order_id));
        }
        self.changes.record(tx, Change::DeadLetter(letter.position));
        Ok(())
    }
}

/// Every topic of the system and every dead-letter topic.
pub fn subscriptions(kafka: &KafkaConfig, changes: &Changes) -> Subscriptions {
    // Its transactions lock their orders sorted, at commit (`Keep`): no deadlock.
    let mut subscriptions = Subscriptions::new().batched_on_postgres();
    for topic in topics::ALL {
        subscriptions = subscriptions
            .on_raw(topic, Events { kafka: kafka.clone(), changes: changes.clone() })
            .on_dead_letters(topic, DeadLetters { kafka: kafka.clone(), changes: changes.clone() });
    }
    subscriptions
}
