//! Who may do what: every operation needs a token, queuing and the dead letters need an
//! admin's, and a user lists only the notifications about them.

use reqwest::Method;
use serde_json::{Value, json};
use shared_events::UserSignedUp;
use uuid::Uuid;

use crate::helpers::{TestApp, problem, spawn_app};

/// Every operation of the service, with a body that would be accepted.
fn operations() -> Vec<(Method, String, Option<Value>)> {
    let email = json!({"from": "shop@example.com", "to": "kim@example.com", "subject": "S", "body": "B"});
    vec![
        (Method::POST, "/api/emails/send".to_owned(), Some(email)),
        (Method::POST, "/api/sms/send".to_owned(), Some(json!({"to": "+821012345678", "text": "Hi"}))),
        (Method::GET, "/api/notifications".to_owned(), None),
        (Method::GET, "/api/notifications/failed".to_owned(), None),
        (Method::POST, format!("/api/notifications/failed/{}/retry", Uuid::now_v7()), None),
    ]
}

#[tokio::test]
async fn every_operation_without_a_valid_token_is_a_401_with_a_bearer_challenge() {
    let app = spawn_app().await;
    for (method, path, body) in operations() {
        let missing = app.send_as(None, method.clone(), &path, body.as_ref()).await;
        assert_eq!(missing.headers()["www-authenticate"], "Bearer", "{method} {path}");
        problem(missing, 401).await;
        let forged = app.send_as(Some("Bearer not.a.token"), method.clone(), &path, body.as_ref()).await;
        assert_eq!(forged.headers()["www-authenticate"], "Bearer error=\"invalid_token\"", "{method} {path}");
        problem(forged, 401).await;
    }
    let health = app.send_as(None, Method::GET, "/health", None).await;
    assert_eq!(health.status(), 200, "the operational paths stay public");
}

#[tokio::test]
async fn a_user_token_on_an_admin_operation_is_a_403() {
    let app = spawn_app().await;
    let user = testkit::bearer(Uuid::now_v7());
    for (method, path, body) in operations().into_iter().filter(|(_, path, _)| path != "/api/notifications") {
        let refused =
            problem(app.send_as(Some(&user), method.clone(), &path, body.as_ref()).await, 403).await;
        assert_eq!(refused["detail"], "this operation is for admins only", "{method} {path}");
    }
    // The same operations with an admin's token.
    assert_eq!(app.get_json("/api/notifications/failed").await, json!([]));
    assert_eq!(app.retry(&Uuid::now_v7().to_string()).await.status(), 404);
}

async fn welcome(app: &TestApp, name: &str) -> Uuid {
    let user_id = Uuid::now_v7();
    let event = UserSignedUp { user_id, email: format!("{name}@example.com"), name: name.to_owned() };
    app.publish(&event, Uuid::now_v7()).await;
    user_id
}

#[tokio::test]
async fn a_users_list_holds_only_the_notifications_about_them() {
    let app = spawn_app().await;
    let ann = welcome(&app, "ann").await;
    let ben = welcome(&app, "ben").await;
    // An ad hoc e-mail is about no user: only admins see it.
    let adhoc = json!({"from": "shop@example.com", "to": "ann@example.com", "subject": "S", "body": "B"});
    assert_eq!(app.post("/api/emails/send", &adhoc).await.status(), 202);
    let everything = app.wait_for("/api/notifications", 3).await;
    assert!(everything.iter().any(|n| n["kind"] == "ADHOC" && n["userId"].is_null()), "{everything:#?}");

    let as_ann = testkit::bearer(ann);
    for path in [
        "/api/notifications",
        &format!("/api/notifications?userId={ann}"),
        "/api/notifications?channel=EMAIL",
    ] {
        let own = app.get_json_as(&as_ann, path).await;
        let own = own.as_array().expect("array");
        assert_eq!(own.len(), 1, "{path}: {own:#?}");
        assert_eq!(
            (own[0]["kind"].as_str(), own[0]["userId"].as_str()),
            (Some("WELCOME"), Some(&*ann.to_string()))
        );
    }
    let bens = format!("/api/notifications?userId={ben}");
    let refused = problem(app.send_as(Some(&as_ann), Method::GET, &bens, None).await, 403).await;
    assert_eq!(refused["detail"], "you may act only for yourself");
    let ben_sees = app.get_json_as(&testkit::bearer(ben), "/api/notifications").await;
    assert_eq!(ben_sees.as_array().map(|all| all.iter().all(|n| n["userId"] == ben.to_string())), Some(true));
    assert_eq!(ben_sees.as_array().map(Vec::len), Some(1));
    let nobody = app.get_json_as(&testkit::bearer(Uuid::now_v7()), "/api/notifications").await;
    assert_eq!(nobody, json!([]), "a user with no notifications sees none of the others'");
    // An admin sees anyone's with the filter.
    assert_eq!(app.get_json(&bens).await, ben_sees);
}

#[tokio::test]
async fn the_openapi_document_names_the_401_and_403_answers() {
    let app = spawn_app().await;
    let response = app.send_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(response.status(), 200, "the document is public");
    let document: Value = response.json().await.expect("json");
    for (path, method) in [
        ("/api/emails/send", "post"),
        ("/api/sms/send", "post"),
        ("/api/notifications", "get"),
        ("/api/notifications/failed", "get"),
        ("/api/notifications/failed/{id}/retry", "post"),
    ] {
        let responses = &document["paths"][path][method]["responses"];
        for status in ["401", "403"] {
            assert!(responses.get(status).is_some(), "{method} {path} has no {status}: {responses}");
        }
        assert!(document["paths"][path][method].get("security").is_none(), "{path} uses the bearer default");
    }
}
