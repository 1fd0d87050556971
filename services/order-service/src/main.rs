//! The order-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    platform::app::run(order_service::spec(), order_service::routes)
}
