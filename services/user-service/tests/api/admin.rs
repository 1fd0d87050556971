use std::time::Duration;

use platform::auth::{Role, Signer};
use rdkafka::Message;
use serde_json::{Value, json};
use user_service::Auth;
use user_service::domain::{AdminAccount, Email, Password};

use crate::helpers::{PASSWORD, auth_with_admin, problem, spawn_app, spawn_with};

async fn role_of(app: &crate::helpers::TestApp, email_key: &str) -> Vec<(String, String)> {
    sqlx::query_as("SELECT id, role FROM users WHERE email_key = $1")
        .bind(email_key)
        .fetch_all(app.db.pool())
        .await
        .expect("select")
}

#[tokio::test]
async fn the_admin_account_is_created_at_start_with_its_signed_up_event() {
    let (auth, admin) = auth_with_admin("admin-secret");
    let app = spawn_with(auth).await;
    // The first request waits until the account is in place: no sleep needed.
    let token = app.token(admin.email.as_str(), "admin-secret").await;
    let caller = app.verify(&token).await;
    assert_eq!(caller.role, Role::Admin);
    let rows = role_of(&app, &admin.email.key()).await;
    assert_eq!(rows, [(caller.user_id.to_string(), "admin".to_owned())]);

    // A user like any other: it has a wallet and a welcome mail to come.
    let event = app.signed_up_event(&caller.user_id.to_string()).await;
    let event: Value = serde_json::from_slice(event.payload().expect("payload")).expect("json");
    assert_eq!(event, json!({"userId": caller.user_id, "email": admin.email.as_str(), "name": "Admin"}));
}

#[tokio::test]
async fn a_restart_gives_the_admin_its_new_password_and_makes_an_existing_user_admin() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    let users = app.user_count().await;
    // The admin's e-mail is the user's, in another case.
    let account = |password: &str| AdminAccount {
        email: Email::parse(&user.email.to_uppercase()).expect("valid"),
        password: Password::parse(password).expect("valid"),
    };
    let restart = |password: &str| {
        Auth::with_signer(Signer::generate(Duration::from_secs(3600)), Some(account(password)))
    };
    let app = app.restart(restart("first-admin-password")).await;
    let token = app.token(&user.email, "first-admin-password").await;
    let caller = app.verify(&token).await;
    assert_eq!((caller.user_id.to_string(), caller.role), (user.id.clone(), Role::Admin));
    problem(app.sign_in(&user.email, PASSWORD).await, 401).await;

    let app = app.restart(restart("second-admin-password")).await;
    app.token(&user.email, "second-admin-password").await;
    problem(app.sign_in(&user.email, "first-admin-password").await, 401).await;
    assert_eq!(app.user_count().await, users, "the same account, updated");
    assert_eq!(role_of(&app, &user.email.to_lowercase()).await, [(user.id.clone(), "admin".to_owned())]);
}
