//! CPU time per saga: each service's `process_cpu_seconds_total` from its `/metrics`, and
//! the broker's from `/proc/<pid>/stat`, read before and after the run. CPU time is
//! steadier than wall time on a shared machine, so it is what proves a change. A service
//! restarted during the run (its `process_start_time_seconds` changed, or its counter went
//! down) is left out and named: its CPU before the restart is gone.

use std::collections::BTreeMap;

/// One process at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU seconds so far.
    pub cpu: f64,
    /// When it started (seconds since the epoch), where known.
    pub started: Option<f64>,
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

    /// Reads every process's CPU time now.
    pub async fn read(&self) -> Reading {
        let mut reading = Reading::new();
        for (name, url) in &self.metrics {
            let text = match self.http.get(url).send().await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(_) => continue,
            };
            if let Some(cpu) = metric(&text, "process_cpu_seconds_total") {
                let started = metric(&text, "process_start_time_seconds");
                reading.insert((*name).to_owned(), Sample { cpu, started });
            }
        }
        if let Some(pid) = self.broker_pid
            && let Some(seconds) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| platform::metrics::cpu_seconds(&s))
        {
            // A restarted broker has another pid: this one is then unreadable, not reset.
            reading.insert("kafka-broker".to_owned(), Sample { cpu: seconds, started: None });
        }
        reading
    }
}

/// CPU per saga: milliseconds for each process read both times, and their `total`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PerSaga {
    /// Milliseconds per process, and `total`.
    pub ms: BTreeMap<String, f64>,
    /// Processes restarted during the run, left out of `ms`.
    pub restarted: Vec<String>,
}

/// CPU per saga between two readings.
pub fn per_saga(before: &Reading, after: &Reading, sagas: usize) -> PerSaga {
    let mut out = PerSaga::default();
    if sagas == 0 {
        return out;
    }
    let mut total = 0.0;
    for (name, end) in after {
        let Some(start) = before.get(name) else { continue };
        if end.started != start.started || end.cpu < start.cpu {
            out.restarted.push(name.clone());
            continue;
        }
        let ms = (end.cpu - start.cpu) * 1000.0 / sagas as f64;
        total += ms;
        out.ms.insert(name.clone(), round(ms));
    }
    out.ms.insert("total".to_owned(), round(total));
    out
}

fn round(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
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
        let sample = |cpu, started| Sample { cpu, started: Some(started) };
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
            ("killed-late".to_owned(), Sample { cpu: 0.5, started: None }),
        ]);
        let per = per_saga(&before, &after, 1000);
        assert_eq!(per.ms["order-service"], 2.0);
        assert_eq!(per.ms["total"], 2.0);
        assert_eq!(per.ms.len(), 2, "{per:?}");
        assert_eq!(per.restarted, ["killed", "killed-late"]);
    }
}
