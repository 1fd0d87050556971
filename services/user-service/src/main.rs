//! The user-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    platform::app::run(user_service::spec(), user_service::routes)
}
