//! The payment-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    if let Err(error) = payment_service::initial_balance() {
        eprintln!("payment-service: {error}");
        return std::process::ExitCode::from(2);
    }
    platform::app::run(payment_service::spec(), payment_service::routes)
}
