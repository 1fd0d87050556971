//! The figures of the strip on top of the page: sagas per minute and saga times from the
//! store, and each service's outbox backlog, consumer lag and dead letters from its
//! `/metrics`, read when asked.

use std::time::Duration;

use platform::clock::now_ms;
use platform::registry;
use serde::Serialize;

use crate::api::Board;
use crate::store;

/// How long a service's `/metrics` may take before it counts as down.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// The strip's figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Sagas settled (confirmed, or cancelled unconfirmed) in the last minute.
    sagas_per_minute: usize,
    /// Their saga times.
    saga_millis: Percentiles,
    /// Each service with a database (every one but the gateway), the board too.
    services: Vec<ServiceFigures>,
    /// Messages in the dead-letter topics.
    dead_letters: i64,
}

/// Saga times of the last minute.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Percentiles {
    p50: Option<i64>,
    p99: Option<i64>,
}

/// What one service's `/metrics` says.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceFigures {
    name: &'static str,
    /// Whether it answered.
    up: bool,
    /// Events in its outbox not yet acknowledged by Kafka.
    outbox_backlog: Option<i64>,
    /// Messages behind, summed over its partitions.
    consumer_lag: Option<i64>,
    /// Messages it sent to dead-letter topics since it started.
    dead_lettered: Option<i64>,
}

/// Reads the figures now.
pub async fn gather(board: &Board) -> Result<Stats, sqlx::Error> {
    let mut conn = board.db.pool().acquire().await?;
    let times = store::settled_since(&mut conn, now_ms() - 60_000).await?;
    let dead_letters = store::dead_letter_count(&mut conn).await?;
    drop(conn);
    let scrapes = registry::services().iter().filter(|s| s.owns_database).map(|service| async move {
        let url = board.settings.upstreams.by_name(service.name).map(|(_, url)| format!("{url}/metrics"));
        let text = match url {
            Some(url) => scrape(&board.client, &url).await,
            None => None,
        };
        ServiceFigures {
            name: service.name,
            up: text.is_some(),
            // Counts, though Prometheus writes every sample as a float.
            outbox_backlog: text.as_deref().and_then(|t| sum(t, "outbox_backlog")).map(|n| n as i64),
            consumer_lag: text.as_deref().and_then(|t| sum(t, "consumer_lag")).map(|n| n as i64),
            dead_lettered: text
                .as_deref()
                .map(|t| sum(t, "consumer_dead_lettered_total").unwrap_or(0.0) as i64),
        }
    });
    Ok(Stats {
        sagas_per_minute: times.len(),
        saga_millis: Percentiles { p50: percentile(&times, 50), p99: percentile(&times, 99) },
        services: futures::future::join_all(scrapes).await,
        dead_letters,
    })
}

async fn scrape(client: &reqwest::Client, url: &str) -> Option<String> {
    let answer = client.get(url).timeout(SCRAPE_TIMEOUT).send().await.ok()?.error_for_status().ok()?;
    answer.text().await.ok()
}

/// The `p`-th percentile of `sorted` (nearest rank).
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// The sum of every sample of metric `name` in Prometheus text; `None` when it has none.
pub fn sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let times: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&times, 50), Some(50));
        assert_eq!(percentile(&times, 99), Some(99));
        assert_eq!(percentile(&[7], 99), Some(7));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn a_metric_is_summed_over_its_labels_and_only_it() {
        let text = "# TYPE consumer_lag gauge\n\
                    consumer_lag{topic=\"a\",partition=\"0\"} 3\n\
                    consumer_lag{topic=\"a\",partition=\"1\"} 4\n\
                    consumer_lag_other 100\n\
                    outbox_backlog 2\n";
        assert_eq!(sum(text, "consumer_lag"), Some(7.0));
        assert_eq!(sum(text, "outbox_backlog"), Some(2.0));
        assert_eq!(sum(text, "consumer_dead_lettered_total"), None);
    }
}
