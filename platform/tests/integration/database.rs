use platform::db::{Backend, Db, Migrations};
use testkit::{TestBackend, TestDatabase};

const FIRST: Migrations = Migrations {
    sqlite: || sqlx::migrate!("tests/migrations/first/sqlite"),
    postgres: || sqlx::migrate!("tests/migrations/first/postgres"),
};
const SECOND: Migrations = Migrations {
    sqlite: || sqlx::migrate!("tests/migrations/second/sqlite"),
    postgres: || sqlx::migrate!("tests/migrations/second/postgres"),
};

async fn table_names(db: &Db) -> Vec<String> {
    let sql = match db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '%_schema' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT table_name::TEXT FROM information_schema.tables WHERE table_name LIKE '%_schema' ORDER BY table_name"
        }
    };
    sqlx::query_scalar(sql).fetch_all(db.pool()).await.expect("list tables")
}

#[tokio::test]
async fn two_schemas_migrate_side_by_side_and_a_restart_applies_nothing_twice() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&FIRST, &SECOND]).await.expect("first start migrates");
    let expected = match TestBackend::from_env() {
        TestBackend::Sqlite => Backend::Sqlite,
        TestBackend::Postgres => Backend::Postgres,
    };
    assert_eq!(db.backend(), expected);
    assert_eq!(table_names(&db).await, ["first_schema", "second_schema"]);
    db.close().await;

    let db = Db::connect(&database.url, &[&FIRST, &SECOND])
        .await
        .expect("second start finds both schemas applied");
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(db.pool())
        .await
        .expect("history");
    // The platform's own migrations, then the two given.
    let platform_migrations = (platform::db::PLATFORM_MIGRATIONS.sqlite)().migrations.len() as i64;
    assert_eq!(applied, platform_migrations + 2);
    db.close().await;
}

#[tokio::test]
async fn a_write_transaction_commits_and_a_dropped_one_rolls_back() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&SECOND]).await.expect("connect");

    let mut tx = db.begin_write().await.expect("begin");
    sqlx::query("INSERT INTO second_schema (id, payload) VALUES ($1, $2)")
        .bind("kept")
        .bind("{}")
        .execute(tx.conn())
        .await
        .expect("insert");
    tx.commit().await.expect("commit");

    let mut tx = db.begin_write().await.expect("begin");
    sqlx::query("INSERT INTO second_schema (id, payload) VALUES ($1, $2)")
        .bind("dropped")
        .bind("{}")
        .execute(tx.conn())
        .await
        .expect("insert");
    drop(tx);

    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM second_schema ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("select");
    assert_eq!(ids, ["kept"]);
    db.ping().await.expect("ping");
    db.close().await;
}

#[tokio::test]
async fn an_unreachable_database_is_named_in_the_error() {
    let url = match TestBackend::from_env() {
        TestBackend::Sqlite => "sqlite:///proc/no-such-dir/x.db?mode=rwc".to_owned(),
        TestBackend::Postgres => "postgres://postgres:secret@127.0.0.1:1/nothing".to_owned(),
    };
    let error = Db::connect(&url, &[]).await.expect_err("nothing listens there");
    let text = platform::error_chain(&error);
    assert!(text.starts_with("cannot use database "), "{text}");
    assert!(!text.contains("secret"), "the password leaked: {text}");
}

#[tokio::test]
async fn ids_and_statuses_stored_as_text_read_back_typed_and_bad_text_is_a_decode_error() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[]).await.expect("connect");
    let id = uuid::Uuid::now_v7();
    let row = sqlx::query("SELECT $1, CAST(NULL AS TEXT), 'not-a-uuid'")
        .bind(id.to_string())
        .fetch_one(db.pool())
        .await
        .expect("select");
    assert_eq!(platform::db::text_at::<uuid::Uuid>(&row, 0).expect("an id"), id);
    assert_eq!(platform::db::optional_text_at::<uuid::Uuid>(&row, 1).expect("null"), None);
    let error = platform::db::text_at::<uuid::Uuid>(&row, 2).expect_err("not an id");
    assert!(error.to_string().contains("\"not-a-uuid\""), "{error}");
    db.close().await;
}
