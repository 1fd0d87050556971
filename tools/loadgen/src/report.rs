//! Histograms and the printed report.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::cost::PerSaga;

/// Latencies in microseconds, 1 µs to 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// p50, p90, p99 and max of `h`, in milliseconds.
pub fn percentiles_ms(h: &Histogram<u64>) -> [f64; 4] {
    let ms = |us: u64| us as f64 / 1000.0;
    [ms(h.value_at_quantile(0.5)), ms(h.value_at_quantile(0.9)), ms(h.value_at_quantile(0.99)), ms(h.max())]
}

/// The longest time between `start` and the first of `ends`, or between two of them;
/// `ends` are in the order they happened.
pub fn longest_gap(start: Instant, ends: &[Instant]) -> Duration {
    let mut previous = start;
    let mut longest = Duration::ZERO;
    for &end in ends {
        longest = longest.max(end.saturating_duration_since(previous));
        previous = previous.max(end);
    }
    longest
}

/// One line: `name  n  p50 p90 p99 max`.
pub fn line(name: &str, h: &Histogram<u64>) -> String {
    let [p50, p90, p99, max] = percentiles_ms(h);
    format!("  {name:<44} n={:<7} p50 {p50:>8.2}  p90 {p90:>8.2}  p99 {p99:>8.2}  max {max:>8.2}", h.len())
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Orders the API accepted (202).
    pub orders: u64,
    /// Orders it refused (anything else), or that could not be sent.
    pub rejected: u64,
    /// Ended CONFIRMED.
    pub confirmed: u64,
    /// Ended CANCELLED, by reason.
    pub cancelled: BTreeMap<String, u64>,
    /// Accepted but not terminal when the run gave up waiting.
    pub lost: u64,
    /// Sagas ended per second, from the first order sent to the last saga ended.
    pub completed_per_s: f64,
    /// The longest time in which no saga ended, from the first order sent to the last
    /// saga ended: how long a kill or a rebalance held the whole system up.
    pub longest_stall: Duration,
    /// POST sent → the saga's last event received (CONFIRMED or CANCELLED).
    pub end_to_end: Histogram<u64>,
    /// The POST alone.
    pub post: Histogram<u64>,
    /// From one event's time to the next event's, per hop.
    pub hops: BTreeMap<&'static str, Histogram<u64>>,
    /// Milliseconds of CPU per ended saga, per process and in `total`, the services' Kafka
    /// requests per ended saga, and the processes left out because they were restarted
    /// during the run.
    pub cost: PerSaga,
}

impl Outcome {
    /// Ended CANCELLED, all reasons.
    pub fn cancelled_total(&self) -> u64 {
        self.cancelled.values().sum()
    }

    /// The human report.
    pub fn text(&self) -> String {
        let reasons: Vec<String> = self.cancelled.iter().map(|(r, n)| format!("{r} {n}")).collect();
        let mut out = vec![
            format!("orders accepted    {} (refused or failed to send: {})", self.orders, self.rejected),
            format!("confirmed          {}", self.confirmed),
            format!("cancelled          {} ({})", self.cancelled_total(), reasons.join(", ")),
            format!("lost               {}", self.lost),
            format!("completed sagas/s  {:.1}", self.completed_per_s),
            format!("longest stall      {} ms (no saga ended)", self.longest_stall.as_millis()),
            "latency, ms:".to_owned(),
            line("end to end (POST sent → last saga event)", &self.end_to_end),
            line("POST /api/orders", &self.post),
            "per hop, ms (ce_time of one event → ce_time of the next):".to_owned(),
        ];
        out.extend(self.hops.iter().map(|(name, h)| line(name, h)));
        out.push("CPU per saga, ms:".to_owned());
        out.extend(self.cost.ms.iter().map(|(name, ms)| format!("  {name:<44} {ms:>8.3}")));
        if !self.cost.restarted.is_empty() {
            out.push(format!("  (left out, restarted during the run: {})", self.cost.restarted.join(", ")));
        }
        if !self.cost.requests.is_empty() {
            out.push("Kafka requests per saga (the services' clients, by kind):".to_owned());
            out.extend(self.cost.requests.iter().map(|(kind, n)| format!("  {kind:<44} {n:>8.3}")));
        }
        if !self.cost.requests_unread.is_empty() {
            let unread = self.cost.requests_unread.join(", ");
            out.push(format!("  (left out, not read after the run: {unread})"));
        }
        out.join("\n")
    }

    /// The JSON summary.
    pub fn json(&self) -> Value {
        let [p50, p90, p99, max] = percentiles_ms(&self.end_to_end);
        let [post_p50, post_p90, post_p99, post_max] = percentiles_ms(&self.post);
        let hops: serde_json::Map<String, Value> = self
            .hops
            .iter()
            .map(|(name, h)| {
                let [p50, p90, p99, max] = percentiles_ms(h);
                (
                    (*name).to_owned(),
                    json!({"n": h.len(), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max}),
                )
            })
            .collect();
        json!({
            "completed_per_s": (self.completed_per_s * 10.0).round() / 10.0,
            "longest_stall_ms": self.longest_stall.as_millis() as u64,
            "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max,
            "orders": self.orders,
            "rejected": self.rejected,
            "confirmed": self.confirmed,
            "cancelled": self.cancelled_total(),
            "cancelled_by_reason": self.cancelled,
            "lost": self.lost,
            "post_p50_ms": post_p50, "post_p90_ms": post_p90, "post_p99_ms": post_p99, "post_max_ms": post_max,
            "hops": hops,
            "cpu_ms_per_saga": self.cost.ms,
            "kafka_requests_per_saga": self.cost.requests,
            "cpu_restarted": self.cost.restarted,
            "requests_unread": self.cost.requests_unread,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_stall_is_the_widest_gap_from_the_start_between_ends() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(longest_gap(start, &[]), Duration::ZERO);
        assert_eq!(longest_gap(start, &[at(30), at(40), at(900), at(910)]), Duration::from_millis(860));
        assert_eq!(longest_gap(start, &[at(500), at(600)]), Duration::from_millis(500), "to the first end");
    }
}
