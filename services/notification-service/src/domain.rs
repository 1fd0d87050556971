//! What a notification is: the channel it goes by and the fact it is about, as stored
//! and shown.

use uuid::Uuid;

platform::text_enum! {
    /// How a notification reaches its recipient.
    pub enum Channel {
        /// An e-mail.
        Email = "EMAIL",
        /// A text message.
        Sms = "SMS",
    }
}

platform::text_enum! {
    /// What a notification is about.
    pub enum Kind {
        /// The welcome after sign-up.
        Welcome = "WELCOME",
        /// An order was confirmed.
        OrderConfirmed = "ORDER_CONFIRMED",
        /// An order was cancelled.
        OrderCancelled = "ORDER_CANCELLED",
        /// Whatever `POST /api/emails/send` or `POST /api/sms/send` asked for.
        AdHoc = "ADHOC",
    }
}

impl Kind {
    /// The fact a notification of this kind about `subject` (a user, an order) stands for,
    /// as stored in `about`: one notification per fact (`WELCOME:<userId>`).
    pub fn about(self, subject: Uuid) -> String {
        format!("{}:{subject}", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_stands_for_one_fact_about_one_subject() {
        let subject = Uuid::now_v7();
        assert_eq!(Kind::Welcome.about(subject), format!("WELCOME:{subject}"));
        assert_ne!(Kind::OrderConfirmed.about(subject), Kind::OrderCancelled.about(subject));
    }
}
