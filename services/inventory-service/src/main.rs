//! The inventory-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    platform::app::run(inventory_service::spec(), inventory_service::routes)
}
