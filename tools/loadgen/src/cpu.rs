//! CPU time per saga: each service's `process_cpu_seconds_total` from its `/metrics`, and
//! the broker's from `/proc/<pid>/stat`, read before and after the run. CPU time is
//! steadier than wall time on a shared machine, so it is what proves a change.

use std::collections::BTreeMap;

/// The services, in the port order of the system's layout: the gateway on the base
/// port, the five services on the five after it (as run.sh and the chaos run start them).
pub const SERVICES: [&str; 6] = [
    "gateway",
    "user-service",
    "order-service",
    "inventory-service",
    "payment-service",
    "notification-service",
];

/// CPU seconds per process at one moment; a process that did not answer is missing.
pub type Reading = BTreeMap<String, f64>;

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
        let metrics = SERVICES
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let mut url = reqwest::Url::parse(base_url).ok()?;
                let port = url.port_or_known_default()? + i as u16;
                url.set_port(Some(port)).ok()?;
                url.set_path("/metrics");
                Some((*name, url.to_string()))
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
            if let Some(seconds) = metric(&text, "process_cpu_seconds_total") {
                reading.insert((*name).to_owned(), seconds);
            }
        }
        if let Some(pid) = self.broker_pid
            && let Some(seconds) = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| platform::metrics::cpu_seconds(&s))
        {
            reading.insert("kafka-broker".to_owned(), seconds);
        }
        reading
    }
}

/// Milliseconds of CPU per saga for each process read both times, and their `total`.
pub fn per_saga(before: &Reading, after: &Reading, sagas: usize) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    if sagas == 0 {
        return out;
    }
    let mut total = 0.0;
    for (name, end) in after {
        if let Some(start) = before.get(name) {
            let ms = (end - start) * 1000.0 / sagas as f64;
            total += ms;
            out.insert(name.clone(), round(ms));
        }
    }
    out.insert("total".to_owned(), round(total));
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
        assert_eq!(probe.metrics[0], ("gateway", "http://127.0.0.1:18080/metrics".to_owned()));
        assert_eq!(probe.metrics[5], ("notification-service", "http://127.0.0.1:18085/metrics".to_owned()));
    }

    #[test]
    fn reads_the_counter_and_divides_by_the_sagas() {
        let text = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\nother 1\n";
        assert_eq!(metric(text, "process_cpu_seconds_total"), Some(12.5));
        let before = Reading::from([("order-service".to_owned(), 10.0), ("gone".to_owned(), 1.0)]);
        let after = Reading::from([("order-service".to_owned(), 12.0), ("new".to_owned(), 5.0)]);
        let per = per_saga(&before, &after, 1000);
        assert_eq!(per["order-service"], 2.0);
        assert_eq!(per["total"], 2.0);
        assert!(!per.contains_key("new") && !per.contains_key("gone"));
    }
}
