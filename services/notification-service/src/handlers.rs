//! What the notification-service does with each event: send (simulated) and record,
//! exactly once per fact. A refused send is a transient failure: retried with backoff,
//! then dead-lettered; what is dead-lettered is recorded as a failure, which [`retry`]
//! puts back on its topic.

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::config::KafkaConfig;
use platform::consumer::{EventMeta, Handler, HandlerError, RawHandler, RawMessage};
use platform::db::{Db, Tx};
use platform::outbox::Republish;
use shared_events::headers::dead_letter as dlt;
use shared_events::{EmailSendMessage, OrderCancelled, OrderConfirmed, SmsSendMessage, UserSignedUp};
use uuid::Uuid;

use crate::domain::{Channel, Kind};
use crate::mailer::{self, SendError};
use crate::messages::{self, Mail};
use crate::store::{self, Failure, Notification};

fn transient(error: SendError) -> HandlerError {
    HandlerError::Transient(error.into())
}

/// An e-mail notification of `kind`, sent on attempt `attempt`; one per `about` (the user
/// or order it is about, see [`Kind::about`]) when given.
fn email(to: &str, mail: Mail, kind: Kind, about: Option<Uuid>, attempt: u32) -> Notification {
    Notification {
        id: Uuid::now_v7(),
        channel: Channel::Email,
        recipient: to.to_owned(),
        subject: Some(mail.subject),
        body: mail.body,
        kind,
        user_id: None,
        order_id: None,
        attempts: attempt as i32,
        about: about.map(|subject| kind.about(subject)),
        created_at_ms: now_ms(),
    }
}

/// Welcome mail on `UserSignedUp`; also learns the user's address for order mails.
pub struct Welcome;

#[async_trait]
impl Handler<UserSignedUp> for Welcome {
    /// The address row it writes, which a welcome of the same user would also write.
    fn locks(&self, event: &UserSignedUp) -> Vec<String> {
        vec![format!("recipient:{}", event.user_id)]
    }

    async fn handle(&self, event: UserSignedUp, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let user_id = event.user_id;
        store::save_recipient(tx, user_id, &event.email, &event.name).await?;
        mailer::send_email(&event.email, meta.attempt).map_err(transient)?;
        let mail = messages::welcome(&event.name);
        let mut welcome = email(&event.email, mail, Kind::Welcome, Some(user_id), meta.attempt);
        welcome.user_id = Some(user_id);
        store::record(tx, &welcome).await?;
        Ok(())
    }
}

/// The mail about a terminal order, to the address learnt from the user's sign-up.
pub struct OrderMail;

impl OrderMail {
    async fn send(
        tx: &mut Tx,
        meta: &EventMeta,
        user_id: Uuid,
        order_id: Uuid,
        kind: Kind,
        mail: impl FnOnce(&str) -> Mail,
    ) -> Result<(), HandlerError> {
        // The sign-up travels on another topic and may not have arrived yet: try later.
        let (to, name) = store::recipient(tx, user_id)
            .await?
            .ok_or_else(|| HandlerError::transient(format!("no address known yet for user {user_id}")))?;
        mailer::send_email(&to, meta.attempt).map_err(transient)?;
        let mut notification = email(&to, mail(&name), kind, Some(order_id), meta.attempt);
        notification.user_id = Some(user_id);
        notification.order_id = Some(order_id);
        store::record(tx, &notification).await?;
        Ok(())
    }
}

#[async_trait]
impl Handler<OrderConfirmed> for OrderMail {
    async fn handle(&self, event: OrderConfirmed, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let mail = |name: &str| messages::order_confirmed(name, event.order_id, event.total_cents);
        Self::send(tx, meta, event.user_id, event.order_id, Kind::OrderConfirmed, mail).await
    }
}

#[async_trait]
impl Handler<OrderCancelled> for OrderMail {
    async fn handle(&self, event: OrderCancelled, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let mail = |name: &str| messages::order_cancelled(name, event.order_id, event.reason);
        Self::send(tx, meta, event.user_id, event.order_id, Kind::OrderCancelled, mail).await
    }
}

/// Sends what `POST /api/emails/send` queued.
pub struct AdHocEmail;

#[async_trait]
impl Handler<EmailSendMessage> for AdHocEmail {
    async fn handle(
        &self,
        event: EmailSendMessage,
        meta: &EventMeta,
        tx: &mut Tx,
    ) -> Result<(), HandlerError> {
        mailer::send_email(&event.to, meta.attempt).map_err(transient)?;
        let mail = Mail { subject: event.subject, body: event.body };
        store::record(tx, &email(&event.to, mail, Kind::AdHoc, None, meta.attempt)).await?;
        Ok(())
    }
}

/// Sends what `POST /api/sms/send` queued.
pub struct AdHocSms;

#[async_trait]
impl Handler<SmsSendMessage> for AdHocSms {
    async fn handle(&self, event: SmsSendMessage, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        mailer::send_sms(&event.to, meta.attempt).map_err(transient)?;
        let text = Mail { subject: String::new(), body: event.text };
        let sms = Notification {
            channel: Channel::Sms,
            subject: None,
            ..email(&event.to, text, Kind::AdHoc, None, meta.attempt)
        };
        store::record(tx, &sms).await?;
        Ok(())
    }
}

/// Records what this service dead-lettered, for `GET /api/notifications/failed`.
pub struct RecordFailure {
    /// This service's consumer group: other groups' dead letters on a shared topic are theirs.
    pub group: String,
}

#[async_trait]
impl RawHandler for RecordFailure {
    async fn handle(&self, letter: RawMessage, tx: &mut Tx) -> Result<(), HandlerError> {
        let header = |name: &str| letter.headers.get(name).cloned();
        if header(dlt::CONSUMER_GROUP).as_deref() != Some(self.group.as_str()) {
            return Ok(());
        }
        let failure = Failure {
            id: Uuid::now_v7(),
            dead_letter_topic: letter.topic.clone(),
            dead_letter_partition: letter.partition,
            dead_letter_offset: letter.offset,
            original_topic: header(dlt::ORIGINAL_TOPIC).unwrap_or_default(),
            original_partition: header(dlt::ORIGINAL_PARTITION).and_then(|p| p.parse().ok()),
            original_offset: header(dlt::ORIGINAL_OFFSET).and_then(|o| o.parse().ok()),
            event_id: header(shared_events::headers::CE_ID),
            event_type: header(shared_events::headers::CE_TYPE),
            message_key: letter.key,
            payload: letter.payload,
            error: header(dlt::ERROR).unwrap_or_default(),
            attempts: header(dlt::ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(1),
            first_failure_at: header(dlt::FIRST_FAILURE_AT),
            last_failure_at: header(dlt::LAST_FAILURE_AT),
            created_at_ms: now_ms(),
            retried_at_ms: None,
        };
        store::record_failure(tx.conn().await?, &failure).await?;
        Ok(())
    }
}

/// What became of a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// There is no such failure.
    NotFound,
    /// The failure lacks what its message needs to be published again: says what.
    Incomplete(&'static str),
    /// Its message is in the outbox again, for `topic` (the stored original topic).
    Replayed {
        /// The topic it goes back to, as the failure names it.
        topic: String,
    },
}

/// Puts the message of failure `id` back on its original topic, as it was (same `ce_id`,
/// type, key and payload), through the outbox: the message and the failure's `retried_at`
/// commit together, so a crash can neither lose the retry nor mark one that never went.
/// Retrying a failure again puts its message back again (a consumer that has applied it
/// drops the copy by its id).
pub async fn retry(db: &Db, kafka: &KafkaConfig, id: Uuid) -> Result<Retried, sqlx::Error> {
    let mut tx = db.begin_write().await?;
    let Some(failure) = store::lock_failure(&mut tx, id).await? else {
        return Ok(Retried::NotFound);
    };
    let message = match republish(&failure, kafka) {
        Ok(message) => message,
        Err(missing) => return Ok(Retried::Incomplete(missing)),
    };
    tx.publish_again(message).await?;
    store::mark_retried(&mut tx, id, now_ms()).await?;
    tx.commit().await?;
    Ok(Retried::Replayed { topic: failure.original_topic })
}

/// The message of `failure` to publish again, or what it lacks.
fn republish(failure: &Failure, kafka: &KafkaConfig) -> Result<Republish, &'static str> {
    if failure.original_topic.is_empty() {
        return Err("its dead letter did not say which topic it came from");
    }
    let event_id = failure.event_id.clone().ok_or("it has no event id (ce_id)")?;
    let event_type = failure.event_type.clone().ok_or("it has no event type (ce_type)")?;
    let payload = failure.payload.clone().ok_or("it has no payload")?;
    // A message without a key was not published by this system (every event is keyed by
    // its aggregate) and was promised no order with any other: any key keeps what it had.
    // Its event id spreads such messages over the partitions, as a missing key did, where
    // an empty key would put them all on one.
    let key = failure.message_key.clone().unwrap_or_else(|| event_id.clone());
    Ok(Republish {
        // The outbox takes the contract's name; the relay puts the prefix back.
        topic: kafka.contract_name(&failure.original_topic).to_owned(),
        event_id,
        event_type,
        key,
        payload,
    })
}
