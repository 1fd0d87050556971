use platform::auth::Role;
use serde_json::Value;

use crate::helpers::{auth_with_admin, problem, spawn_app, spawn_with};

#[tokio::test]
async fn a_user_reads_their_own_record_and_gets_404_for_anyone_elses() {
    let app = spawn_app().await;
    let ada = app.signed_up().await;
    let bob = app.signed_up().await;
    let own = app.get_user(&ada.id, Some(&ada.token)).await;
    assert_eq!(own.status(), 200);
    assert_eq!(own.json::<Value>().await.expect("json")["email"], ada.email.as_str());
    let other = problem(app.get_user(&bob.id, Some(&ada.token)).await, 404).await;
    let missing = problem(app.get_user(&uuid::Uuid::now_v7().to_string(), Some(&ada.token)).await, 404).await;
    assert_eq!(other["title"], missing["title"], "another user's record looks missing");
}

#[tokio::test]
async fn no_token_or_one_the_service_did_not_sign_is_a_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    let none = app.get_user(&user.id, None).await;
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    problem(none, 401).await;
    // Signed by a key that is not the service's own (the test key every other service
    // under test trusts), and not a token at all.
    let foreign = testkit::token(user.id.parse().expect("uuid"), Role::Admin);
    for token in [foreign.as_str(), "not-a-token"] {
        let response = app.get_user(&user.id, Some(token)).await;
        assert!(response.headers()["www-authenticate"].to_str().expect("ascii").starts_with("Bearer"));
        problem(response, 401).await;
    }
}

#[tokio::test]
async fn an_admin_reads_any_user() {
    let (auth, admin) = auth_with_admin("admin-secret");
    let app = spawn_with(auth).await;
    let user = app.signed_up().await;
    let token = app.token(admin.email.as_str(), "admin-secret").await;
    assert_eq!(app.verify(&token).await.role, Role::Admin);
    let read = app.get_user(&user.id, Some(&token)).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.expect("json")["id"], user.id.as_str());
}
