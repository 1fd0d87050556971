//! The payment-service process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    match payment_service::Settings::from_env(&platform::config::Env::process()) {
        Ok(settings) => platform::app::run(payment_service::spec(settings), payment_service::routes),
        Err(error) => platform::app::bad_config("payment-service", &error),
    }
}
