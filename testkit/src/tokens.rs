//! Bearer tokens for tests: one test key for the whole test process, its JWKS served on a
//! port of its own (a thread with its own runtime, so it outlives every test's runtime),
//! and services under test pointed at it by [`service_config`](crate::service_config).

use std::sync::LazyLock;
use std::time::Duration;

use platform::auth::{Role, Signer};
use uuid::Uuid;

static SIGNER: LazyLock<Signer> = LazyLock::new(|| Signer::generate(Duration::from_secs(3600)));

static JWKS_URL: LazyLock<String> = LazyLock::new(|| {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port for the test JWKS");
    let url = format!("http://{}{}", listener.local_addr().expect("address"), platform::auth::JWKS_PATH);
    let jwks = SIGNER.jwks();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            listener.set_nonblocking(true).expect("nonblocking");
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let app = axum::Router::new().route(
                platform::auth::JWKS_PATH,
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
            axum::serve(listener, app).await.expect("serve the test JWKS");
        });
    });
    url
});

/// The key test tokens are signed with.
pub fn test_signer() -> &'static Signer {
    &SIGNER
}

/// Where the test key's JWKS is served.
pub fn test_jwks_url() -> String {
    JWKS_URL.clone()
}

/// A token of the test key for `user_id` with `role`.
pub fn token(user_id: Uuid, role: Role) -> String {
    SIGNER.token(user_id, role).expect("sign a test token")
}

/// `Bearer <token>` for a user with id `user_id`.
pub fn bearer(user_id: Uuid) -> String {
    format!("Bearer {}", token(user_id, Role::User))
}

/// `Bearer <token>` for an admin.
pub fn admin_bearer() -> String {
    format!("Bearer {}", token(Uuid::now_v7(), Role::Admin))
}
