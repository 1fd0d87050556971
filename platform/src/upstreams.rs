//! Where each service listens, for those that call them: the gateway, and the saga board
//! reading their `/metrics`. Which service owns which `/api` path comes from the registry
//! of services (`services/registry.txt`); only the URLs are set here.

use crate::config::{ConfigError, Env};
use crate::registry::{self, Service};

/// The variable whose value makes every service's URL from its name and port.
pub const TEMPLATE_VARIABLE: &str = "SERVICE_URL_TEMPLATE";

/// The base URLs of every registered service that serves an `/api` path, in the
/// registry's order: one per running instance of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    urls: Vec<(&'static str, Vec<String>)>,
}

impl Default for Upstreams {
    /// Every service on this machine, at its registered port.
    fn default() -> Self {
        Self::from_templates(&[DEFAULT_TEMPLATE.to_owned()])
    }
}

const DEFAULT_TEMPLATE: &str = "http://127.0.0.1:{port}";

impl Upstreams {
    /// From `SERVICE_URL_TEMPLATE` (`http://127.0.0.1:{port}` by default; `{service}` and
    /// `{port}` are filled in per service, e.g. `http://{service}:{port}` under Docker
    /// Compose), then each service's own `<NAME>_URL` (`ORDER_SERVICE_URL`, ...) if set.
    /// Either may list several, comma-separated: one per instance of the service.
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let templates = env.parse(TEMPLATE_VARIABLE, || vec![DEFAULT_TEMPLATE.to_owned()], http_urls)?;
        let mut upstreams = Self::from_templates(&templates);
        for service in registry::api_services() {
            if let Some(urls) = env.parse(&service.url_variable(), || None, |v| http_urls(v).map(Some))? {
                upstreams = upstreams.with_instances(service.name, urls);
            }
        }
        Ok(upstreams)
    }

    fn from_templates(templates: &[String]) -> Self {
        let urls = |s: &Service| {
            templates
                .iter()
                .map(|t| t.replace("{service}", s.name).replace("{port}", &s.port.to_string()))
                .collect()
        };
        Self { urls: registry::api_services().map(|s| (s.name, urls(s))).collect() }
    }

    /// The same, with service `name` at `url` instead (tests point it at their own servers).
    ///
    /// # Panics
    /// When `name` serves no `/api` path: a test that names a service wrongly.
    pub fn with(self, name: &str, url: impl Into<String>) -> Self {
        self.with_instances(name, vec![url.into()])
    }

    /// The same, with service `name` at each of `urls` instead.
    ///
    /// # Panics
    /// When `name` serves no `/api` path, or `urls` is empty.
    pub fn with_instances(mut self, name: &str, urls: Vec<String>) -> Self {
        assert!(!urls.is_empty(), "{name} needs at least one URL");
        let entry = self.urls.iter_mut().find(|(service, _)| *service == name);
        entry.unwrap_or_else(|| panic!("{name} serves no /api path")).1 = urls;
        self
    }

    /// The service called `name` and the base URL of its first instance.
    pub fn by_name(&self, name: &str) -> Option<(&'static str, &str)> {
        self.instances(name).map(|(service, urls)| (service, urls[0].as_str()))
    }

    /// The service called `name` and the base URL of each of its instances (never none).
    pub fn instances(&self, name: &str) -> Option<(&'static str, &[String])> {
        self.urls
            .iter()
            .find(|(service, _)| *service == name)
            .map(|(service, urls)| (*service, urls.as_slice()))
    }

    /// The service (name and its instances' base URLs) that serves `path`, if any: the
    /// owner of an `/api` path, and the issuer of the tokens for the JWKS.
    pub fn for_path(&self, path: &str) -> Option<(&'static str, &[String])> {
        if path == crate::auth::JWKS_PATH {
            return self.instances(crate::auth::ISSUER);
        }
        self.instances(registry::owner_of(path)?.name)
    }

    /// The services, by name.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.urls.iter().map(|(service, _)| *service)
    }
}

/// Sends `request(url)` to the first of `urls` (at least one) that takes the connection,
/// calling `refused` for each that did not; the last one's answer or error otherwise. A
/// connection refused (or not accepted in the client's connect timeout) carried nothing
/// of the request, so passing it on is safe for any method.
pub async fn send_to_first_taker(
    urls: &[String],
    request: impl Fn(&str) -> reqwest::RequestBuilder,
    refused: impl Fn(&str, &reqwest::Error),
) -> Result<reqwest::Response, reqwest::Error> {
    let (last, others) = urls.split_last().expect("at least one URL");
    for url in others {
        match request(url).send().await {
            Err(error) if error.is_connect() => refused(url, &error),
            answered => return answered,
        }
    }
    request(last).send().await
}

/// Comma-separated base URLs, each without the trailing slash the paths bring.
fn http_urls(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(|url| crate::config::http_url(url.trim()).map(|url| url.trim_end_matches('/').to_owned()))
        .collect()
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
        let one = |url: &str| vec![url.to_owned()];
        assert_eq!(
            upstreams.for_path("/api/orders/1/cancel"),
            Some(("order-service", &one("http://127.0.0.1:8082")[..]))
        );
        assert_eq!(
            upstreams.for_path("/api/sms/send"),
            Some(("notification-service", &one("http://127.0.0.1:8085")[..]))
        );
        assert_eq!(upstreams.for_path("/api/other"), None);
        assert_eq!(
            upstreams.for_path("/.well-known/jwks.json"),
            Some(("user-service", &one("http://127.0.0.1:8081")[..])),
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
    fn several_templates_or_urls_are_the_instances_of_a_service() {
        let upstreams = from(&[
            ("SERVICE_URL_TEMPLATE", "http://127.0.0.1:2{port}, http://127.0.0.1:3{port}/"),
            ("USER_SERVICE_URL", "http://a:1,http://b:2"),
        ])
        .expect("valid");
        let urls = |list: &[&str]| list.iter().map(|u| (*u).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            upstreams.instances("order-service"),
            Some(("order-service", &urls(&["http://127.0.0.1:28082", "http://127.0.0.1:38082"])[..]))
        );
        assert_eq!(
            upstreams.for_path("/api/users/1"),
            Some(("user-service", &urls(&["http://a:1", "http://b:2"])[..]))
        );
        assert_eq!(upstreams.by_name("order-service"), Some(("order-service", "http://127.0.0.1:28082")));
        assert_eq!(
            from(&[("SERVICE_URL_TEMPLATE", "http://a:{port},")]).expect_err("an empty one").variable,
            "SERVICE_URL_TEMPLATE"
        );
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
