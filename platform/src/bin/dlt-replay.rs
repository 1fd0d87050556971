//! `dlt-replay`: puts messages of a dead-letter topic back on their original topic.
//!
//!     dlt-replay <topic>.dlt                         every message in it
//!     dlt-replay <topic>.dlt <partition> <offset>    one message
//!
//! Reads `KAFKA_BOOTSTRAP_SERVERS` (default 127.0.0.1:9092). Consumers drop a replayed
//! event they had applied after all, so replaying twice is harmless.

use std::process::ExitCode;

use platform::config::{ServiceConfig, ServiceDefaults};
use platform::dead_letter::{Selection, replay};

fn usage() -> ExitCode {
    eprintln!("usage: dlt-replay <topic>.dlt [<partition> <offset>]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (topic, selection) = match args.as_slice() {
        [topic] => (topic, Selection::All),
        [topic, partition, offset] => match (partition.parse(), offset.parse()) {
            (Ok(partition), Ok(offset)) => (topic, Selection::One { partition, offset }),
            _ => return usage(),
        },
        _ => return usage(),
    };
    if !topic.ends_with(shared_events::topics::DEAD_LETTER_SUFFIX) {
        eprintln!("dlt-replay: {topic} is not a dead-letter topic (they end in .dlt)");
        return ExitCode::from(2);
    }
    let config = match ServiceConfig::from_env(ServiceDefaults { name: "dlt-replay", port: 0 }) {
        Ok(config) => config,
        Err(error) => return platform::app::bad_config("dlt-replay", &error),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dlt-replay: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(replay(&config.kafka, topic, selection)) {
        Ok(count) => {
            eprintln!("dlt-replay: {count} message(s) of {topic} put back on their original topic");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("dlt-replay: {}", platform::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}
