//! user-service: users, sign-up and sign-in (:8081). Publishes `UserSignedUp` through its
//! outbox, and signs the bearer tokens every service checks.
//!
//! `domain` validates a sign-up once and holds the failed sign-in limit; `password`
//! hashes and checks with Argon2id; `store` is the SQL; `sign_in` the steps of a sign-in;
//! `keys` the signing key's file; `admin` the admin account kept at start; `api` holds
//! the thin handlers.

pub mod admin;
pub mod api;
pub mod domain;
pub mod error;
pub mod keys;
pub mod password;
pub mod sign_in;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use platform::auth::{Signer, Verifier};
use platform::config::{ConfigError, Env};
use platform::db::Migrations;
use platform::{Context, ServiceSpec};
use shared_events::topics;

use crate::domain::{AdminAccount, Email, FailureLimit, Password};
use crate::keys::{KeyFile, KeyOrigin};

/// The `users` schema.
pub const MIGRATIONS: Migrations = Migrations::portable(|| sqlx::migrate!("../../migrations/user-service"));

/// The service's own settings, read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The signing key: `JWT_SIGNING_KEY_FILE`, or the file kept beside the database of
    /// `DATABASE_URL`.
    pub key_file: KeyFile,
    /// How long a token lives (`JWT_TTL_SECONDS`, 3600 by default, 60 to 86400).
    pub token_ttl: Duration,
    /// The admin account, when `ADMIN_EMAIL` and `ADMIN_PASSWORD` are both set.
    pub admin: Option<AdminAccount>,
}

impl Settings {
    /// From the environment; a bad value is named (a password never is shown).
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let given = env.parse(
            keys::VARIABLE,
            || None,
            |path| {
                if path.is_empty() {
                    Err("expected the path of a PKCS#8 DER Ed25519 private key, or unset".to_owned())
                } else {
                    Ok(Some(KeyFile::Given(path.into())))
                }
            },
        )?;
        // The platform reads and checks DATABASE_URL; only its folder matters here.
        let key_file = given.unwrap_or_else(|| {
            KeyFile::beside_database(
                &env.get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/user-service.db".to_owned()),
            )
        });
        let token_ttl = Duration::from_secs(env.number("JWT_TTL_SECONDS", 3600, 60..=86_400, "seconds")?);
        Ok(Self { key_file, token_ttl, admin: admin_account(env)? })
    }
}

/// `ADMIN_EMAIL` and `ADMIN_PASSWORD`: both or neither.
fn admin_account(env: &Env<'_>) -> Result<Option<AdminAccount>, ConfigError> {
    let error = |variable: &str, value: String, reason: String| ConfigError {
        variable: variable.to_owned(),
        value,
        reason,
    };
    match (env.get("ADMIN_EMAIL"), env.get("ADMIN_PASSWORD")) {
        (None, None) => Ok(None),
        (Some(email), Some(password)) => Ok(Some(AdminAccount {
            // Trimmed: a value read from a file often ends in a newline.
            email: Email::parse(email.trim())
                .map_err(|problem| error("ADMIN_EMAIL", email, problem.detail.unwrap_or_default()))?,
            // Its value is never shown, not even when it breaks a rule.
            password: Password::parse(&password).map_err(|problem| {
                error("ADMIN_PASSWORD", "***".to_owned(), problem.detail.unwrap_or_default())
            })?,
        })),
        (Some(_), None) => Err(error(
            "ADMIN_PASSWORD",
            String::new(),
            "unset while ADMIN_EMAIL is set: set both, or neither".to_owned(),
        )),
        (None, Some(_)) => Err(error(
            "ADMIN_EMAIL",
            String::new(),
            "unset while ADMIN_PASSWORD is set: set both, or neither".to_owned(),
        )),
    }
}

/// What the service signs tokens with and the admin account it keeps: built once at
/// start, shared by [`spec`] (which verifies with the signer's own key) and [`routes`].
#[derive(Debug, Clone)]
pub struct Auth {
    signer: Arc<Signer>,
    origin: KeyOrigin,
    admin: Option<AdminAccount>,
    limit: FailureLimit,
}

impl Auth {
    /// Reads the key `settings` name, or generates the kept one at first start; a file
    /// that cannot be read or written is an error naming `JWT_SIGNING_KEY_FILE`.
    pub fn load(settings: &Settings) -> Result<Self, ConfigError> {
        let (signer, origin) = settings.key_file.signer(settings.token_ttl)?;
        Ok(Self {
            signer: Arc::new(signer),
            origin,
            admin: settings.admin.clone(),
            limit: FailureLimit::default(),
        })
    }

    /// With `signer`'s key, kept in no file (tests, or a key obtained another way).
    pub fn with_signer(signer: Signer, admin: Option<AdminAccount>) -> Self {
        Self { signer: Arc::new(signer), origin: KeyOrigin::InMemory, admin, limit: FailureLimit::default() }
    }

    /// The signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
}

/// How the platform starts this service: its schema, the topics it creates, and its own
/// key to check tokens with (it never fetches its own JWKS over HTTP).
pub fn spec(auth: &Auth) -> ServiceSpec {
    let verifier = Verifier::fixed(&auth.signer.jwk_set())
        .expect("a signer's own JWKS holds one well-formed key with its kid");
    ServiceSpec::registered("user-service")
        .migrations(MIGRATIONS)
        .publishes(&[topics::USER_SIGNED_UP])
        .api_doc(<api::ApiDoc as utoipa::OpenApi>::openapi)
        .verifier(verifier)
}

/// The service's own HTTP routes, beside the platform's `/health`, `/ready` and
/// `/metrics`; with an admin account, they answer once it is in place.
pub fn routes(auth: &Auth) -> impl FnOnce(&Context) -> Router + use<> {
    let auth = auth.clone();
    move |context| {
        tracing::info!(kid = auth.signer.kid(), key = %auth.origin, "signing tokens");
        context.routes_on_db(|db| {
            let router =
                api::router(api::AppState { db: db.clone(), signer: auth.signer, limit: auth.limit });
            match auth.admin {
                Some(account) => admin::ensured_before_requests(router, db, account),
                None => router,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Settings::from_env(&Env::from_lookup(|name| vars.get(name).cloned()))
    }

    #[test]
    fn defaults_keep_the_key_under_data_for_an_hour_with_no_admin() {
        let defaults = settings(&[]).expect("defaults");
        assert_eq!(defaults.key_file, KeyFile::Kept("data/user-service.jwt.key".into()));
        assert_eq!(defaults.token_ttl, Duration::from_secs(3600));
        assert_eq!(defaults.admin, None);
        let postgres = settings(&[("DATABASE_URL", "postgres://postgres@db/user_service")]).expect("valid");
        assert_eq!(postgres.key_file.path(), Path::new("data/user-service.jwt.key"));
        let elsewhere =
            settings(&[("DATABASE_URL", "sqlite:///srv/users/user-service.db?mode=rwc")]).expect("valid");
        assert_eq!(elsewhere.key_file.path(), Path::new("/srv/users/user-service.jwt.key"));
    }

    #[test]
    fn variables_override_the_defaults() {
        let set = settings(&[
            ("JWT_SIGNING_KEY_FILE", "/run/secrets/jwt.der"),
            ("JWT_TTL_SECONDS", "600"),
            ("ADMIN_EMAIL", "Root@Example.com"),
            ("ADMIN_PASSWORD", "  spaces count  "),
        ])
        .expect("valid");
        assert_eq!(set.key_file, KeyFile::Given("/run/secrets/jwt.der".into()));
        assert_eq!(set.token_ttl, Duration::from_secs(600));
        let admin = set.admin.expect("both set");
        assert_eq!((admin.email.as_str(), admin.password.expose()), ("Root@Example.com", "  spaces count  "));
    }

    #[test]
    fn a_bad_value_is_named_and_a_password_never_shown() {
        for (vars, variable) in [
            (&[("JWT_TTL_SECONDS", "59")][..], "JWT_TTL_SECONDS"),
            (&[("JWT_TTL_SECONDS", "86401")][..], "JWT_TTL_SECONDS"),
            (&[("JWT_TTL_SECONDS", "an hour")][..], "JWT_TTL_SECONDS"),
            (&[("JWT_SIGNING_KEY_FILE", " ")][..], "JWT_SIGNING_KEY_FILE"),
            (&[("ADMIN_EMAIL", "root"), ("ADMIN_PASSWORD", "long enough")][..], "ADMIN_EMAIL"),
            (&[("ADMIN_EMAIL", "root@example.com"), ("ADMIN_PASSWORD", "short")][..], "ADMIN_PASSWORD"),
            (&[("ADMIN_EMAIL", "root@example.com")][..], "ADMIN_PASSWORD"),
            (&[("ADMIN_PASSWORD", "long enough")][..], "ADMIN_EMAIL"),
        ] {
            let error = settings(vars).expect_err(variable);
            assert_eq!(error.variable, variable, "{error}");
            for (_, value) in vars.iter().filter(|(name, _)| *name == "ADMIN_PASSWORD") {
                assert!(!error.to_string().contains(value), "{error}");
            }
        }
        let debug = format!("{:?}", settings(&[("ADMIN_EMAIL", "a@b.co"), ("ADMIN_PASSWORD", "p4ssw0rd!")]));
        assert!(!debug.contains("p4ssw0rd!"), "{debug}");
    }
}
