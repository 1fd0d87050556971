//! The gateway process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    match gateway::Settings::from_env(&platform::config::Env::process()) {
        Ok(settings) => platform::app::run(gateway::spec(), gateway::routes(settings)),
        Err(error) => platform::app::bad_config("gateway", &error),
    }
}
