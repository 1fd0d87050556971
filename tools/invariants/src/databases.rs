//! Where each service's database is.

use std::path::Path;

/// The five services' database URLs (`sqlite://…` or `postgres://…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Databases {
    /// user-service.
    pub user: String,
    /// order-service.
    pub order: String,
    /// inventory-service.
    pub inventory: String,
    /// payment-service.
    pub payment: String,
    /// notification-service.
    pub notification: String,
}

impl Databases {
    /// The SQLite files `./run.sh` uses: `<dir>/<service>.db`, opened read-only.
    pub fn sqlite_dir(dir: &Path) -> Self {
        let url = |service: &str| format!("sqlite://{}/{service}.db?mode=ro", dir.display());
        Self {
            user: url("user-service"),
            order: url("order-service"),
            inventory: url("inventory-service"),
            payment: url("payment-service"),
            notification: url("notification-service"),
        }
    }

    /// One PostgreSQL server with a database per service (`user_service`, …), as
    /// `./run.sh --postgres` and docker compose set it up. `server` is the URL without a
    /// database, e.g. `postgres://postgres@127.0.0.1:5432`.
    pub fn postgres(server: &str) -> Self {
        Self::postgres_prefixed(server, "")
    }

    /// As [`Databases::postgres`], each database name preceded by `prefix` (the chaos run
    /// makes `chaos_<run>_user_service` and so on beside the usual ones).
    pub fn postgres_prefixed(server: &str, prefix: &str) -> Self {
        let server = server.trim_end_matches('/');
        let url = |db: &str| format!("{server}/{prefix}{db}");
        Self {
            user: url("user_service"),
            order: url("order_service"),
            inventory: url("inventory_service"),
            payment: url("payment_service"),
            notification: url("notification_service"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_services_database_as_run_sh_does() {
        let sqlite = Databases::sqlite_dir(Path::new("data"));
        assert_eq!(sqlite.order, "sqlite://data/order-service.db?mode=ro");
        let postgres = Databases::postgres("postgres://postgres@127.0.0.1:5432/");
        assert_eq!(postgres.payment, "postgres://postgres@127.0.0.1:5432/payment_service");
        let prefixed = Databases::postgres_prefixed("postgres://h:1", "chaos_7_");
        assert_eq!(prefixed.user, "postgres://h:1/chaos_7_user_service");
    }
}
