//! The gateway process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    if let Err(error) = gateway::Upstreams::from_env().and(gateway::timeout()) {
        eprintln!("gateway: {error}");
        return std::process::ExitCode::from(2);
    }
    platform::app::run(gateway::spec(), gateway::routes)
}
