//! Command-line options.

use std::time::Duration;

/// How orders are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Open loop: this many orders per second, whatever the system answers.
    Rate(f64),
    /// Closed loop: this many orders in flight, each followed by the next once terminal.
    Concurrency(usize),
}

/// What a run does.
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    /// The gateways' (or order-service's) base URLs: users are spread over them.
    pub base_urls: Vec<String>,
    /// Kafka, to watch the saga's events.
    pub kafka: String,
    /// Topic prefix of the system under test (`KAFKA_TOPIC_PREFIX`).
    pub topic_prefix: String,
    /// The admin account that creates the catalogue and follows every order.
    pub admin_email: String,
    /// Its password.
    pub admin_password: String,
    /// Pacing.
    pub pace: Pace,
    /// How long orders are placed.
    pub duration: Duration,
    /// How long to wait afterwards for every order to end.
    pub settle: Duration,
    /// Users signed up before the run.
    pub users: usize,
    /// How many of them have an address whose mail always fails (`+fail`), so that
    /// their mails walk the retries into the dead-letter topic during the run.
    pub undeliverable: usize,
    /// Ordinary products created before the run.
    pub products: usize,
    /// Print one JSON object as the last line.
    pub json: bool,
    /// The Kafka broker's process, for its CPU time (default: the local stack's broker).
    pub broker_pid: Option<u32>,
}

/// The help text.
pub const USAGE: &str = "\
usage: loadgen [--rate N | --concurrency N] [--duration S] [--base-url URL] [--users N]
               [--undeliverable N] [--products N] [--settle S] [--kafka HOST:PORT]
               [--topic-prefix P] [--broker-pid PID] [--json]

  --rate N          place N orders per second (open loop; default 100)
  --concurrency N   keep N orders in flight (closed loop: saturation)
  --duration S      seconds of placing orders (default 10)
  --base-url URL    where the API is (default http://127.0.0.1:8080, the gateway);
                    several, comma-separated: users are spread over them, and a
                    request that one refuses goes to the next
  --users N         users signed up first (default 50)
  --undeliverable N of them, with an address whose mail always fails (default 0)
  --products N      products created first (default 20)
  --settle S        seconds to wait for the last orders to end (default 60)
  --kafka H:P       Kafka, to watch the saga's events (default $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092)
  --topic-prefix P  topic prefix of the system (default $KAFKA_TOPIC_PREFIX or none)
  --admin EMAIL     the admin it signs in as to create products and follow orders
                    (default $ADMIN_EMAIL or admin@example.com; password $ADMIN_PASSWORD
                    or admin-password); every user it signs up signs in and orders for
                    themselves
  --broker-pid PID  the broker's process, for its CPU time per saga (default: the one
                    in .stack/kafka/1x9092/node-1/pid, if there)
  --json            end with one JSON object on a line of its own

CPU time per saga is read from each service's process_cpu_seconds_total (gateway on the
first base URL's port, the services on the ports after it) before and after the run, and
the Kafka requests per saga from their kafka_client_requests_total, five seconds later
(the clients report them every five seconds).
The longest stall is the longest time in which no saga ended.";

impl Args {
    /// Parses `args` (without the program name), with defaults from `env`.
    pub fn parse(args: &[String], env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut parsed = Self {
            base_urls: vec!["http://127.0.0.1:8080".to_owned()],
            kafka: env("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|| "127.0.0.1:9092".to_owned()),
            topic_prefix: env("KAFKA_TOPIC_PREFIX").unwrap_or_default(),
            admin_email: env("ADMIN_EMAIL").unwrap_or_else(|| "admin@example.com".to_owned()),
            admin_password: env("ADMIN_PASSWORD").unwrap_or_else(|| "admin-password".to_owned()),
            pace: Pace::Rate(100.0),
            duration: Duration::from_secs(10),
            settle: Duration::from_secs(60),
            users: 50,
            undeliverable: 0,
            products: 20,
            json: false,
            broker_pid: None,
        };
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            if flag == "--json" {
                parsed.json = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = |what: &str| -> Result<f64, String> {
                value
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite() && *n > 0.0)
                    .ok_or_else(|| format!("{what}: {value} is not a positive number"))
            };
            match flag.as_str() {
                "--rate" => parsed.pace = Pace::Rate(number("--rate")?),
                "--concurrency" => parsed.pace = Pace::Concurrency(number("--concurrency")? as usize),
                "--duration" => parsed.duration = Duration::from_secs_f64(number("--duration")?),
                "--settle" => parsed.settle = Duration::from_secs_f64(number("--settle")?),
                "--users" => parsed.users = number("--users")? as usize,
                "--undeliverable" => {
                    parsed.undeliverable =
                        value.parse().map_err(|_| format!("--undeliverable: {value} is not a count"))?;
                }
                "--products" => parsed.products = number("--products")? as usize,
                "--base-url" => {
                    parsed.base_urls =
                        value.split(',').map(|url| url.trim().trim_end_matches('/').to_owned()).collect();
                    if parsed.base_urls.iter().any(String::is_empty) {
                        return Err(format!("--base-url: {value} has an empty URL"));
                    }
                }
                "--kafka" => parsed.kafka.clone_from(value),
                "--topic-prefix" => parsed.topic_prefix.clone_from(value),
                "--admin" => parsed.admin_email.clone_from(value),
                "--broker-pid" => {
                    parsed.broker_pid = Some(
                        value.parse().map_err(|_| format!("--broker-pid: {value} is not a process id"))?,
                    );
                }
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        if parsed.undeliverable > parsed.users {
            return Err(format!("--undeliverable {} exceeds --users {}", parsed.undeliverable, parsed.users));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        Args::parse(&args, |_| None)
    }

    #[test]
    fn reads_pace_duration_and_target() {
        let args = parse(&["--concurrency", "64", "--duration", "5", "--base-url", "http://h:1/", "--json"])
            .expect("valid");
        assert_eq!(args.pace, Pace::Concurrency(64));
        assert_eq!(args.duration, Duration::from_secs(5));
        assert_eq!(args.base_urls, ["http://h:1"]);
        let two = parse(&["--base-url", "http://a:1/,http://b:2"]).expect("valid");
        assert_eq!(two.base_urls, ["http://a:1", "http://b:2"]);
        assert!(parse(&["--base-url", "http://a:1,"]).expect_err("empty").contains("--base-url"));
        assert!(args.json);
        assert_eq!(parse(&[]).expect("defaults").pace, Pace::Rate(100.0));
    }

    #[test]
    fn undeliverable_users_are_some_of_the_users() {
        assert_eq!(parse(&[]).expect("defaults").undeliverable, 0);
        assert_eq!(parse(&["--users", "20", "--undeliverable", "4"]).expect("valid").undeliverable, 4);
        assert!(
            parse(&["--users", "2", "--undeliverable", "3"]).expect_err("too many").contains("--users 2")
        );
        assert!(parse(&["--undeliverable", "x"]).expect_err("not a count").contains("--undeliverable"));
    }

    #[test]
    fn names_the_bad_argument() {
        assert!(parse(&["--rate", "-3"]).expect_err("negative").contains("--rate"));
        assert!(parse(&["--rate"]).expect_err("missing").contains("needs a value"));
        assert!(parse(&["--fast"]).expect_err("unknown").contains("--fast"));
    }
}
