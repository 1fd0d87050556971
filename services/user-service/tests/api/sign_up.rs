use rdkafka::Message;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, auth_with_admin, new_user, problem, spawn_app, spawn_with};

#[tokio::test]
async fn sign_up_returns_201_with_the_user_and_never_the_password() {
    let app = spawn_app().await;
    let body = new_user();
    let response = app.sign_up(&body).await;
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().expect("ascii").to_owned();
    let user: Value = response.json().await.expect("json");
    assert_eq!(user["email"], body["email"]);
    assert_eq!(user["name"], "Ada Lovelace");
    assert!(user["createdAt"].as_str().expect("createdAt").ends_with('Z'));
    assert_eq!(location, format!("/api/users/{}", user["id"].as_str().expect("id")));
    let text = user.to_string();
    assert!(
        !text.contains("analytical-engine") && !text.contains("argon2") && !text.contains("password"),
        "{text}"
    );

    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM users").fetch_one(app.db.pool()).await.expect("row");
    assert!(stored.starts_with("$argon2id$"), "stored as a salted Argon2id hash");

    let token = app.token(body["email"].as_str().expect("email"), PASSWORD).await;
    let fetched = app.get_user(user["id"].as_str().expect("id"), Some(&token)).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.json::<Value>().await.expect("json"), user);
}

#[tokio::test]
async fn sign_up_publishes_user_signed_up_without_the_password() {
    let app = spawn_app().await;
    let user: Value = app.sign_up(&new_user()).await.json().await.expect("json");
    let id = user["id"].as_str().expect("id").to_owned();
    let message = app.signed_up_event(&id).await;
    let event: Value = serde_json::from_slice(message.payload().expect("payload")).expect("json");
    assert_eq!(event, json!({"userId": id, "email": user["email"], "name": "Ada Lovelace"}));
    let headers = message.headers().expect("headers");
    let header = |name: &str| {
        rdkafka::message::Headers::iter(headers)
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("ce_type").as_deref(), Some("user.signed-up.v1"));
    assert_eq!(header("ce_source").as_deref(), Some("user-service"));
}

#[tokio::test]
async fn each_invalid_field_is_a_422_naming_the_field_and_the_rule() {
    let app = spawn_app().await;
    for (field, value, rule) in [
        ("email", json!("not-an-address"), "not an e-mail address"),
        ("email", json!("a@localhost"), "not an e-mail address"),
        ("email", json!(""), "is required"),
        ("name", json!("   "), "must not be blank"),
        ("name", json!("x".repeat(101)), "at most 100 characters"),
        ("password", json!("short"), "at least 8 characters"),
    ] {
        let mut body = new_user();
        body[field] = value;
        let problem = problem(app.sign_up(&body).await, 422).await;
        assert_eq!(problem["field"], field);
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.starts_with(&format!("{field}: ")) && detail.contains(rule), "{detail}");
    }
    assert_eq!(app.user_count().await, 0);
}

#[tokio::test]
async fn malformed_json_is_a_400_and_a_missing_field_a_422() {
    let app = spawn_app().await;
    let malformed = app
        .client
        .post(format!("{}/api/users", app.service.base_url))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("POST");
    let body = problem(malformed, 400).await;
    assert!(body["detail"].as_str().expect("detail").starts_with("malformed JSON"));

    let missing = problem(app.sign_up(&json!({"email": "a@b.co", "name": "A"})).await, 422).await;
    // Named like any other field that breaks a rule.
    assert_eq!(
        (&missing["field"], &missing["detail"]),
        (&json!("password"), &json!("password: is required"))
    );
}

#[tokio::test]
async fn an_email_taken_in_any_case_is_a_409() {
    let app = spawn_app().await;
    let first = new_user();
    assert_eq!(app.sign_up(&first).await.status(), 201);
    let mut again = new_user();
    again["email"] = json!(first["email"].as_str().expect("email").to_uppercase());
    let conflict = problem(app.sign_up(&again).await, 409).await;
    assert_eq!(conflict["field"], "email");
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn a_retried_sign_up_with_one_idempotency_key_creates_one_user() {
    let app = spawn_app().await;
    let body = new_user();
    let first = app.sign_up_with_key(&body, Some("retry-1")).await;
    assert_eq!(first.status(), 201);
    let first_location = first.headers()["location"].clone();
    let first: Value = first.json().await.expect("json");
    let again = app.sign_up_with_key(&body, Some("retry-1")).await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["location"], first_location);
    assert_eq!(again.json::<Value>().await.expect("json"), first, "the first response, again");
    assert_eq!(app.user_count().await, 1);

    let mut other_password = body.clone();
    other_password["password"] = json!("another-secret");
    let mismatch = problem(app.sign_up_with_key(&other_password, Some("retry-1")).await, 422).await;
    assert_eq!(mismatch["field"], "Idempotency-Key");
    let mut other_name = body.clone();
    other_name["name"] = json!("Someone Else");
    problem(app.sign_up_with_key(&other_name, Some("retry-1")).await, 422).await;
    assert_eq!(app.user_count().await, 1);
}

#[tokio::test]
async fn an_unknown_or_malformed_user_id_is_a_404() {
    // An admin, who may read anyone: the 404 is for the id, not for the caller.
    let (auth, admin) = auth_with_admin("admin-secret");
    let app = spawn_with(auth).await;
    let token = app.token(admin.email.as_str(), "admin-secret").await;
    problem(app.get_user(&uuid::Uuid::new_v4().to_string(), Some(&token)).await, 404).await;
    problem(app.get_user("not-a-uuid", Some(&token)).await, 404).await;
}
