//! The gateway process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    platform::app::run(gateway::spec(), gateway::routes)
}
