use std::time::Duration;

use user_service::keys::{KEPT_FILE_NAME, KeyFile};
use user_service::{Auth, Settings};

use crate::helpers::spawn_with;

#[tokio::test]
async fn the_kept_key_file_is_private_and_a_restart_keeps_tokens_valid() {
    let folder = std::env::temp_dir().join(format!("user-service-key-{}", uuid::Uuid::new_v4().simple()));
    let settings = Settings {
        key_file: KeyFile::Kept(folder.join(KEPT_FILE_NAME)),
        token_ttl: Duration::from_secs(3600),
        admin: None,
    };
    let first = Auth::load(&settings).expect("a key generated");
    let app = spawn_with(first.clone()).await;
    let user = app.signed_up().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(settings.key_file.path()).expect("the key file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let kid = app.jwks().await.keys[0].common.key_id.clone();
    assert_eq!(kid.as_deref(), Some(first.signer().kid()));

    let again = Auth::load(&settings).expect("the key read back");
    assert_eq!(again.signer().kid(), first.signer().kid());
    let app = app.restart(again).await;
    assert_eq!(app.jwks().await.keys[0].common.key_id, kid);
    let read = app.get_user(&user.id, Some(&user.token)).await;
    assert_eq!(read.status(), 200, "a token of the first run is valid in the second");
    std::fs::remove_dir_all(folder).expect("clean up");
}
