use std::time::Duration;

use platform::auth::{Caller, Role};
use platform::clock::now_ms;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, problem, spawn_app};

/// Records a failed sign-in for `email` `seconds_ago`, as the service does.
async fn failed(app: &TestApp, email: &str, seconds_ago: i64) {
    sqlx::query("INSERT INTO sign_in_failures (id, email_key, failed_at_ms) VALUES ($1, $2, $3)")
        .bind(Uuid::now_v7().to_string())
        .bind(email.to_lowercase())
        .bind(now_ms() - seconds_ago * 1000)
        .execute(app.db.pool())
        .await
        .expect("insert a failure");
}

async fn failures(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM sign_in_failures").fetch_one(app.db.pool()).await.expect("count")
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds")
}

#[tokio::test]
async fn signing_in_gives_a_bearer_token_that_the_served_jwks_verifies() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    let response = app.sign_in(&user.email.to_uppercase(), PASSWORD).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 3600);
    let token = body["accessToken"].as_str().expect("accessToken");
    let caller = app.verify(token).await;
    assert_eq!(caller, Caller { user_id: user.id.parse().expect("uuid"), role: Role::User });

    let jwks = app.jwks().await;
    assert_eq!(jwks.keys.len(), 1);
    let jwk = serde_json::to_value(&jwks.keys[0]).expect("json");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str(), jwk["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(jwk.get("d").is_none(), "the public key only");
    assert_eq!(failures(&app).await, 0, "a sign-in that succeeds is no failure");
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_one_and_the_same_401() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    let mut answers = Vec::new();
    for (email, password) in [(user.email.as_str(), "not-the-password"), ("nobody@example.com", PASSWORD)] {
        let response = app.sign_in(email, password).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body = problem(response, 401).await;
        assert!(!body.to_string().contains(password), "{body}");
        answers.push(body);
    }
    assert_eq!(answers[0], answers[1], "nothing tells an unknown e-mail from a wrong password");
}

#[tokio::test]
async fn after_five_failures_the_next_attempt_is_429_even_with_the_right_password() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    let other = app.signed_up().await;
    for attempt in 0..5 {
        // In any case: failures count per e-mail ignoring case.
        let email = if attempt % 2 == 0 { user.email.clone() } else { user.email.to_uppercase() };
        problem(app.sign_in(&email, "not-the-password").await, 401).await;
    }
    let sixth = app.sign_in(&user.email, "not-the-password").await;
    let wait = retry_after(&sixth);
    assert!((1..=300).contains(&wait), "Retry-After: {wait}");
    problem(sixth, 429).await;

    let right = app.sign_in(&user.email, PASSWORD).await;
    assert!((1..=300).contains(&retry_after(&right)));
    let body = problem(right, 429).await;
    assert!(body.get("accessToken").is_none());
    assert_eq!(failures(&app).await, 5, "held attempts are not failures");

    app.token(&other.email, PASSWORD).await; // another e-mail is not held
}

#[tokio::test]
async fn the_wait_runs_until_the_oldest_of_the_five_failures_leaves_the_window() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    failed(&app, &user.email, 290).await;
    for _ in 0..4 {
        failed(&app, &user.email, 1).await;
    }
    let held = app.sign_in(&user.email, PASSWORD).await;
    let wait = retry_after(&held);
    // 300 s after the oldest, which was 290 s ago (less the time this test took).
    assert!((5..=10).contains(&wait), "Retry-After: {wait}");
    problem(held, 429).await;
}

#[tokio::test]
async fn failures_older_than_five_minutes_neither_count_nor_stay() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    for _ in 0..5 {
        failed(&app, &user.email, 301).await;
    }
    failed(&app, "someone-else@example.com", 400).await;
    failed(&app, "someone-else@example.com", 10).await;
    app.token(&user.email, PASSWORD).await;
    assert_eq!(failures(&app).await, 1, "only the recent failure is left, of whichever e-mail");
}

#[tokio::test]
async fn attempts_at_the_same_time_get_no_more_than_five_guesses() {
    let app = spawn_app().await;
    let user = app.signed_up().await;
    let mut attempts = JoinSet::new();
    for _ in 0..10 {
        let (client, url, email) = (app.client.clone(), app.url("/api/auth/token"), user.email.clone());
        attempts.spawn(async move {
            let body = json!({"email": email, "password": "not-the-password"});
            client.post(url).json(&body).send().await.expect("POST").status().as_u16()
        });
    }
    let mut statuses = attempts.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429, 429, 429]);
}

#[tokio::test]
async fn a_malformed_sign_in_is_a_400_or_a_422() {
    let app = spawn_app().await;
    let missing = problem(
        app.client
            .post(app.url("/api/auth/token"))
            .json(&json!({"email": "a@b.co"}))
            .send()
            .await
            .expect("POST"),
        422,
    )
    .await;
    assert!(missing["detail"].as_str().expect("detail").contains("password"), "{missing}");
    let not_an_address = problem(app.sign_in("not-an-address", PASSWORD).await, 422).await;
    assert_eq!(not_an_address["field"], "email");
    let malformed = app
        .client
        .post(app.url("/api/auth/token"))
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .expect("POST");
    problem(malformed, 400).await;
    assert_eq!(failures(&app).await, 0, "nothing was tried");
}

#[tokio::test]
async fn tokens_live_as_long_as_the_service_says() {
    let signer = platform::auth::Signer::generate(Duration::from_secs(120));
    let app = crate::helpers::spawn_with(user_service::Auth::with_signer(signer, None)).await;
    let user = app.signed_up().await;
    let body: Value = app.sign_in(&user.email, PASSWORD).await.json().await.expect("json");
    assert_eq!(body["expiresIn"], 120);
}
