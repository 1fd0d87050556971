//! The `users` table.

use platform::db::text_at;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

/// A user as stored, without the password hash (which never leaves this module's writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// E-mail as written.
    pub email: String,
    /// Display name.
    pub name: String,
    /// When they signed up.
    pub created_at_ms: i64,
}

/// Inserts `user`; `false` when the e-mail (ignoring case) is taken.
pub async fn insert(
    conn: &mut AnyConnection,
    user: &User,
    email_key: &str,
    password_hash: &str,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO users (id, email, email_key, name, password_hash, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (email_key) DO NOTHING",
    )
    .bind(user.id.to_string())
    .bind(&user.email)
    .bind(email_key)
    .bind(&user.name)
    .bind(password_hash)
    .bind(user.created_at_ms)
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The user with `id`, if any.
pub async fn find(conn: &mut AnyConnection, id: Uuid) -> Result<Option<User>, sqlx::Error> {
    let row = sqlx::query("SELECT id, email, name, created_at_ms FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(User {
            id: text_at(&row, 0)?,
            email: row.try_get(1)?,
            name: row.try_get(2)?,
            created_at_ms: row.try_get(3)?,
        })
    })
    .transpose()
}
