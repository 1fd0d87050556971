//! Service configuration from environment variables, with working local defaults.
//!
//! Every variable is parsed once at start; a bad value stops the service with a
//! [`ConfigError`] naming the variable, the value and the rule it breaks.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything a service reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// The service's name: its Zipkin service name, Kafka client id and consumer group.
    pub service_name: &'static str,
    /// Where the HTTP server listens (`HTTP_ADDR`).
    pub http_addr: SocketAddr,
    /// Its own database (`DATABASE_URL`): SQLite by default, PostgreSQL by `postgres://`.
    pub database_url: String,
    /// Kafka connection and topic settings.
    pub kafka: KafkaConfig,
    /// Where spans go (`ZIPKIN_ENDPOINT`); `None` when set to the empty string.
    pub zipkin_endpoint: Option<String>,
    /// Which traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
    pub trace_sampler: TraceSampler,
    /// How a handler failure that may pass is retried before the dead-letter topic.
    pub retry: RetryPolicy,
    /// Where the keys that sign bearer tokens are published (`JWKS_URL`): user-service's
    /// JWKS, at its registered port on this machine by default.
    pub jwks_url: String,
}

impl ServiceConfig {
    /// The service's consumer group: its name, under the topic prefix (environments that
    /// share a cluster must not share groups either).
    pub fn consumer_group(&self) -> String {
        self.kafka.topic(self.service_name)
    }
}

/// Kafka settings shared by producers, consumers and topic creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS`, comma-separated `host:port` pairs.
    pub bootstrap_servers: String,
    /// `KAFKA_TOPIC_PARTITIONS`: partitions of the topics a service creates.
    pub topic_partitions: i32,
    /// `KAFKA_REPLICATION_FACTOR`: 1 on one broker, 3 in a 3-broker cluster.
    pub replication_factor: i32,
    /// `KAFKA_TOPIC_PREFIX`: put before every topic name, so that environments (or tests)
    /// can share a cluster without sharing topics. Empty by default.
    pub topic_prefix: String,
    /// `KAFKA_GROUP_INSTANCE_ID`: this instance's stable name in its consumer group
    /// (static membership). An instance restarted under the same name takes its
    /// partitions back at once, without a rebalance; unset, each start joins as a new
    /// member and the group waits out the old one's session first. Two running instances
    /// must never share one: the broker fences the older, which then stops.
    pub group_instance_id: Option<String>,
    /// `KAFKA_FETCH_LINGER_MS`: how long the broker may hold the consumer's fetch to
    /// gather more messages, in place of the service's own choice
    /// ([`crate::ServiceSpec::fetch_linger`]). 0: answered as soon as one message is there.
    pub fetch_linger: Option<Duration>,
}

impl KafkaConfig {
    /// The topic `name` of the contract as it is on this cluster.
    pub fn topic(&self, name: &str) -> String {
        format!("{}{name}", self.topic_prefix)
    }

    /// The contract's name of cluster topic `topic`.
    pub fn contract_name<'a>(&self, topic: &'a str) -> &'a str {
        topic.strip_prefix(self.topic_prefix.as_str()).unwrap_or(topic)
    }
}

/// Which traces are recorded, by the standard OpenTelemetry variables: `OTEL_TRACES_SAMPLER`
/// (`parentbased_traceidratio` by default, or `parentbased_always_on`,
/// `parentbased_always_off`, `traceidratio`, `always_on`, `always_off`) and, for the ratio
/// samplers, `OTEL_TRACES_SAMPLER_ARG` (0 to 1, default 1: every order traced).
///
/// The parent-based samplers follow the sampled flag of the caller's `traceparent` (HTTP
/// or Kafka header), so one order is traced whole or not at all: the ratio decides once,
/// where its trace starts (the gateway), and every hop after it follows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TraceSampler {
    /// Every span, whatever its parent says.
    AlwaysOn,
    /// No span.
    AlwaysOff,
    /// This share of traces by trace id, whatever its parent says.
    Ratio(f64),
    /// As the parent says; traces started here always.
    ParentBasedAlwaysOn,
    /// As the parent says; traces started here never.
    ParentBasedAlwaysOff,
    /// As the parent says; traces started here at this ratio.
    ParentBasedRatio(f64),
}

impl Default for TraceSampler {
    /// Parent-based, every trace started here: every order traced.
    fn default() -> Self {
        Self::ParentBasedRatio(1.0)
    }
}

impl TraceSampler {
    /// From the two variables' values (`None` when unset).
    pub fn parse(sampler: Option<&str>, arg: Option<&str>) -> Result<Self, (&'static str, String, String)> {
        let ratio = || match arg {
            None => Ok(1.0),
            Some(value) => {
                value.trim().parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                    ("OTEL_TRACES_SAMPLER_ARG", value.to_owned(), "expected a ratio from 0 to 1".to_owned())
                })
            }
        };
        match sampler.map(str::trim) {
            None | Some("parentbased_traceidratio") => Ok(Self::ParentBasedRatio(ratio()?)),
            Some("parentbased_always_on") => Ok(Self::ParentBasedAlwaysOn),
            Some("parentbased_always_off") => Ok(Self::ParentBasedAlwaysOff),
            Some("traceidratio") => Ok(Self::Ratio(ratio()?)),
            Some("always_on") => Ok(Self::AlwaysOn),
            Some("always_off") => Ok(Self::AlwaysOff),
            Some(other) => Err((
                "OTEL_TRACES_SAMPLER",
                other.to_owned(),
                "expected parentbased_traceidratio, parentbased_always_on, parentbased_always_off, \
                 traceidratio, always_on or always_off"
                    .to_owned(),
            )),
        }
    }
}

/// Retry policy: attempt `n` (1-based) that failed waits `backoff × multiplier^(n-1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// `RETRY_MAX_ATTEMPTS`: attempts in all, the first included.
    pub max_attempts: u32,
    /// `RETRY_BACKOFF_MS`: the wait after the first failed attempt.
    pub backoff: Duration,
    /// `RETRY_BACKOFF_MULTIPLIER`: growth of the wait from one attempt to the next.
    pub multiplier: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_attempts: 5, backoff: Duration::from_secs(1), multiplier: 2.0 }
    }
}

impl RetryPolicy {
    /// The wait before the attempt after failed attempt `attempt` (1-based).
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30) as i32;
        self.backoff.mul_f64(self.multiplier.powi(exponent))
    }
}

/// A configuration variable that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {variable}={value:?}: {reason}")]
pub struct ConfigError {
    /// The environment variable's name.
    pub variable: String,
    /// The value it had.
    pub value: String,
    /// The rule the value breaks.
    pub reason: String,
}

/// Defaults that differ from one service to the next.
#[derive(Debug, Clone, Copy)]
pub struct ServiceDefaults {
    /// The name of the service (`order-service`, ...).
    pub name: &'static str,
    /// Its port from the contract (8080..8085).
    pub port: u16,
}

impl ServiceConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env(defaults: ServiceDefaults) -> Result<Self, ConfigError> {
        Self::from_lookup(defaults, |name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(
        defaults: ServiceDefaults,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let vars = Env::from_lookup(lookup);
        let http_addr = vars.parse(
            "HTTP_ADDR",
            || SocketAddr::from(([127, 0, 0, 1], defaults.port)),
            |v| v.parse::<SocketAddr>().map_err(|_| "expected host:port, e.g. 127.0.0.1:8081".to_owned()),
        )?;
        let database_url = vars.parse(
            "DATABASE_URL",
            || default_database_url(defaults.name),
            |v| {
                if v.starts_with("sqlite:") || v.starts_with("postgres://") || v.starts_with("postgresql://")
                {
                    Ok(v.to_owned())
                } else {
                    Err("expected a sqlite: or postgres:// URL".to_owned())
                }
            },
        )?;
        let bootstrap_servers = vars.parse(
            "KAFKA_BOOTSTRAP_SERVERS",
            || "127.0.0.1:9092".to_owned(),
            |v| {
                let valid = v.split(',').all(|server| {
                    server
                        .rsplit_once(':')
                        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                });
                if valid { Ok(v.to_owned()) } else { Err("expected host:port[,host:port...]".to_owned()) }
            },
        )?;
        let topic_partitions = vars.number("KAFKA_TOPIC_PARTITIONS", 3, 1..=10_000, WHOLE)?;
        let replication_factor = vars.number("KAFKA_REPLICATION_FACTOR", 1, 1..=16, WHOLE)?;
        let topic_prefix = vars.parse("KAFKA_TOPIC_PREFIX", String::new, kafka_name)?;
        // Empty is none, as unset.
        let group_instance_id = vars.parse(
            "KAFKA_GROUP_INSTANCE_ID",
            || None,
            |v| kafka_name(v).map(|name| Some(name).filter(|name| !name.is_empty())),
        )?;
        let fetch_linger = vars
            .optional_number("KAFKA_FETCH_LINGER_MS", 0..=10_000, "milliseconds")?
            .map(Duration::from_millis);
        let zipkin_endpoint = vars.parse(
            "ZIPKIN_ENDPOINT",
            || Some("http://127.0.0.1:9411/api/v2/spans".to_owned()),
            |v| match v {
                "" => Ok(None),
                url if url.starts_with("http://") || url.starts_with("https://") => Ok(Some(url.to_owned())),
                _ => Err("expected an http(s):// URL, or empty to disable tracing export".to_owned()),
            },
        )?;
        let trace_sampler = TraceSampler::parse(
            vars.get("OTEL_TRACES_SAMPLER").as_deref(),
            vars.get("OTEL_TRACES_SAMPLER_ARG").as_deref(),
        )
        .map_err(|(variable, value, reason)| ConfigError {
            variable: variable.to_owned(),
            value,
            reason,
        })?;
        let default_retry = RetryPolicy::default();
        let retry = RetryPolicy {
            max_attempts: vars.number("RETRY_MAX_ATTEMPTS", default_retry.max_attempts, 1..=100, WHOLE)?,
            backoff: Duration::from_millis(vars.number(
                "RETRY_BACKOFF_MS",
                default_retry.backoff.as_millis() as u64,
                0..=3_600_000,
                "milliseconds",
            )?),
            multiplier: vars.number(
                "RETRY_BACKOFF_MULTIPLIER",
                default_retry.multiplier,
                1.0..=10.0,
                "a number",
            )?,
        };
        let jwks_url = vars.parse("JWKS_URL", default_jwks_url, http_url)?;
        Ok(Self {
            service_name: defaults.name,
            jwks_url,
            http_addr,
            database_url,
            kafka: KafkaConfig {
                bootstrap_servers,
                topic_partitions,
                replication_factor,
                topic_prefix,
                group_instance_id,
                fetch_linger,
            },
            zipkin_endpoint,
            trace_sampler,
            retry,
        })
    }
}

/// `value` if it may stand in a Kafka topic or member name (up to 100 of a-z A-Z 0-9 . _ -,
/// empty too), or the rule it breaks: for [`Env::parse`].
fn kafka_name(value: &str) -> Result<String, String> {
    if value.len() <= 100 && value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        Ok(value.to_owned())
    } else {
        Err("expected up to 100 of a-z A-Z 0-9 . _ -".to_owned())
    }
}

/// `value` if it is an http(s):// URL, or the rule it breaks: for [`Env::parse`].
pub fn http_url(value: &str) -> Result<String, String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.to_owned())
    } else {
        Err("expected an http(s):// URL".to_owned())
    }
}

/// user-service's JWKS at its registered port on this machine.
fn default_jwks_url() -> String {
    let port = crate::registry::service(crate::auth::ISSUER).map_or(8081, |s| s.port);
    format!("http://127.0.0.1:{port}{}", crate::auth::JWKS_PATH)
}

/// `./data/<service>.db`, created if missing.
fn default_database_url(service: &str) -> String {
    format!("sqlite://data/{service}.db?mode=rwc")
}

/// How [`Env::number`] names a count in its error.
const WHOLE: &str = "a whole number";

/// The variables a process is configured with, read one by one: [`ServiceConfig`] and a
/// service's own settings read theirs through it, so every bad value stops the service
/// the same way, naming the variable, its value and the rule.
pub struct Env<'a> {
    lookup: Box<Lookup<'a>>,
}

/// What reads one variable's value.
type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

impl std::fmt::Debug for Env<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl<'a> Env<'a> {
    /// The process environment.
    pub fn process() -> Env<'static> {
        Env { lookup: Box::new(|name| std::env::var(name).ok()) }
    }

    /// Variables from `lookup`, which returns a variable's value if set (tests use a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String> + 'a) -> Self {
        Self { lookup: Box::new(lookup) }
    }

    /// The raw value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Parses `name` with `parse`, or returns `default()` when it is unset.
    pub fn parse<T>(
        &self,
        name: &str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default()),
            Some(value) => {
                parse(value.trim()).map_err(|reason| ConfigError { variable: name.to_owned(), value, reason })
            }
        }
    }

    /// A whole number of `unit` within `range`, or `default` when `name` is unset.
    pub fn number<T>(
        &self,
        name: &str,
        default: T,
        range: std::ops::RangeInclusive<T>,
        unit: &str,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        Ok(self.optional_number(name, range, unit)?.unwrap_or(default))
    }

    /// A whole number of `unit` within `range`, or `None` when `name` is unset.
    pub fn optional_number<T>(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<T>,
        unit: &str,
    ) -> Result<Option<T>, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display,
    {
        self.parse(
            name,
            || None,
            |v| {
                v.parse::<T>()
                    .ok()
                    .filter(|n| range.contains(n))
                    .map(Some)
                    .ok_or_else(|| format!("expected {unit} from {} to {}", range.start(), range.end()))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const ORDER: ServiceDefaults = ServiceDefaults { name: "order-service", port: 8082 };

    fn config(vars: &[(&str, &str)]) -> Result<ServiceConfig, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        ServiceConfig::from_lookup(ORDER, |name| vars.get(name).cloned())
    }

    #[test]
    fn trace_sampling_is_parent_based_every_trace_by_default_and_a_bad_value_is_named() {
        assert_eq!(config(&[]).expect("defaults").trace_sampler, TraceSampler::default());
        assert_eq!(TraceSampler::default(), TraceSampler::ParentBasedRatio(1.0));
        assert_eq!(
            config(&[("OTEL_TRACES_SAMPLER_ARG", "0.01")]).expect("valid").trace_sampler,
            TraceSampler::ParentBasedRatio(0.01)
        );
        assert_eq!(
            config(&[("OTEL_TRACES_SAMPLER", "always_off")]).expect("valid").trace_sampler,
            TraceSampler::AlwaysOff
        );
        let error = config(&[("OTEL_TRACES_SAMPLER_ARG", "1.5")]).expect_err("out of range");
        assert_eq!(error.variable, "OTEL_TRACES_SAMPLER_ARG");
        assert_eq!(
            config(&[("OTEL_TRACES_SAMPLER", "sometimes")]).expect_err("unknown").variable,
            "OTEL_TRACES_SAMPLER"
        );
    }

    #[test]
    fn defaults_work_locally_without_any_variable() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.http_addr, "127.0.0.1:8082".parse().expect("literal"));
        assert_eq!(config.database_url, "sqlite://data/order-service.db?mode=rwc");
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.kafka.topic_partitions, 3);
        assert_eq!(config.kafka.replication_factor, 1);
        assert_eq!(config.kafka.group_instance_id, None);
        assert_eq!(config.kafka.fetch_linger, None, "unset: the service's own choice");
        assert_eq!(config.zipkin_endpoint.as_deref(), Some("http://127.0.0.1:9411/api/v2/spans"));
        assert_eq!(config.retry, RetryPolicy::default());
    }

    #[test]
    fn variables_override_the_defaults() {
        let config = config(&[
            ("HTTP_ADDR", "0.0.0.0:9000"),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/order_service"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092,127.0.0.1:9094"),
            ("KAFKA_TOPIC_PARTITIONS", "6"),
            ("KAFKA_REPLICATION_FACTOR", "3"),
            ("KAFKA_TOPIC_PREFIX", "staging."),
            ("KAFKA_GROUP_INSTANCE_ID", "order-service-2"),
            ("KAFKA_FETCH_LINGER_MS", "0"),
            ("ZIPKIN_ENDPOINT", ""),
            ("RETRY_MAX_ATTEMPTS", "3"),
            ("RETRY_BACKOFF_MS", "10"),
            ("RETRY_BACKOFF_MULTIPLIER", "1.5"),
        ])
        .expect("valid values");
        assert_eq!(config.http_addr.port(), 9000);
        assert!(config.database_url.starts_with("postgres://"));
        assert_eq!(config.kafka.topic_partitions, 6);
        assert_eq!(config.kafka.replication_factor, 3);
        assert_eq!(config.kafka.topic("order.created"), "staging.order.created");
        assert_eq!(config.kafka.contract_name("staging.order.created"), "order.created");
        assert_eq!(config.kafka.group_instance_id.as_deref(), Some("order-service-2"));
        assert_eq!(config.kafka.fetch_linger, Some(Duration::ZERO));
        assert_eq!(config.zipkin_endpoint, None);
        assert_eq!(
            config.retry,
            RetryPolicy { max_attempts: 3, backoff: Duration::from_millis(10), multiplier: 1.5 }
        );
    }

    #[test]
    fn a_bad_value_is_named_with_its_variable() {
        for (variable, value) in [
            ("HTTP_ADDR", "localhost"),
            ("DATABASE_URL", "mysql://x"),
            ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1"),
            ("KAFKA_TOPIC_PARTITIONS", "0"),
            ("KAFKA_REPLICATION_FACTOR", "three"),
            ("KAFKA_TOPIC_PREFIX", "a b"),
            ("KAFKA_GROUP_INSTANCE_ID", "two words"),
            ("KAFKA_FETCH_LINGER_MS", "20000"),
            ("ZIPKIN_ENDPOINT", "127.0.0.1:9411"),
            ("RETRY_MAX_ATTEMPTS", "-1"),
            ("RETRY_BACKOFF_MS", "soon"),
            ("RETRY_BACKOFF_MULTIPLIER", "0.5"),
        ] {
            let error = config(&[(variable, value)]).expect_err(variable);
            assert_eq!(error.variable, variable);
            assert_eq!(error.value, value);
            assert!(error.to_string().starts_with(&format!("invalid {variable}=")), "{error}");
        }
    }

    #[test]
    fn backoff_grows_by_the_multiplier() {
        let policy = RetryPolicy::default();
        let waits: Vec<u64> = (1..=4).map(|n| policy.backoff_after(n).as_millis() as u64).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000]);
    }
}
