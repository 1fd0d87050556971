//! What changed in the view, for the live stream: the projection announces each change
//! once its transaction has committed, and every open stream hears of it.

use tokio::sync::broadcast;
use uuid::Uuid;

use crate::domain::Position;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An order's view changed.
    Order(Uuid),
    /// A dead letter arrived, or came back after a replay.
    DeadLetter(Position),
}

/// The channel changes go out on.
#[derive(Debug, Clone)]
pub struct Changes {
    sender: broadcast::Sender<Change>,
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

impl Changes {
    /// A channel with no listener yet. Its buffer absorbs a burst; a stream that falls
    /// further behind ends, and its client starts again from the current lists.
    pub fn new() -> Self {
        Self { sender: broadcast::channel(8192).0 }
    }

    /// Tells every listener (none listening is fine).
    pub fn announce(&self, change: Change) {
        let _ = self.sender.send(change);
    }

    /// A new listener, hearing of changes from now on.
    pub fn listen(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
