//! `check-invariants`: reads every service's database and checks the contract's
//! invariants, retrying while the system settles; exits 1 naming what breaks them.
//!
//! ```text
//! check-invariants [--data DIR | --postgres URL [--database-prefix P]] [--within SECONDS]
//! ```
//! `--data` (default `data`, where `./run.sh` keeps the SQLite files) or `--postgres`
//! (a server URL without a database, e.g. `postgres://postgres@127.0.0.1:5432`, whose
//! databases are `<P>user_service` and so on).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use invariants::Databases;

const USAGE: &str =
    "usage: check-invariants [--data DIR | --postgres URL [--database-prefix P]] [--within SECONDS]";

fn parse(args: &[String]) -> Result<(Databases, Duration), String> {
    let mut databases = Databases::sqlite_dir(&PathBuf::from("data"));
    let mut postgres: Option<String> = None;
    let mut prefix = String::new();
    let mut within = Duration::from_secs(0);
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--data" => databases = Databases::sqlite_dir(&PathBuf::from(value()?)),
            "--postgres" => postgres = Some(value()?.clone()),
            "--database-prefix" => prefix.clone_from(value()?),
            "--within" => {
                let raw = value()?;
                let seconds: u64 =
                    raw.parse().map_err(|_| format!("--within: {raw} is not whole seconds"))?;
                within = Duration::from_secs(seconds);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    if let Some(server) = postgres {
        databases = Databases::postgres_prefixed(&server, &prefix);
    } else if !prefix.is_empty() {
        return Err(format!("--database-prefix goes with --postgres\n{USAGE}"));
    }
    Ok((databases, within))
}

#[allow(clippy::print_stdout)]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (databases, within) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("check-invariants: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let deadline = Instant::now() + within;
        loop {
            let snapshot = match invariants::read(&databases).await {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    let cause =
                        std::error::Error::source(&error).map(ToString::to_string).unwrap_or_default();
                    eprintln!("check-invariants: {error}: {cause}");
                    return ExitCode::FAILURE;
                }
            };
            let violations = invariants::check(&snapshot);
            if violations.is_empty() {
                println!(
                    "invariants hold: {} users, {} orders, {} products, {} payments, {} e-mails, {} duplicates",
                    snapshot.users.len(),
                    snapshot.orders.len(),
                    snapshot.products.len(),
                    snapshot.payments.len(),
                    snapshot.mails.len(),
                    invariants::duplicates(&snapshot)
                );
                return ExitCode::SUCCESS;
            }
            // A system still draining shows transient violations; only the last look counts.
            if Instant::now() >= deadline {
                for violation in &violations {
                    println!("{violation}");
                }
                println!("{} violations, {} duplicates", violations.len(), invariants::duplicates(&snapshot));
                return ExitCode::FAILURE;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}
