//! Which service owns which `/api` path, and where each one listens.

use platform::config::ConfigError;

/// Base URLs of the services behind the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    /// user-service (`/api/users`).
    pub user: String,
    /// order-service (`/api/orders`).
    pub order: String,
    /// inventory-service (`/api/products`).
    pub inventory: String,
    /// payment-service (`/api/wallets`, `/api/payments`).
    pub payment: String,
    /// notification-service (`/api/emails`, `/api/sms`, `/api/notifications`).
    pub notification: String,
}

impl Default for Upstreams {
    fn default() -> Self {
        Self {
            user: "http://127.0.0.1:8081".to_owned(),
            order: "http://127.0.0.1:8082".to_owned(),
            inventory: "http://127.0.0.1:8083".to_owned(),
            payment: "http://127.0.0.1:8084".to_owned(),
            notification: "http://127.0.0.1:8085".to_owned(),
        }
    }
}

impl Upstreams {
    /// From `USER_SERVICE_URL`, `ORDER_SERVICE_URL`, `INVENTORY_SERVICE_URL`,
    /// `PAYMENT_SERVICE_URL` and `NOTIFICATION_SERVICE_URL`, each defaulting to its local port.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let read = |variable: &'static str, default: String| match std::env::var(variable) {
            Err(_) => Ok(default),
            Ok(value) if value.starts_with("http://") || value.starts_with("https://") => {
                Ok(value.trim_end_matches('/').to_owned())
            }
            Ok(value) => {
                Err(ConfigError { variable, value, reason: "expected an http(s):// URL".to_owned() })
            }
        };
        Ok(Self {
            user: read("USER_SERVICE_URL", defaults.user)?,
            order: read("ORDER_SERVICE_URL", defaults.order)?,
            inventory: read("INVENTORY_SERVICE_URL", defaults.inventory)?,
            payment: read("PAYMENT_SERVICE_URL", defaults.payment)?,
            notification: read("NOTIFICATION_SERVICE_URL", defaults.notification)?,
        })
    }

    /// The service called `name` and its base URL.
    pub fn by_name(&self, name: &str) -> Option<(&'static str, &str)> {
        match name {
            "user-service" => Some(("user-service", &self.user)),
            "order-service" => Some(("order-service", &self.order)),
            "inventory-service" => Some(("inventory-service", &self.inventory)),
            "payment-service" => Some(("payment-service", &self.payment)),
            "notification-service" => Some(("notification-service", &self.notification)),
            _ => None,
        }
    }

    /// The service (name and base URL) that serves `path`, if any.
    pub fn for_path(&self, path: &str) -> Option<(&'static str, &str)> {
        let first = path.strip_prefix("/api/")?.split('/').next()?;
        match first {
            "users" => Some(("user-service", &self.user)),
            "orders" => Some(("order-service", &self.order)),
            "products" => Some(("inventory-service", &self.inventory)),
            "wallets" | "payments" => Some(("payment-service", &self.payment)),
            "emails" | "sms" | "notifications" => Some(("notification-service", &self.notification)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_path_of_the_contract_has_its_service() {
        let upstreams = Upstreams::default();
        for (path, service) in [
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
            assert_eq!(upstreams.for_path(path).map(|(s, _)| s), Some(service), "{path}");
        }
        assert_eq!(upstreams.for_path("/api/other"), None);
        assert_eq!(upstreams.for_path("/health"), None);
    }
}
