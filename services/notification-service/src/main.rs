//! The notification-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    platform::app::run(notification_service::spec(), notification_service::routes)
}
