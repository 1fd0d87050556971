//! The saga-board process: configuration from the environment, then serve until stopped.

fn main() -> std::process::ExitCode {
    match saga_board::Settings::from_env(&platform::config::Env::process()) {
        Ok(settings) => {
            let changes = saga_board::changes::Changes::new();
            platform::app::run(saga_board::spec(changes.clone()), saga_board::routes(settings, changes))
        }
        Err(error) => platform::app::bad_config("saga-board", &error),
    }
}
