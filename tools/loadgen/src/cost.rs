//! What a saga costs: CPU time, each service's `process_cpu_seconds_total` from its
//! `/metrics` and the broker's from `/proc/<pid>/stat`, and the Kafka requests the
//! services' clients sent (`kafka_client_requests_total`), read before and after the run.
//! CPU time is steadier than wall time on a shared machine, so it is what proves a
//! change; the requests are what the broker's CPU time follows. A service restarted
//! during the run (its `process_start_time_seconds` changed, or its counter went down) is
//! left out and named: what it counted before the restart is gone.

use std::collections::BTreeMap;
use std::time::Duration;

/// How far behind the services' request counts may be: librdkafka reports them every
/// five seconds. A reading of them waits this long after the load it should include.
pub const REQUESTS_LAG: Duration = Duration::from_millis(5200);

/// The broker's name in a [`Reading`]: its CPU time is read, it has no request counts.
const BROKER: &str = "kafka-broker";

/// One process at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// CPU seconds so far.
    pub cpu: f64,
    /// When it started (seconds since the epoch), where known.
    pub started: Option<f64>,
    /// Kafka requests its clients sent so far, by kind (none for the broker).
    pub requests: BTreeMap<String, f64>,
}

/// Every process read at one moment; a process that did not answer is missing.
pub type Reading = BTreeMap<String, Sample>;

/// What to read: the services' metrics URLs and the broker's process.
#[derive(Debug, Clone)]
pub struct Probe {
    http: reqwest::Client,
    metrics: Vec<(&'static str, String)>,
    broker_pid: Option<u32>,
}

impl Probe {
    /// The services around the gateway at `base_url`, and the broker `broker_pid`.
    pub fn new(base_url: &str, broker_pid: Option<u32>) -> Self {
        // Each service keeps its registered distance from the gateway's port, as run.sh and
        // the chaos run lay them out (8080 → 8081..., 18080 → 18081...).
        let gateway = platform::registry::service("gateway").map_or(8080, |g| g.port);
        let metrics = platform::registry::services()
            .iter()
            .filter_map(|service| {
                let mut url = reqwest::Url::parse(base_url).ok()?;
                let port = url.port_or_known_default()? + service.port.checked_sub(gateway)?;
                url.set_port(Some(port)).ok()?;
                url.set_path("/metrics");
                Some((service.name, url.to_string()))
            })
            .collect();
        Self { http: reqwest::Client::new(), metrics, broker_pid }
    }

    /// Reads every process's CPU time and the services' request counts now.
    pub async fn read(&self) -> Reading {
        let mut reading = Reading::new();
        for (name, url) in &self.metrics {
            let text = match self.http.get(url).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => continue,
            };
            if let Some(cpu) = metric(&text, "process_cpu_seconds_total") {
                let started = metric(&text, "process_start_time_seconds");
                reading.insert((*name).to_owned(), Sample { cpu, started, requests: requests(&text) });
            }
        }
        if let Some(pid) = self.broker_pid
            && let Some(seconds) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| platform::metrics::cpu_seconds(&s))
        {
            // A restarted broker has another pid: this one is then unreadable, not reset.
            reading
                .insert(BROKER.to_owned(), Sample { cpu: seconds, started: None, requests: BTreeMap::new() });
        }
        reading
    }
}

/// The cost per saga of the processes read both times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerSaga {
    /// Milliseconds of CPU per process, and `total`.
    pub ms: BTreeMap<String, f64>,
    /// Kafka requests by kind, summed over the services, and `total`.
    pub requests: BTreeMap<String, f64>,
    /// Processes restarted during the run, left out of `ms` and `requests`.
    pub restarted: Vec<String>,
    /// Services that did not answer the later reading, left out of `requests`.
    pub requests_unread: Vec<String>,
}

/// The cost per saga between `before` and `after`, with the request counts taken from
/// `later` (read [`REQUESTS_LAG`] after `after`, so they include the run's last second).
pub fn per_saga(before: &Reading, after: &Reading, later: &Reading, sagas: usize) -> PerSaga {
    let mut out = PerSaga::default();
    if sagas == 0 {
        return out;
    }
    let per_saga = |n: f64| n / sagas as f64;
    let mut total = 0.0;
    for (name, end) in after {
        let Some(start) = before.get(name) else { continue };
        let restarted = |end: &Sample| end.started != start.started || end.cpu < start.cpu;
        if restarted(end) || later.get(name).is_some_and(restarted) {
            out.restarted.push(name.clone());
            continue;
        }
        let ms = per_saga((end.cpu - start.cpu) * 1000.0);
        total += ms;
        out.ms.insert(name.clone(), round(ms));
        if name == BROKER {
            continue;
        }
        let Some(later) = later.get(name) else {
            out.requests_unread.push(name.clone());
            continue;
        };
        for (kind, n) in &later.requests {
            let sent = n - start.requests.get(kind).copied().unwrap_or(0.0);
            *out.requests.entry(kind.clone()).or_default() += per_saga(sent);
        }
    }
    out.ms.insert("total".to_owned(), round(total));
    let requests: f64 = out.requests.values().sum();
    out.requests.retain(|_, n| *n >= 0.0005);
    out.requests.values_mut().for_each(|n| *n = round(*n));
    if requests > 0.0 {
        out.requests.insert("total".to_owned(), round(requests));
    }
    out
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `kafka_client_requests_total` in Prometheus text, summed over the clients by kind.
fn requests(text: &str) -> BTreeMap<String, f64> {
    let mut requests = BTreeMap::new();
    for line in text.lines() {
        let Some((labels, value)) =
            line.strip_prefix("kafka_client_requests_total{").and_then(|l| l.split_once("} "))
        else {
            continue;
        };
        let kind = labels.split(',').find_map(|label| label.strip_prefix("request=\"")?.strip_suffix('"'));
        if let (Some(kind), Ok(n)) = (kind, value.trim().parse::<f64>()) {
            *requests.entry(kind.to_owned()).or_default() += n;
        }
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_sit_on_the_ports_after_the_gateway() {
        let probe = Probe::new("http://127.0.0.1:18080", None);
        let url = |name: &str| probe.metrics.iter().find(|(n, _)| *n == name).map(|(_, url)| url.as_str());
        assert_eq!(url("gateway"), Some("http://127.0.0.1:18080/metrics"));
        assert_eq!(url("notification-service"), Some("http://127.0.0.1:18085/metrics"));
        assert_eq!(url("saga-board"), Some("http://127.0.0.1:18086/metrics"));
        assert_eq!(probe.metrics.len(), platform::registry::services().len(), "every registered service");
    }

    #[test]
    fn reads_the_counter_and_divides_by_the_sagas() {
        let text = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\nother 1\n";
        assert_eq!(metric(text, "process_cpu_seconds_total"), Some(12.5));
        let sample = |cpu, started| Sample { cpu, started: Some(started), requests: BTreeMap::new() };
        let before = Reading::from([
            ("order-service".to_owned(), sample(10.0, 100.0)),
            ("gone".to_owned(), sample(1.0, 100.0)),
            ("killed".to_owned(), sample(3.0, 100.0)),
            ("killed-late".to_owned(), sample(3.0, 100.0)),
        ]);
        let after = Reading::from([
            ("order-service".to_owned(), sample(12.0, 100.0)),
            ("new".to_owned(), sample(5.0, 200.0)),
            // Restarted: its new process has used more CPU than the old had, or less.
            ("killed".to_owned(), sample(4.0, 150.0)),
            ("killed-late".to_owned(), Sample { cpu: 0.5, started: None, requests: BTreeMap::new() }),
        ]);
        let per = per_saga(&before, &after, &after, 1000);
        assert_eq!(per.ms["order-service"], 2.0);
        assert_eq!(per.ms["total"], 2.0);
        assert_eq!(per.ms.len(), 2, "{per:?}");
        assert_eq!(per.restarted, ["killed", "killed-late"]);
        assert!(per.requests.is_empty(), "{per:?}");
    }

    #[test]
    fn requests_are_summed_by_kind_over_clients_and_services() {
        let text = "# TYPE kafka_client_requests_total counter\n\
            kafka_client_requests_total{client=\"order-service-consumer\",request=\"Fetch\"} 100\n\
            kafka_client_requests_total{client=\"order-service-relay\",request=\"Produce\"} 40\n\
            kafka_client_requests_total{client=\"order-service-forwarder\",request=\"Produce\"} 2\n\
            kafka_client_requests_total_other{request=\"Fetch\"} 5\n";
        let counted = requests(text);
        assert_eq!(counted, BTreeMap::from([("Fetch".to_owned(), 100.0), ("Produce".to_owned(), 42.0)]));

        let sample = |cpu, started, requests: &[(&str, f64)]| Sample {
            cpu,
            started: Some(started),
            requests: requests.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
        };
        let before = Reading::from([
            ("order-service".to_owned(), sample(1.0, 1.0, &[("Fetch", 100.0), ("Produce", 42.0)])),
            ("payment-service".to_owned(), sample(1.0, 1.0, &[("Fetch", 10.0)])),
            ("restarted-late".to_owned(), sample(1.0, 1.0, &[("Fetch", 10.0)])),
        ]);
        let after = Reading::from([
            ("order-service".to_owned(), sample(2.0, 1.0, &[("Fetch", 150.0), ("Produce", 60.0)])),
            ("payment-service".to_owned(), sample(2.0, 1.0, &[("Fetch", 20.0)])),
            ("restarted-late".to_owned(), sample(2.0, 1.0, &[("Fetch", 20.0)])),
        ]);
        // A second later, the last second's requests are in: the counts come from here.
        let later = Reading::from([
            (
                "order-service".to_owned(),
                sample(2.1, 1.0, &[("Fetch", 200.0), ("Produce", 82.0), ("Heartbeat", 1.0)]),
            ),
            ("payment-service".to_owned(), sample(2.1, 1.0, &[("Fetch", 30.0)])),
            ("restarted-late".to_owned(), sample(0.1, 2.0, &[("Fetch", 1.0)])),
        ]);
        let per = per_saga(&before, &after, &later, 20);
        let expected = BTreeMap::from([
            ("Fetch".to_owned(), 6.0),
            ("Heartbeat".to_owned(), 0.05),
            ("Produce".to_owned(), 2.0),
            ("total".to_owned(), 8.05),
        ]);
        assert_eq!(per.requests, expected);
        assert_eq!(per.ms["order-service"], 50.0, "CPU from the reading right after the run");
        assert_eq!(per.restarted, ["restarted-late"]);
        assert!(per.requests_unread.is_empty());

        // A service that does not answer the later reading is named, its CPU still counted.
        let later = Reading::from([("payment-service".to_owned(), sample(2.1, 1.0, &[("Fetch", 30.0)]))]);
        let per = per_saga(&before, &after, &later, 20);
        assert_eq!(per.requests_unread, ["order-service", "restarted-late"]);
        assert_eq!(per.requests, BTreeMap::from([("Fetch".to_owned(), 1.0), ("total".to_owned(), 1.0)]));
        assert_eq!(per.ms["order-service"], 50.0);
    }
}
