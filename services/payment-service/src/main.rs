//! The payment-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    platform::app::run(payment_service::spec(), payment_service::routes)
}
