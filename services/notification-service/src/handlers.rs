//! What the notification-service does with each event: send (simulated) and record,
//! exactly once per fact. A refused send is a transient failure: retried with backoff,
//! then dead-lettered; what is dead-lettered is recorded as a failure.

use async_trait::async_trait;
use platform::clock::now_ms;
use platform::consumer::{DeadLetter, DeadLetterHandler, EventMeta, Handler, HandlerError};
use platform::db::Tx;
use shared_events::headers::dead_letter as dlt;
use shared_events::{EmailSendMessage, OrderCancelled, OrderConfirmed, SmsSendMessage, UserSignedUp};
use uuid::Uuid;

use crate::mailer::{self, SendError};
use crate::messages::{self, Mail};
use crate::store::{self, EMAIL, Failure, Notification, SMS};

fn transient(error: SendError) -> HandlerError {
    HandlerError::Transient(error.into())
}

/// An e-mail notification about `about` (one per fact), sent on attempt `attempt`.
fn email(to: &str, mail: Mail, kind: &str, about: Option<String>, attempt: u32) -> Notification {
    Notification {
        id: Uuid::now_v7().to_string(),
        channel: EMAIL.to_owned(),
        recipient: to.to_owned(),
        subject: Some(mail.subject),
        body: mail.body,
        kind: kind.to_owned(),
        user_id: None,
        order_id: None,
        attempts: attempt as i32,
        about,
        created_at_ms: now_ms(),
    }
}

/// Welcome mail on `UserSignedUp`; also learns the user's address for order mails.
pub struct Welcome;

#[async_trait]
impl Handler<UserSignedUp> for Welcome {
    async fn handle(&self, event: UserSignedUp, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let user_id = event.user_id.to_string();
        store::save_recipient(tx.conn(), &user_id, &event.email, &event.name).await?;
        mailer::send_email(&event.email, meta.attempt).map_err(transient)?;
        let mut welcome = email(
            &event.email,
            messages::welcome(&event.name),
            "WELCOME",
            Some(format!("WELCOME:{user_id}")),
            meta.attempt,
        );
        welcome.user_id = Some(user_id);
        store::record(tx.conn(), &welcome).await?;
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
        kind: &str,
        mail: impl FnOnce(&str) -> Mail,
    ) -> Result<(), HandlerError> {
        let user_id = user_id.to_string();
        // The sign-up travels on another topic and may not have arrived yet: try later.
        let (to, name) = store::recipient(tx.conn(), &user_id)
            .await?
            .ok_or_else(|| HandlerError::transient(format!("no address known yet for user {user_id}")))?;
        mailer::send_email(&to, meta.attempt).map_err(transient)?;
        let mut notification =
            email(&to, mail(&name), kind, Some(format!("{kind}:{order_id}")), meta.attempt);
        notification.user_id = Some(user_id);
        notification.order_id = Some(order_id.to_string());
        store::record(tx.conn(), &notification).await?;
        Ok(())
    }
}

#[async_trait]
impl Handler<OrderConfirmed> for OrderMail {
    async fn handle(&self, event: OrderConfirmed, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let mail = |name: &str| messages::order_confirmed(name, event.order_id, event.total_cents);
        Self::send(tx, meta, event.user_id, event.order_id, "ORDER_CONFIRMED", mail).await
    }
}

#[async_trait]
impl Handler<OrderCancelled> for OrderMail {
    async fn handle(&self, event: OrderCancelled, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        let mail = |name: &str| messages::order_cancelled(name, event.order_id, event.reason);
        Self::send(tx, meta, event.user_id, event.order_id, "ORDER_CANCELLED", mail).await
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
        store::record(tx.conn(), &email(&event.to, mail, "ADHOC", None, meta.attempt)).await?;
        Ok(())
    }
}

/// Sends what `POST /api/sms/send` queued.
pub struct AdHocSms;

#[async_trait]
impl Handler<SmsSendMessage> for AdHocSms {
    async fn handle(&self, event: SmsSendMessage, meta: &EventMeta, tx: &mut Tx) -> Result<(), HandlerError> {
        mailer::send_sms(&event.to, meta.attempt).map_err(transient)?;
        let sms = Notification {
            channel: SMS.to_owned(),
            subject: None,
            ..email(&event.to, Mail { subject: String::new(), body: event.text }, "ADHOC", None, meta.attempt)
        };
        store::record(tx.conn(), &sms).await?;
        Ok(())
    }
}

/// Records what this service dead-lettered, for `GET /api/notifications/failed`.
pub struct RecordFailure {
    /// This service's consumer group: other groups' dead letters on a shared topic are theirs.
    pub group: String,
}

#[async_trait]
impl DeadLetterHandler for RecordFailure {
    async fn handle(&self, letter: DeadLetter, tx: &mut Tx) -> Result<(), HandlerError> {
        let header = |name: &str| letter.headers.get(name).cloned();
        if header(dlt::CONSUMER_GROUP).as_deref() != Some(self.group.as_str()) {
            return Ok(());
        }
        let failure = Failure {
            id: Uuid::now_v7().to_string(),
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
        store::record_failure(tx.conn(), &failure).await?;
        Ok(())
    }
}
