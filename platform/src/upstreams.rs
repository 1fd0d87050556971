//! Where each service listens, for those that call them: the gateway, and the saga board
//! reading their `/metrics`. Which service owns which `/api` path comes from the registry
//! of services (`services/registry.txt`); only the URLs are set here.

use crate::config::{ConfigError, Env};
use crate::registry::{self, Service};

/// The variable whose value makes every service's URL from its name and port.
pub const TEMPLATE_VARIABLE: &str = "SERVICE_URL_TEMPLATE";

/// The base URL of every registered service that serves an `/api` path, in the
/// registry's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    urls: Vec<(&'static str, String)>,
}

impl Default for Upstreams {
    /// Every service on this machine, at its registered port.
    fn default() -> Self {
        Self::from_template(DEFAULT_TEMPLATE)
    }
}

const DEFAULT_TEMPLATE: &str = "http://127.0.0.1:{port}";

impl Upstreams {
    /// From `SERVICE_URL_TEMPLATE` (`http://127.0.0.1:{port}` by default; `{service}` and
    /// `{port}` are filled in per service, e.g. `http://{service}:{port}` under Docker
    /// Compose), then each service's own `<NAME>_URL` (`ORDER_SERVICE_URL`, ...) if set.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let template = env.parse(TEMPLATE_VARIABLE, || DEFAULT_TEMPLATE.to_owned(), http_url)?;
        let mut upstreams = Self::from_template(&template);
        for service in registry::api_services() {
            if let Some(url) = env.parse(&service.url_variable(), || None, |v| http_url(v).map(Some))? {
                upstreams = upstreams.with(service.name, url);
            }
        }
        Ok(upstreams)
    }

    fn from_template(template: &str) -> Self {
        let url = |s: &Service| template.replace("{service}", s.name).replace("{port}", &s.port.to_string());
        Self { urls: registry::api_services().map(|s| (s.name, url(s))).collect() }
    }

    /// The same, with service `name` at `url` instead (tests point it at their own servers).
    ///
    /// # Panics
    /// When `name` serves no `/api` path: a test that names a service wrongly.
    pub fn with(mut self, name: &str, url: impl Into<String>) -> Self {
        let entry = self.urls.iter_mut().find(|(service, _)| *service == name);
        entry.unwrap_or_else(|| panic!("{name} serves no /api path")).1 = url.into();
        self
    }

    /// The service called `name` and its base URL.
    pub fn by_name(&self, name: &str) -> Option<(&'static str, &str)> {
        self.urls.iter().find(|(service, _)| *service == name).map(|(service, url)| (*service, url.as_str()))
    }

    /// The service (name and base URL) that serves `path`, if any: the owner of an `/api`
    /// path, and the issuer of the tokens for the JWKS.
    pub fn for_path(&self, path: &str) -> Option<(&'static str, &str)> {
        if path == crate::auth::JWKS_PATH {
            return self.by_name(crate::auth::ISSUER);
        }
        self.by_name(registry::owner_of(path)?.name)
    }

    /// The services, by name.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.urls.iter().map(|(service, _)| *service)
    }
}

/// A base URL, without the trailing slash the paths bring.
fn http_url(value: &str) -> Result<String, String> {
    crate::config::http_url(value).map(|url| url.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Upstreams, ConfigError> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Upstreams::from_env(&Env::from_lookup(|name| vars.get(name).cloned()))
    }

    #[test]
    fn every_api_path_goes_to_its_service_at_its_registered_port() {
        let upstreams = Upstreams::default();
        assert_eq!(
            upstreams.for_path("/api/orders/1/cancel"),
            Some(("order-service", "http://127.0.0.1:8082"))
        );
        assert_eq!(
            upstreams.for_path("/api/sms/send"),
            Some(("notification-service", "http://127.0.0.1:8085"))
        );
        assert_eq!(upstreams.for_path("/api/other"), None);
        assert_eq!(
            upstreams.for_path("/.well-known/jwks.json"),
            Some(("user-service", "http://127.0.0.1:8081")),
            "the keys of the tokens, from the service that signs them"
        );
        assert_eq!(upstreams.by_name("gateway"), None, "the gateway is not behind itself");
        assert_eq!(upstreams.by_name("saga-board"), Some(("saga-board", "http://127.0.0.1:8086")));
        assert_eq!(upstreams.names().count(), registry::api_services().count(), "every service behind it");
    }

    #[test]
    fn the_template_sets_every_url_and_a_service_variable_overrides_its_own() {
        let upstreams = from(&[
            ("SERVICE_URL_TEMPLATE", "http://{service}:{port}/"),
            ("PAYMENT_SERVICE_URL", "https://pay.example.com"),
        ])
        .expect("valid");
        assert_eq!(upstreams.by_name("order-service"), Some(("order-service", "http://order-service:8082")));
        assert_eq!(
            upstreams.by_name("payment-service"),
            Some(("payment-service", "https://pay.example.com"))
        );
        assert_eq!(from(&[]).expect("defaults"), Upstreams::default());
    }

    #[test]
    fn a_url_that_is_not_http_is_named_with_its_variable() {
        assert_eq!(
            from(&[("ORDER_SERVICE_URL", "order:8082")]).expect_err("bad").variable,
            "ORDER_SERVICE_URL"
        );
        assert_eq!(
            from(&[("SERVICE_URL_TEMPLATE", "{service}")]).expect_err("bad").variable,
            "SERVICE_URL_TEMPLATE"
        );
    }
}
