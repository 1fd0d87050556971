//! The user-service process: configuration and the signing key, then serve until stopped.

use platform::config::Env;

fn main() -> std::process::ExitCode {
    // Before the platform starts anything: a bad variable or an unreadable key file stops
    // the process here, naming the variable.
    match user_service::Settings::from_env(&Env::process())
        .and_then(|settings| user_service::Auth::load(&settings))
    {
        Ok(auth) => platform::app::run(user_service::spec(&auth), user_service::routes(&auth)),
        Err(error) => platform::app::bad_config("user-service", &error),
    }
}
