//! The long-running tasks of a service besides its HTTP server (the outbox relay, the
//! consumer), watched: one that ends before it was told to stop, by an error or a panic,
//! is logged once, reported DOWN by `/ready`, and stops the service, which then exits
//! non-zero so that whatever supervises the process (run.sh, compose, Kubernetes) starts
//! it again. A service that keeps answering while nothing relays or consumes is worse
//! than one that restarts.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The watched tasks of one service and how each fares.
#[derive(Debug, Clone, Default)]
pub struct BackgroundTasks {
    states: Arc<Mutex<Vec<TaskState>>>,
    died: CancellationToken,
}

/// One task as `/ready` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// What it is, e.g. `outbox-relay`.
    pub name: &'static str,
    /// Why it died; `None` while it runs (or after it stopped when told to).
    pub failure: Option<String>,
}

/// A watched task that ended before it was told to stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task died: {reason}")]
pub struct TaskDied {
    /// Its name.
    pub task: &'static str,
    /// The error it returned or the panic's message.
    pub reason: String,
}

impl BackgroundTasks {
    /// No tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` on the runtime, watched. It is expected to end only once `stop` is
    /// cancelled; ending any other way (an `Err`, a panic, an `Ok` before `stop`) marks
    /// it failed and fires [`BackgroundTasks::died`].
    pub fn spawn<E, F>(&self, name: &'static str, stop: &CancellationToken, task: F) -> JoinHandle<()>
    where
        E: Display,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        self.lock().push(TaskState { name, failure: None });
        let tasks = self.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let reason = match AssertUnwindSafe(task).catch_unwind().await {
                Ok(Ok(())) if stop.is_cancelled() => return,
                Ok(Ok(())) => "it stopped without being told to".to_owned(),
                Ok(Err(error)) => error.to_string(),
                Err(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
            };
            tasks.record(TaskDied { task: name, reason });
        })
    }

    /// Records that `died` ended for good, logs why (the one line that says so), and
    /// fires [`BackgroundTasks::died`].
    pub fn record(&self, died: TaskDied) {
        tracing::error!(
            task = died.task,
            reason = %died.reason,
            "a background task died: the service stops, to be started again by its supervisor"
        );
        let mut states = self.lock();
        match states.iter_mut().find(|state| state.name == died.task) {
            Some(state) => state.failure = Some(died.reason),
            None => states.push(TaskState { name: died.task, failure: Some(died.reason) }),
        }
        drop(states);
        self.died.cancel();
    }

    /// Completes once a task has died.
    pub async fn died(&self) {
        self.died.cancelled().await;
    }

    /// The first task that died, if one did.
    pub fn first_death(&self) -> Option<TaskDied> {
        self.lock()
            .iter()
            .find_map(|state| Some(TaskDied { task: state.name, reason: state.failure.clone()? }))
    }

    /// Every task and how it fares, in the order they were started.
    pub fn states(&self) -> Vec<TaskState> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TaskState>> {
        // A panic while holding this lock cannot leave the list half-changed: go on.
        self.states.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The text of a panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    async fn within_a_second(tasks: &BackgroundTasks) {
        tokio::time::timeout(Duration::from_secs(1), tasks.died()).await.expect("died fired");
    }

    #[tokio::test]
    async fn a_panic_marks_the_task_down_with_its_message_and_fires_died() {
        let tasks = BackgroundTasks::new();
        let stop = CancellationToken::new();
        tasks.spawn("outbox-relay", &stop, panics()).await.expect("watcher");
        within_a_second(&tasks).await;
        assert_eq!(
            tasks.first_death(),
            Some(TaskDied {
                task: "outbox-relay",
                reason: "panicked: tried to clone a span that already closed".to_owned()
            })
        );
    }

    async fn panics() -> Result<(), String> {
        tokio::task::yield_now().await;
        panic!("tried to clone a span that already closed");
    }

    #[tokio::test]
    async fn an_error_or_an_early_end_is_a_death_but_ending_when_told_is_not() {
        let tasks = BackgroundTasks::new();
        let stop = CancellationToken::new();
        let told = tasks.spawn("told", &stop, async { Ok::<(), String>(()) });
        stop.cancel();
        told.await.expect("watcher");
        assert_eq!(tasks.first_death(), None, "ending after stop is the normal end");
        assert_eq!(tasks.states(), [TaskState { name: "told", failure: None }]);

        let running = CancellationToken::new();
        let consumer =
            tasks.spawn("consumer", &running, async { Err::<(), _>("the worker of t[1] panicked") });
        consumer.await.expect("watcher");
        within_a_second(&tasks).await;
        assert_eq!(tasks.first_death().map(|d| d.reason), Some("the worker of t[1] panicked".to_owned()));

        let early = BackgroundTasks::new();
        early.spawn("relay", &running, async { Ok::<(), String>(()) }).await.expect("watcher");
        within_a_second(&early).await;
        assert_eq!(
            early.first_death().map(|d| d.reason),
            Some("it stopped without being told to".to_owned())
        );
    }

    #[test]
    fn panic_messages_of_both_kinds_are_read() {
        assert_eq!(panic_message(&"static"), "static");
        assert_eq!(panic_message(&String::from("formatted 7")), "formatted 7");
        assert_eq!(panic_message(&42_u8), "a panic without a message");
    }
}
