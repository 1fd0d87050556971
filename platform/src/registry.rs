//! The services of the system, from `services/registry.txt`: the one list that names
//! every service with its port, whether it owns a database, and the `/api` paths it serves.
//! The platform takes a service's defaults from it, the gateway its routes, the tools and
//! the scripts their lists.

use std::sync::LazyLock;

/// One service of the system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Its name: the crate, the binary, the Zipkin service name and the consumer group.
    pub name: &'static str,
    /// The port it listens on by default.
    pub port: u16,
    /// Whether it owns a database (every service but the gateway).
    pub owns_database: bool,
    /// The first segments of the `/api/...` paths it serves.
    pub api_paths: Vec<&'static str>,
}

impl Service {
    /// The variable that overrides its base URL for the gateway: `ORDER_SERVICE_URL`, ...
    pub fn url_variable(&self) -> String {
        format!("{}_URL", self.name.to_ascii_uppercase().replace('-', "_"))
    }

    /// Its database name on a shared PostgreSQL server: `order_service`, ...
    pub fn database_name(&self) -> String {
        self.name.replace('-', "_")
    }
}

const REGISTRY: &str = include_str!("../../services/registry.txt");

static SERVICES: LazyLock<Vec<Service>> =
    LazyLock::new(|| parse(REGISTRY).unwrap_or_else(|error| panic!("services/registry.txt: {error}")));

/// Every service, in start order (the gateway last).
pub fn services() -> &'static [Service] {
    &SERVICES
}

/// The service called `name`.
pub fn service(name: &str) -> Option<&'static Service> {
    services().iter().find(|s| s.name == name)
}

/// The services that serve `/api` paths (behind the gateway): every one but the gateway.
pub fn api_services() -> impl Iterator<Item = &'static Service> {
    services().iter().filter(|s| !s.api_paths.is_empty())
}

/// The service that serves `path` (`/api/orders/42` → order-service).
pub fn owner_of(path: &str) -> Option<&'static Service> {
    let first = path.strip_prefix("/api/")?.split('/').next()?;
    services().iter().find(|s| s.api_paths.contains(&first))
}

/// Reads the registry's lines: `name port own|none paths...` (`-` for no paths).
fn parse(text: &'static str) -> Result<Vec<Service>, String> {
    let mut services: Vec<Service> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        let mut words = line.split_whitespace();
        let (Some(name), Some(port), Some(database)) = (words.next(), words.next(), words.next()) else {
            return Err(bad("expected name, port, database and paths"));
        };
        let port = port.parse().map_err(|_| bad("the port is not a number"))?;
        let owns_database = match database {
            "own" => true,
            "none" => false,
            _ => return Err(bad("the database column is own or none")),
        };
        let api_paths: Vec<&str> = words.filter(|w| *w != "-").collect();
        let taken = services
            .iter()
            .find(|s| s.name == name || s.port == port || s.api_paths.iter().any(|p| api_paths.contains(p)));
        if let Some(other) = taken {
            return Err(bad(&format!("name, port or path already taken by {}", other.name)));
        }
        services.push(Service { name, port, owns_database, api_paths });
    }
    Ok(services)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_has_the_contracts_services_and_starts_the_gateway_last() {
        // Not the whole list: a new service is one line in the registry, not a test edit.
        for (name, port) in [
            ("user-service", 8081),
            ("order-service", 8082),
            ("inventory-service", 8083),
            ("payment-service", 8084),
            ("notification-service", 8085),
        ] {
            assert_eq!(service(name).map(|s| (s.port, s.owns_database)), Some((port, true)), "{name}");
        }
        let gateway = service("gateway").expect("the gateway");
        assert_eq!((gateway.port, gateway.owns_database, gateway.api_paths.len()), (8080, false, 0));
        assert_eq!(services().last(), Some(gateway), "started last, once everything behind it answers");
        assert_eq!(service("payment-service").expect("listed").api_paths, ["wallets", "payments"]);
        assert_eq!(service("order-service").expect("listed").url_variable(), "ORDER_SERVICE_URL");
        assert_eq!(service("order-service").expect("listed").database_name(), "order_service");
    }

    #[test]
    fn every_api_path_of_the_contract_has_its_service() {
        for (path, owner) in [
            ("/api/users", "user-service"),
            ("/api/users/42", "user-service"),
            ("/api/orders/1/cancel", "order-service"),
            ("/api/products/SKU-1", "inventory-service"),
            ("/api/wallets/1/deposit", "payment-service"),
            ("/api/payments", "payment-service"),
            ("/api/emails/send", "notification-service"),
            ("/api/sms/send", "notification-service"),
            ("/api/notifications/failed", "notification-service"),
        ] {
            assert_eq!(owner_of(path).map(|s| s.name), Some(owner), "{path}");
        }
        assert_eq!(owner_of("/api/other"), None);
        assert_eq!(owner_of("/health"), None);
    }

    #[test]
    fn a_broken_line_is_named() {
        assert!(parse("a 1 own x\nb 1 own y").expect_err("port twice").contains("line 2"));
        assert!(parse("a 1 own x\nb 2 own x").expect_err("path twice").contains("taken by a"));
        assert!(parse("a one own").expect_err("port").contains("not a number"));
        assert!(parse("a 1 maybe").expect_err("database").contains("own or none"));
        assert!(parse("a 1").expect_err("short").contains("expected"));
    }

    #[test]
    fn the_compose_files_have_a_block_for_every_service() {
        // Compose cannot loop over the registry: this is what keeps the files in step. The
        // 3-broker file names every service that talks to Kafka (all with a database).
        let compose = include_str!("../../docker-compose.yml");
        let three_brokers = include_str!("../../docker-compose.3-brokers.yml");
        for service in services() {
            let block = format!("\n  {}:", service.name);
            assert!(compose.contains(&block), "docker-compose.yml has no block for {}", service.name);
            assert!(
                !service.owns_database || three_brokers.contains(&block),
                "docker-compose.3-brokers.yml has no block for {}",
                service.name
            );
        }
    }
}
