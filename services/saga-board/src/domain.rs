//! The projection's rules: what an order's saga looks like, given the events seen for it.
//!
//! The events of one order come on ten topics, so they arrive in any order, and a topic
//! may hold the same event twice (the outbox publishes at least once). Everything here is
//! therefore a function of the SET of events seen, ordered by their own `ce_time`, never
//! by arrival: a view rebuilt from the topics in another order is the same view.

use std::cmp::Ordering;
use std::collections::HashSet;

use shared_events::topics;

platform::text_enum! {
    /// Where the order stands, as order-service would say once it has seen what the board saw.
    pub enum Status {
        /// Waiting for stock and payment.
        Pending = "PENDING",
        /// Paid and final (until the user cancels it).
        Confirmed = "CONFIRMED",
        /// The user cancelled it; refund and release under way.
        Cancelling = "CANCELLING",
        /// Final: rejected, unpaid or cancelled by the user.
        Cancelled = "CANCELLED",
    }
}

platform::text_enum! {
    /// Which way the saga went.
    pub enum SagaPath {
        /// Forward only (so far): created, reserved, paid, confirmed.
        Forward = "FORWARD",
        /// Stock was refused: nothing to undo.
        Rejected = "REJECTED",
        /// Payment failed: the reservation was undone.
        Compensation = "COMPENSATION",
        /// The user cancelled a confirmed order: refund, then release.
        UserCancel = "USER_CANCEL",
    }
}

/// A step of the saga: one event type, named by its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// `order.created`.
    Created,
    /// `inventory.rejected`.
    Rejected,
    /// `inventory.reserved`.
    Reserved,
    /// `payment.failed`.
    PaymentFailed,
    /// `payment.completed`.
    Paid,
    /// `order.confirmed`.
    Confirmed,
    /// `order.cancel-requested`.
    CancelRequested,
    /// `payment.refunded`.
    Refunded,
    /// `inventory.released`.
    Released,
    /// `order.cancelled`.
    Cancelled,
}

impl Step {
    /// Every step, in saga order (the order that breaks a tie between equal times).
    pub const ALL: [Step; 10] = [
        Step::Created,
        Step::Rejected,
        Step::Reserved,
        Step::PaymentFailed,
        Step::Paid,
        Step::Confirmed,
        Step::CancelRequested,
        Step::Refunded,
        Step::Released,
        Step::Cancelled,
    ];

    /// Its topic.
    pub fn topic(self) -> &'static str {
        match self {
            Step::Created => topics::ORDER_CREATED,
            Step::Rejected => topics::INVENTORY_REJECTED,
            Step::Reserved => topics::INVENTORY_RESERVED,
            Step::PaymentFailed => topics::PAYMENT_FAILED,
            Step::Paid => topics::PAYMENT_COMPLETED,
            Step::Confirmed => topics::ORDER_CONFIRMED,
            Step::CancelRequested => topics::ORDER_CANCEL_REQUESTED,
            Step::Refunded => topics::PAYMENT_REFUNDED,
            Step::Released => topics::INVENTORY_RELEASED,
            Step::Cancelled => topics::ORDER_CANCELLED,
        }
    }

    /// The step whose topic is `topic`.
    pub fn of_topic(topic: &str) -> Option<Step> {
        Self::ALL.into_iter().find(|step| step.topic() == topic)
    }

    /// A step that reports a failure.
    pub fn is_failure(self) -> bool {
        matches!(self, Step::Rejected | Step::PaymentFailed)
    }
}

/// One event of an order as the board recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// Which step.
    pub step: Step,
    /// `ce_id`, when it had one.
    pub event_id: Option<String>,
    /// `ce_type`, when it had one.
    pub event_type: Option<String>,
    /// `ce_time` in epoch milliseconds, when it had one.
    pub time_ms: Option<i64>,
    /// Where it was: topic, partition, offset.
    pub position: Position,
    /// The payload's `userId`.
    pub user_id: Option<String>,
    /// The payload's `reason`.
    pub reason: Option<String>,
}

/// Where a message is in Kafka.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// A step in the view: when it happened and how long its hop took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepView {
    /// Which step.
    pub step: Step,
    /// Its `ce_type`.
    pub event_type: Option<String>,
    /// Its `ce_time`.
    pub time_ms: Option<i64>,
    /// Time since the step before it.
    pub hop_ms: Option<i64>,
    /// Whether it undoes or unwinds (drawn as the reversed path).
    pub reversed: bool,
}

/// What the board shows of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// Its status.
    pub status: Status,
    /// Why it was cancelled (or why it is failing).
    pub reason: Option<String>,
    /// Which way the saga went.
    pub path: SagaPath,
    /// Its user.
    pub user_id: Option<String>,
    /// The time of `order.created` (or of the first event seen, until that comes).
    pub created_ms: Option<i64>,
    /// The time of the latest event.
    pub updated_ms: Option<i64>,
    /// When the saga first settled: confirmed, or cancelled without being confirmed.
    pub settled_ms: Option<i64>,
    /// From created to settled.
    pub saga_ms: Option<i64>,
    /// The steps, in time order, each event once.
    pub steps: Vec<StepView>,
    /// The events that would move it on; empty once it is final.
    pub waiting_for: Vec<Step>,
}

impl View {
    /// Whether nothing more is expected.
    pub fn is_terminal(&self) -> bool {
        self.waiting_for.is_empty()
    }

    /// Not terminal `after_ms` after it was created, as of `now_ms`.
    pub fn is_stuck(&self, now_ms: i64, after_ms: i64) -> bool {
        !self.is_terminal() && self.created_ms.is_some_and(|created| now_ms - created > after_ms)
    }
}

/// The order of a timeline: by `ce_time`, then saga order, then position. Total, so any
/// arrival order sorts the same.
pub fn timeline_order(a: &Seen, b: &Seen) -> Ordering {
    let time = |s: &Seen| s.time_ms.unwrap_or(i64::MAX);
    time(a).cmp(&time(b)).then(a.step.cmp(&b.step)).then_with(|| a.position.cmp(&b.position))
}

/// Which of `seen` (in timeline order) repeat an event already in it: same `ce_id`.
pub fn duplicates(seen: &[Seen]) -> Vec<bool> {
    let mut ids = HashSet::new();
    seen.iter().map(|s| s.event_id.as_ref().is_some_and(|id| !ids.insert(id.clone()))).collect()
}

/// The view of an order from every event seen for it, in any order.
pub fn project(seen: &[Seen]) -> View {
    let mut seen = seen.to_vec();
    seen.sort_by(timeline_order);
    let repeated = duplicates(&seen);
    // Each step once: its first event (a second event of one step would be a bug upstream,
    // shown in the timeline, not counted twice).
    let mut taken = HashSet::new();
    let unique: Vec<&Seen> = seen
        .iter()
        .zip(&repeated)
        .filter(|(s, dup)| !**dup && taken.insert(s.step))
        .map(|(s, _)| s)
        .collect();
    let has = |step: Step| unique.iter().any(|s| s.step == step);
    let time_of = |step: Step| unique.iter().find(|s| s.step == step).and_then(|s| s.time_ms);

    let path = if has(Step::CancelRequested) || has(Step::Refunded) {
        SagaPath::UserCancel
    } else if has(Step::PaymentFailed) {
        SagaPath::Compensation
    } else if has(Step::Rejected) {
        SagaPath::Rejected
    } else {
        SagaPath::Forward
    };
    let status = if has(Step::Cancelled) {
        Status::Cancelled
    } else if path == SagaPath::UserCancel {
        Status::Cancelling
    } else if has(Step::Confirmed) {
        Status::Confirmed
    } else {
        Status::Pending
    };
    let reason = [Step::Cancelled, Step::PaymentFailed, Step::Rejected]
        .into_iter()
        .find_map(|step| unique.iter().find(|s| s.step == step).and_then(|s| s.reason.clone()));
    let created_ms = time_of(Step::Created).or_else(|| unique.iter().find_map(|s| s.time_ms));
    let settled_ms = time_of(Step::Confirmed).or_else(|| time_of(Step::Cancelled));
    let mut previous = None;
    let steps = unique
        .iter()
        .map(|s| {
            let hop_ms = s.time_ms.zip(previous).map(|(now, before): (i64, i64)| (now - before).max(0));
            previous = s.time_ms.or(previous);
            StepView {
                step: s.step,
                event_type: s.event_type.clone(),
                time_ms: s.time_ms,
                hop_ms,
                reversed: is_reversed(s.step, path),
            }
        })
        .collect();
    View {
        status,
        reason,
        path,
        user_id: unique.iter().find_map(|s| s.user_id.clone()),
        created_ms,
        updated_ms: unique.iter().filter_map(|s| s.time_ms).max(),
        settled_ms,
        saga_ms: settled_ms.zip(time_of(Step::Created)).map(|(end, start)| end - start),
        steps,
        waiting_for: waiting_for(&|step| has(step)),
    }
}

/// Whether `step` goes backwards on `path`: the undoing and the unwinding.
fn is_reversed(step: Step, path: SagaPath) -> bool {
    match step {
        Step::CancelRequested | Step::Refunded | Step::Released => true,
        Step::Cancelled => matches!(path, SagaPath::Compensation | SagaPath::UserCancel),
        _ => false,
    }
}

/// The events that would move the saga on, given which steps were seen; none when it is
/// final. Follows the contract's saga, each service's possible answers listed.
pub fn waiting_for(has: &dyn Fn(Step) -> bool) -> Vec<Step> {
    if has(Step::Cancelled) {
        return vec![];
    }
    if has(Step::CancelRequested) || has(Step::Refunded) {
        return if !has(Step::Refunded) {
            vec![Step::Refunded]
        } else if !has(Step::Released) {
            vec![Step::Released]
        } else {
            vec![Step::Cancelled]
        };
    }
    if has(Step::Confirmed) {
        return vec![];
    }
    if !has(Step::Created) {
        return vec![Step::Created];
    }
    if has(Step::Rejected) {
        return vec![Step::Cancelled];
    }
    if !has(Step::Reserved) {
        return vec![Step::Reserved, Step::Rejected];
    }
    if has(Step::PaymentFailed) {
        return if has(Step::Released) { vec![Step::Cancelled] } else { vec![Step::Released] };
    }
    if has(Step::Paid) {
        return vec![Step::Confirmed];
    }
    vec![Step::Paid, Step::PaymentFailed]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(step: Step, time_ms: i64, id: &str) -> Seen {
        Seen {
            step,
            event_id: Some(id.to_owned()),
            event_type: Some(format!("{}.v1", step.topic())),
            time_ms: Some(time_ms),
            position: Position { topic: step.topic().to_owned(), partition: 0, offset: time_ms },
            user_id: Some("u1".to_owned()),
            reason: None,
        }
    }

    fn with_reason(mut seen: Seen, reason: &str) -> Seen {
        seen.reason = Some(reason.to_owned());
        seen
    }

    fn steps(view: &View) -> Vec<Step> {
        view.steps.iter().map(|s| s.step).collect()
    }

    #[test]
    fn a_confirmed_saga_with_its_hops() {
        let view = project(&[
            event(Step::Created, 1000, "a"),
            event(Step::Reserved, 1010, "b"),
            event(Step::Paid, 1025, "c"),
            event(Step::Confirmed, 1030, "d"),
        ]);
        assert_eq!(view.status, Status::Confirmed);
        assert_eq!(view.path, SagaPath::Forward);
        assert_eq!(steps(&view), [Step::Created, Step::Reserved, Step::Paid, Step::Confirmed]);
        let hops: Vec<_> = view.steps.iter().map(|s| s.hop_ms).collect();
        assert_eq!(hops, [None, Some(10), Some(15), Some(5)]);
        assert_eq!(view.saga_ms, Some(30));
        assert!(view.is_terminal());
        assert!(!view.is_stuck(1_000_000, 1000));
    }

    #[test]
    fn events_in_any_arrival_order_give_the_same_view() {
        let events = [
            event(Step::Created, 1000, "a"),
            event(Step::Reserved, 1010, "b"),
            with_reason(event(Step::PaymentFailed, 1020, "c"), "INSUFFICIENT_FUNDS"),
            event(Step::Released, 1030, "d"),
            with_reason(event(Step::Cancelled, 1040, "e"), "INSUFFICIENT_FUNDS"),
        ];
        let expected = project(&events);
        let mut reversed = events.to_vec();
        reversed.reverse();
        assert_eq!(project(&reversed), expected);
        let mut shuffled = events.to_vec();
        shuffled.swap(0, 3);
        shuffled.swap(1, 4);
        assert_eq!(project(&shuffled), expected);
    }

    #[test]
    fn the_last_event_first_leaves_the_saga_open_and_waiting_for_its_start() {
        let view = project(&[event(Step::Confirmed, 1030, "d")]);
        // Confirmed, from what was seen; but the board has not seen it created yet.
        assert_eq!(view.status, Status::Confirmed);
        assert!(view.is_terminal(), "order.confirmed is final whatever came before");
        let view = project(&[event(Step::Paid, 1025, "c")]);
        assert_eq!(view.status, Status::Pending);
        assert_eq!(view.waiting_for, [Step::Created], "the board has not read its start yet");
        assert_eq!(view.created_ms, Some(1025), "until order.created comes, the first event seen");
    }

    #[test]
    fn a_duplicate_event_counts_once() {
        let mut copy = event(Step::Reserved, 1010, "b");
        copy.position.offset = 99;
        let view = project(&[
            event(Step::Created, 1000, "a"),
            event(Step::Reserved, 1010, "b"),
            copy.clone(),
            event(Step::Paid, 1025, "c"),
        ]);
        assert_eq!(steps(&view), [Step::Created, Step::Reserved, Step::Paid]);
        let mut all = vec![event(Step::Created, 1000, "a"), copy, event(Step::Reserved, 1010, "b")];
        all.sort_by(timeline_order);
        assert_eq!(duplicates(&all), [false, false, true], "the later position is the copy");
    }

    #[test]
    fn a_failed_payment_is_compensated_and_drawn_reversed() {
        let mut view = project(&[
            event(Step::Created, 1000, "a"),
            event(Step::Reserved, 1010, "b"),
            with_reason(event(Step::PaymentFailed, 1020, "c"), "INSUFFICIENT_FUNDS"),
        ]);
        assert_eq!(view.path, SagaPath::Compensation);
        assert_eq!(view.status, Status::Pending);
        assert_eq!(view.waiting_for, [Step::Released]);
        assert_eq!(view.reason.as_deref(), Some("INSUFFICIENT_FUNDS"));
        assert!(view.is_stuck(1020 + 31_000, 30_000));
        view = project(&[
            event(Step::Created, 1000, "a"),
            event(Step::Reserved, 1010, "b"),
            with_reason(event(Step::PaymentFailed, 1020, "c"), "INSUFFICIENT_FUNDS"),
            event(Step::Released, 1030, "d"),
            with_reason(event(Step::Cancelled, 1040, "e"), "INSUFFICIENT_FUNDS"),
        ]);
        assert_eq!(view.status, Status::Cancelled);
        let reversed: Vec<_> = view.steps.iter().filter(|s| s.reversed).map(|s| s.step).collect();
        assert_eq!(reversed, [Step::Released, Step::Cancelled]);
        assert_eq!(view.saga_ms, Some(40));
        assert!(view.is_terminal());
    }

    #[test]
    fn a_rejection_cancels_without_compensation() {
        let view = project(&[
            event(Step::Created, 1000, "a"),
            with_reason(event(Step::Rejected, 1010, "b"), "OUT_OF_STOCK"),
        ]);
        assert_eq!((view.path, view.status), (SagaPath::Rejected, Status::Pending));
        assert_eq!(view.waiting_for, [Step::Cancelled]);
        assert!(view.steps.iter().all(|s| !s.reversed));
    }

    #[test]
    fn a_cancel_after_confirm_unwinds_refund_then_release() {
        let confirmed = [
            event(Step::Created, 1000, "a"),
            event(Step::Reserved, 1010, "b"),
            event(Step::Paid, 1020, "c"),
            event(Step::Confirmed, 1030, "d"),
        ];
        let mut events = confirmed.to_vec();
        events.push(event(Step::CancelRequested, 5000, "e"));
        let view = project(&events);
        assert_eq!((view.status, view.path), (Status::Cancelling, SagaPath::UserCancel));
        assert_eq!(view.waiting_for, [Step::Refunded]);
        assert_eq!(view.settled_ms, Some(1030), "the saga settled when it was confirmed");
        events.push(event(Step::Refunded, 5010, "f"));
        assert_eq!(project(&events).waiting_for, [Step::Released]);
        events.push(event(Step::Released, 5020, "g"));
        events.push(with_reason(event(Step::Cancelled, 5030, "h"), "CANCELLED_BY_USER"));
        let view = project(&events);
        assert_eq!(view.status, Status::Cancelled);
        assert_eq!(view.reason.as_deref(), Some("CANCELLED_BY_USER"));
        assert_eq!(view.saga_ms, Some(30));
        let reversed: Vec<_> = view.steps.iter().filter(|s| s.reversed).map(|s| s.step).collect();
        assert_eq!(reversed, [Step::CancelRequested, Step::Refunded, Step::Released, Step::Cancelled]);
    }

    #[test]
    fn equal_times_sort_in_saga_order() {
        let view = project(&[event(Step::Paid, 1000, "c"), event(Step::Created, 1000, "a")]);
        assert_eq!(steps(&view), [Step::Created, Step::Paid]);
    }

    #[test]
    fn every_step_has_its_own_topic() {
        for step in Step::ALL {
            assert_eq!(Step::of_topic(step.topic()), Some(step));
        }
        assert_eq!(Step::of_topic(topics::USER_SIGNED_UP), None);
    }
}
