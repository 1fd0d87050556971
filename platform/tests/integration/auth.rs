//! Tokens checked against keys fetched over HTTP, as every service but user-service does.

use std::time::Duration;

use platform::auth::{AuthError, Caller, Role, Signer, Verifier};
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread")]
async fn the_keys_are_fetched_on_first_use_and_a_foreign_key_is_refused() {
    let verifier = Verifier::remote(testkit::test_jwks_url());
    let user = Uuid::now_v7();
    let first =
        tokio::time::timeout(Duration::from_secs(10), verifier.verify(&testkit::token(user, Role::User)))
            .await
            .expect("the first token is checked without hanging");
    assert_eq!(first, Ok(Caller { user_id: user, role: Role::User }));
    let again = verifier.verify(&testkit::token(user, Role::Admin)).await;
    assert_eq!(again.map(|caller| caller.role), Ok(Role::Admin), "from the fetched keys");

    let foreign = Signer::generate(Duration::from_secs(60)).token(user, Role::Admin).expect("token");
    assert!(matches!(verifier.verify(&foreign).await, Err(AuthError::Invalid(_))));
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_are_a_503_not_a_401() {
    let verifier = Verifier::remote("http://127.0.0.1:1/.well-known/jwks.json");
    let token = testkit::token(Uuid::now_v7(), Role::User);
    assert!(matches!(verifier.verify(&token).await, Err(AuthError::KeysUnavailable(_))));
}
