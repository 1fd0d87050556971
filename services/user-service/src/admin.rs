//! The admin account `ADMIN_EMAIL` and `ADMIN_PASSWORD` name, created or brought up to
//! date at every start.
//!
//! It needs the database, which the platform opens in `Application::build` before it
//! calls [`routes`](crate::routes); that function is not async, so the work runs as a
//! task spawned from it, and the service's own routes hold each request until the task
//! is done. Without that gate a sign-up with the admin's e-mail could come first and be
//! turned into the admin account a moment later, with a token of its own still valid.
//! A failure is logged, and the routes open anyway: the service then runs without the
//! admin account rather than not at all.

use axum::Router;
use axum::extract::Request;
use axum::middleware::Next;
use platform::auth::Role;
use platform::clock::now_ms;
use platform::db::Db;
use shared_events::UserSignedUp;
use tokio::sync::watch;
use uuid::Uuid;

use crate::domain::AdminAccount;
use crate::error::UserError;
use crate::password;
use crate::store::{self, User};

/// What [`ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// A new user, with `UserSignedUp` published (a wallet and a welcome mail follow).
    Created(Uuid),
    /// The user with that e-mail now has the password and the admin role.
    Updated(Uuid),
}

/// The display name of an admin account created here.
pub const NAME: &str = "Admin";

/// Creates `account` as an admin, or gives the user with its e-mail (ignoring case) its
/// password and the admin role: one transaction, with `UserSignedUp` when created.
pub async fn ensure(db: &Db, account: &AdminAccount) -> Result<Ensured, UserError> {
    let password_hash = password::hash(account.password.clone()).await?;
    let email_key = account.email.key();
    let mut tx = db.begin_write().await?;
    if let Some(id) = store::make_admin(tx.conn().await?, &email_key, &password_hash).await? {
        tx.commit().await?;
        return Ok(Ensured::Updated(id));
    }
    let user = User {
        id: Uuid::now_v7(),
        email: account.email.as_str().to_owned(),
        name: NAME.to_owned(),
        role: Role::Admin,
        created_at_ms: now_ms(),
    };
    let ensured = if store::insert(tx.conn().await?, &user, &email_key, &password_hash).await? {
        tx.publish(&UserSignedUp { user_id: user.id, email: user.email.clone(), name: user.name.clone() })
            .await?;
        Ensured::Created(user.id)
    } else {
        // Another instance starting at the same time created it between the two
        // statements (PostgreSQL): update that one.
        let id = store::make_admin(tx.conn().await?, &email_key, &password_hash).await?;
        Ensured::Updated(id.ok_or_else(|| UserError::NotFound(email_key.clone()))?)
    };
    tx.commit().await?;
    Ok(ensured)
}

/// `router`, whose requests wait until `account` is in place: [`ensure`] runs in a task
/// spawned now, on the runtime the service is built in.
pub fn ensured_before_requests(router: Router, db: Db, account: AdminAccount) -> Router {
    let (done, ready) = watch::channel(false);
    tokio::spawn(async move {
        if account.has_default_password() {
            tracing::warn!(
                "ADMIN_PASSWORD is the documented default: anyone who read the README can sign in \
                 as admin; set another"
            );
        }
        match ensure(&db, &account).await {
            Ok(Ensured::Created(user_id)) => tracing::info!(%user_id, "admin account created"),
            Ok(Ensured::Updated(user_id)) => tracing::info!(%user_id, "admin account updated"),
            Err(error) => tracing::error!(
                error = %platform::error_chain(&error),
                "the admin account could not be set up: serving without it"
            ),
        }
        let _ = done.send(true);
    });
    router.layer(axum::middleware::from_fn(move |request: Request, next: Next| {
        let mut ready = ready.clone();
        async move {
            // Err: the task ended without saying so (it panicked); serve anyway.
            let _ = ready.wait_for(|done| *done).await;
            next.run(request).await
        }
    }))
}
