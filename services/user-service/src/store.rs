//! The service's SQL: the `users` table, and the failed sign-ins of `sign_in_failures`.

use platform::auth::Role;
use platform::db::{Tx, text_at};
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

/// A user as stored, without the password hash (which never leaves this module's writes
/// except to be checked, through [`Credentials`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// E-mail as written.
    pub email: String,
    /// Display name.
    pub name: String,
    /// What they may do.
    pub role: Role,
    /// When they signed up.
    pub created_at_ms: i64,
}

/// What a sign-in checks a password against. Its `Debug` leaves the hash out.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user_id: Uuid,
    /// Their role, for the token.
    pub role: Role,
    /// The Argon2id PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user_id", &self.user_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Inserts `user`; `false` when the e-mail (ignoring case) is taken.
pub async fn insert(
    conn: &mut AnyConnection,
    user: &User,
    email_key: &str,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, email_key, name, password_hash, role, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (email_key) DO NOTHING",
    )
    .bind(user.id.to_string())
    .bind(&user.email)
    .bind(email_key)
    .bind(&user.name)
    .bind(password_hash)
    .bind(user.role.as_str())
    .bind(user.created_at_ms)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The user with `id`, if any.
pub async fn find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query("SELECT id, email, name, role, created_at_ms FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(User {
            id: text_at(&row, 0)?,
            email: row.try_get(1)?,
            name: row.try_get(2)?,
            role: text_at(&row, 3)?,
            created_at_ms: row.try_get(4)?,
        })
    })
    .transpose()
}

/// The credentials of the user with e-mail `email_key`, if any, their row locked until
/// `tx` ends (on PostgreSQL; a SQLite write transaction excludes every other writer
/// already): sign-ins for one account take turns at counting its failures.
pub async fn credentials(tx: &mut Tx, email_key: &str) -> Result<Option<Credentials>, sqlx::Error> {
    let sql = format!("SELECT id, role, password_hash FROM users WHERE email_key = $1{}", tx.for_update());
    let row = tx.read(sqlx::AssertSqlSafe(sql)).bind(email_key).fetch_optional().await?;
    row.map(|row| {
        Ok(Credentials {
            user_id: text_at(&row, 0)?,
            role: text_at(&row, 1)?,
            password_hash: row.try_get(2)?,
        })
    })
    .transpose()
}

/// Gives the user with e-mail `email_key` the password `password_hash` and the admin
/// role; their id, or `None` when nobody has that e-mail.
pub async fn make_admin(
    conn: &mut AnyConnection,
    email_key: &str,
    password_hash: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let row = sqlx::query("UPDATE users SET password_hash = $1, role = $2 WHERE email_key = $3 RETURNING id")
        .bind(password_hash)
        .bind(Role::Admin.as_str())
        .bind(email_key)
        .fetch_optional(conn)
        .await?;
    row.map(|row| text_at(&row, 0)).transpose()
}

/// Deletes every failed sign-in at or before `until` (epoch ms): they no longer count.
pub async fn delete_failures_until(conn: &mut AnyConnection, until: i64) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sign_in_failures WHERE failed_at_ms <= $1").bind(until).execute(conn).await?;
    Ok(())
}

/// The times of the newest `limit` failed sign-ins for `email_key` after `since`, newest
/// first.
pub async fn recent_failures(
    conn: &mut AnyConnection,
    email_key: &str,
    since: i64,
    limit: usize,
) -> Result<Vec<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT failed_at_ms FROM sign_in_failures WHERE email_key = $1 AND failed_at_ms > $2 \
         ORDER BY failed_at_ms DESC LIMIT $3",
    )
    .bind(email_key)
    .bind(since)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await
}

/// Records a failed sign-in for `email_key` at `at` (epoch ms) as `id`.
pub async fn insert_failure(
    conn: &mut AnyConnection,
    id: Uuid,
    email_key: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO sign_in_failures (id, email_key, failed_at_ms) VALUES ($1, $2, $3)")
        .bind(id.to_string())
        .bind(email_key)
        .bind(at)
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes back the failure `id` (the attempt it stood for succeeded).
pub async fn delete_failure(conn: &mut AnyConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sign_in_failures WHERE id = $1").bind(id.to_string()).execute(conn).await?;
    Ok(())
}
