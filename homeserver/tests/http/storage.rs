//! Durability: a restart keeps accounts; a newer schema refuses to start.

use http::StatusCode;
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::support::{Db, PG_ADMIN_URL, TestServer, fresh_database};

on_both_backends!(
    a_restart_keeps_accounts_tokens_and_data,
    a_newer_schema_refuses_to_start
);

async fn a_restart_keeps_accounts_tokens_and_data(db: Db) {
    let s = TestServer::start(db).await;
    let (user, token, _) = s.register("alice", "pw").await;
    let path = format!("/_matrix/client/v3/user/{user}/account_data/x.y");
    s.put(&path, Some(&token), serde_json::json!({"kept": true}))
        .await;
    let s = s.restart().await;
    assert_eq!(
        s.get("/_matrix/client/v3/account/whoami", Some(&token))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(s.get(&path, Some(&token)).await.1["kept"], true);
    s.login("alice", "pw").await;
}

async fn a_newer_schema_refuses_to_start(db: Db) {
    let dir = tempfile::tempdir().unwrap();
    let database = fresh_database(db, dir.path()).await;
    let text = format!("server_name: test.local\n{database}");
    let config = homeserver::Config::parse(&text, "t.yaml").unwrap();
    let services = homeserver::services(config.clone()).await.unwrap();
    services.store.close().await;

    // Pretend a newer homeserver applied migration 9999.
    let insert = "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                  VALUES (9999, 'from the future', true, X'00', 0)";
    match config.backend() {
        homeserver::store::Backend::Sqlite { path } => {
            let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
                .await
                .unwrap();
            c.execute(AssertSqlSafe(insert.replace("true", "1")))
                .await
                .unwrap();
        }
        homeserver::store::Backend::Postgres { url, .. } => {
            let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
            c.execute(AssertSqlSafe(insert.replace("X'00'", "'\\x00'::bytea")))
                .await
                .unwrap();
        }
    }
    let err = homeserver::services(config)
        .await
        .err()
        .expect("a newer schema must refuse to start");
    let text = err.to_string();
    assert!(text.contains("newer"), "{text}");
    let _ = PG_ADMIN_URL;
}
