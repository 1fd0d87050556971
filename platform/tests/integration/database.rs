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
    // The platform's own migrations for this backend (PostgreSQL has one of its own), then
    // the two given.
    let platform = match expected {
        Backend::Sqlite => (platform::db::PLATFORM_MIGRATIONS.sqlite)(),
        Backend::Postgres => (platform::db::PLATFORM_MIGRATIONS.postgres)(),
    };
    let platform_migrations = platform.migrations.len() as i64;
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
        .execute(tx.conn().await.expect("connection"))
        .await
        .expect("insert");
    tx.commit().await.expect("commit");

    let mut tx = db.begin_write().await.expect("begin");
    sqlx::query("INSERT INTO second_schema (id, payload) VALUES ($1, $2)")
        .bind("dropped")
        .bind("{}")
        .execute(tx.conn().await.expect("connection"))
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

async fn ids(db: &Db) -> Vec<String> {
    sqlx::query_scalar("SELECT id FROM second_schema ORDER BY id").fetch_all(db.pool()).await.expect("select")
}

#[tokio::test]
async fn queued_writes_are_seen_by_the_next_read_and_fail_the_transaction_they_are_in() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&SECOND]).await.expect("connect");
    let insert = "INSERT INTO second_schema (id, payload) VALUES ($1, $2)";

    let mut tx = db.begin_write().await.expect("begin");
    tx.write(insert).bind("a").bind("{}").await.expect("queued");
    let count = tx.read("SELECT COUNT(*), $1 FROM second_schema").bind("x").fetch_one().await.expect("read");
    assert_eq!(sqlx::Row::try_get::<i64, _>(&count, 0).expect("count"), 1, "the read sees the queued write");
    tx.write(insert).bind("b").bind("{}").await.expect("queued");
    tx.commit().await.expect("commit");
    assert_eq!(ids(&db).await, ["a", "b"]);

    // A write that breaks a key fails its transaction (at the write on PostgreSQL, at the
    // commit on SQLite, where it was queued), and nothing of that transaction stays.
    let mut tx = db.begin_write().await.expect("begin");
    let written = async {
        tx.write(insert).bind("c").bind("{}").await?;
        tx.write(insert).bind("a").bind("{}").await
    }
    .await;
    match written {
        Ok(()) => {
            tx.commit().await.expect_err("a is there already");
        }
        Err(_) => drop(tx),
    }
    assert_eq!(ids(&db).await, ["a", "b"]);

    // Queued writes of a dropped transaction never happen; those of a transaction dropped
    // after a read had sent them are rolled back. The next writer is not held up by either.
    let mut tx = db.begin_write().await.expect("begin");
    tx.write(insert).bind("d").bind("{}").await.expect("queued");
    drop(tx);
    let mut tx = db.begin_write().await.expect("begin");
    tx.write(insert).bind("e").bind("{}").await.expect("queued");
    tx.read("SELECT id FROM second_schema").fetch_all().await.expect("read");
    drop(tx);
    let mut tx = db.begin_write().await.expect("begin");
    tx.write(insert).bind("f").bind("{}").await.expect("queued");
    tx.commit().await.expect("commit");
    assert_eq!(ids(&db).await, ["a", "b", "f"]);

    // A statement bound with too few parameters is refused where it is written.
    let mut tx = db.begin_write().await.expect("begin");
    let error = tx.write(insert).bind("g").await.expect_err("one parameter short");
    assert!(error.to_string().contains("parameters"), "{error}");
    drop(tx);
    db.close().await;
}

#[tokio::test]
async fn after_a_failed_statement_nothing_more_of_its_transaction_runs() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&SECOND]).await.expect("connect");
    let insert = "INSERT INTO second_schema (id, payload) VALUES ($1, $2)";
    let mut tx = db.begin_write().await.expect("begin");
    tx.write(insert).bind("a").bind("{}").await.expect("queued");
    tx.commit().await.expect("commit");

    // A caller that goes on after the failure (here, past a read that failed on a queued
    // duplicate): what it writes next must not run on its own, outside a transaction.
    let mut tx = db.begin_write().await.expect("begin");
    let failed = async {
        tx.write(insert).bind("a").bind("{}").await?;
        tx.read("SELECT id FROM second_schema").fetch_all().await
    }
    .await;
    assert!(failed.is_err(), "a is there already");
    let _ = tx.write(insert).bind("after").bind("{}").await;
    let committed = tx.commit().await;
    if db.backend() == Backend::Sqlite {
        let error = committed.expect_err("the transaction failed");
        assert!(error.to_string().contains("earlier statement"), "{error}");
    }
    assert_eq!(ids(&db).await, ["a"]);
    db.close().await;
}

/// Ids gathered by a transaction, written as one row just before it commits.
#[derive(Default)]
struct Gathered(Vec<String>);

impl platform::db::Deferred for Gathered {
    fn run(self, tx: &mut platform::db::Tx) -> futures::future::BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async move {
            let id = format!("gathered:{}", self.0.join("+"));
            tx.write("INSERT INTO second_schema (id, payload) VALUES ($1, '{}')").bind(id).await
        })
    }
}

#[tokio::test]
async fn deferred_work_runs_once_before_the_commit_and_never_after_a_rollback() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&SECOND]).await.expect("connect");

    let mut tx = db.begin_write().await.expect("begin");
    tx.deferred::<Gathered>().0.push("a".into());
    tx.write("INSERT INTO second_schema (id, payload) VALUES ('x', '{}')").await.expect("write");
    tx.deferred::<Gathered>().0.push("b".into());
    tx.commit().await.expect("commit");
    assert_eq!(ids(&db).await, ["gathered:a+b", "x"], "one run, with all that was gathered");

    let mut tx = db.begin_write().await.expect("begin");
    tx.deferred::<Gathered>().0.push("c".into());
    tx.rollback().await.expect("rollback");
    assert_eq!(ids(&db).await, ["gathered:a+b", "x"], "a rolled back transaction runs none of it");

    // Deferred work that fails fails the commit, and nothing of the transaction stays.
    let mut tx = db.begin_write().await.expect("begin");
    tx.write("INSERT INTO second_schema (id, payload) VALUES ('y', '{}')").await.expect("write");
    tx.deferred::<Gathered>().0.extend(["a".into(), "b".into()]);
    tx.commit().await.expect_err("gathered:a+b is there already");
    assert_eq!(ids(&db).await, ["gathered:a+b", "x"]);
    db.close().await;
}

/// Writers cancelled at any point (their task aborted mid-statement) leave no transaction
/// open behind them: every writer that saw its commit succeed is kept, nothing else of
/// theirs is, and the database takes writes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_cancelled_mid_transaction_leave_nothing_half_done() {
    let database = TestDatabase::create().await;
    let db = Db::connect(&database.url, &[&SECOND]).await.expect("connect");
    let committed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for n in 0..60 {
        let (db, committed) = (db.clone(), committed.clone());
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin_write().await.expect("begin");
            let id = format!("{n:02}");
            tx.write("INSERT INTO second_schema (id, payload) VALUES ($1, $2)").bind(&id).bind("{}").await?;
            // A read sends the queued insert, so an abort can land after it ran.
            tx.read("SELECT COUNT(*) FROM second_schema").fetch_one().await?;
            tx.write("UPDATE second_schema SET payload = $1 WHERE id = $2")
                .bind("{\"done\":true}")
                .bind(&id)
                .await?;
            tx.commit().await?;
            committed.lock().expect("lock").push(id);
            Ok::<(), sqlx::Error>(())
        }));
    }
    for (n, task) in tasks.iter().enumerate() {
        if n % 3 == 0 {
            tokio::task::yield_now().await;
            task.abort();
        }
    }
    for task in tasks {
        match task.await {
            Ok(outcome) => outcome.expect("a writer that was not cancelled succeeds"),
            Err(error) => assert!(error.is_cancelled(), "{error}"),
        }
    }
    let kept: Vec<(String, String)> = sqlx::query_as("SELECT id, payload FROM second_schema ORDER BY id")
        .fetch_all(db.pool())
        .await
        .expect("select");
    let committed = committed.lock().expect("lock").clone();
    for id in &committed {
        assert!(kept.iter().any(|(kept, _)| kept == id), "{id} committed but is missing");
    }
    // Whatever is there is whole: an aborted writer's insert never stays without its update.
    for (id, payload) in &kept {
        assert_eq!(payload, "{\"done\":true}", "{id} is half done");
    }
    assert!(
        committed.len() >= 40,
        "only {} of 40 writers that were never aborted committed",
        committed.len()
    );

    let mut tx = db.begin_write().await.expect("begin after the aborts");
    tx.write("INSERT INTO second_schema (id, payload) VALUES ($1, $2)")
        .bind("last")
        .bind("{}")
        .await
        .expect("queued");
    tx.commit().await.expect("the database takes writes");
    db.close().await;
}
