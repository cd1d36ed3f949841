//! A homeserver per test on a fresh database, driven in-process through `oneshot`.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::{Router, body::Body};
use homeserver::{Config, Services};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Db {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(db: Db)` once per backend, as `name::sqlite` and `name::postgres`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::support::Db::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name($crate::support::Db::Postgres).await }
        }
    )*};
}

pub(crate) const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub(crate) const SHARED_SECRET: &str = "test-shared-secret";

/// A server under test and the database it lives on.
pub(crate) struct TestServer {
    pub(crate) app: Router,
    pub(crate) services: Services,
    pub(crate) config_text: String,
    _dir: tempfile::TempDir,
}

/// A fresh database: a temp SQLite file or a new PostgreSQL database.
pub(crate) async fn fresh_database(db: Db, dir: &std::path::Path) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    match db {
        Db::Sqlite => format!(
            "database:\n  name: sqlite3\n  args: {{database: \"{}/hs.db\"}}\n",
            dir.display()
        ),
        Db::Postgres => {
            let name = format!(
                "cw_hs_test_{}_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed),
                rand_suffix()
            );
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::PgConnection::connect(PG_ADMIN_URL)
                .await
                .expect("PostgreSQL must run on 127.0.0.1:5432 (the test command starts it)");
            conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            format!(
                "database:\n  name: psycopg2\n  args: {{user: postgres, host: 127.0.0.1, port: 5432, database: {name}, cp_max: 8}}\n"
            )
        }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

/// The config every test starts from: open registration, generous limits.
pub(crate) fn base_config(server_name: &str) -> String {
    format!(
        "server_name: {server_name}\nenable_registration: true\nregistration_shared_secret: {SHARED_SECRET}\n\
         rc_message: {{per_second: 1000, burst_count: 1000}}\n\
         rc_registration: {{per_second: 1000, burst_count: 1000}}\n\
         rc_login: {{per_second: 1000, burst_count: 1000}}\n"
    )
}

impl TestServer {
    pub(crate) async fn start(db: Db) -> Self {
        Self::with_config(db, "").await
    }

    /// `extra` YAML is appended to the base config (later keys win).
    pub(crate) async fn with_config(db: Db, extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = fresh_database(db, dir.path()).await;
        let text = merge(&base_config("test.local"), &database, extra);
        Self::from_text(text, dir).await
    }

    async fn from_text(config_text: String, dir: tempfile::TempDir) -> Self {
        let config = Config::parse(&config_text, "test.yaml").expect("test config is valid");
        let services = homeserver::services(config)
            .await
            .expect("homeserver starts");
        Self {
            app: homeserver::app(services.clone()),
            services,
            config_text,
            _dir: dir,
        }
    }

    /// Closes the database and starts a new server on the same database and config.
    pub(crate) async fn restart(self) -> Self {
        self.services.store.close().await;
        let TestServer {
            config_text, _dir, ..
        } = self;
        Self::from_text(config_text, _dir).await
    }

    /// Sends a request; `body` of `None` sends nothing.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        self.call_raw(method, path, token, bytes.into_bytes()).await
    }

    pub(crate) async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, value)
    }

    pub(crate) async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub(crate) async fn put(
        &self,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(Method::PUT, path, token, Some(body)).await
    }

    /// Registers through the dummy flow and returns (user_id, access_token, device_id).
    pub(crate) async fn register(
        &self,
        username: &str,
        password: &str,
    ) -> (String, String, String) {
        let (status, body) = self
            .post(
                "/_matrix/client/v3/register",
                None,
                json!({"username": username, "password": password, "auth": {"type": "m.login.dummy"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["user_id"].as_str().unwrap().to_owned(),
            body["access_token"].as_str().unwrap().to_owned(),
            body["device_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Logs in with a password and returns the access token.
    pub(crate) async fn login(&self, user: &str, password: &str) -> String {
        let (status, body) = self
            .post(
                "/_matrix/client/v3/login",
                None,
                json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

fn merge(base: &str, database: &str, extra: &str) -> String {
    // YAML mappings may not repeat keys, so drop base lines that `extra` overrides.
    let overridden: Vec<&str> = extra
        .lines()
        .filter(|l| !l.starts_with(' ') && l.contains(':'))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let base: String = base
        .lines()
        .filter(|l| !overridden.contains(&l.split(':').next().unwrap()))
        .map(|l| format!("{l}\n"))
        .collect();
    format!("{base}{database}{extra}")
}

/// Asserts a Matrix error: status and errcode.
#[track_caller]
pub(crate) fn assert_error(result: &(StatusCode, Value), status: StatusCode, errcode: &str) {
    assert_eq!(result.0, status, "{}", result.1);
    assert_eq!(result.1["errcode"], errcode, "{}", result.1);
    assert!(
        result.1["error"].is_string(),
        "errors carry a message: {}",
        result.1
    );
}

static TXN: AtomicU64 = AtomicU64::new(0);

impl TestServer {
    /// Creates a room and returns its id.
    pub(crate) async fn create_room(&self, token: &str, body: Value) -> String {
        let (status, r) = self
            .post("/_matrix/client/v3/createRoom", Some(token), body)
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        r["room_id"].as_str().unwrap().to_owned()
    }

    /// Sends an event and returns the full response.
    pub(crate) async fn send_event(
        &self,
        token: &str,
        room: &str,
        event_type: &str,
        content: Value,
    ) -> (StatusCode, Value) {
        let txn = TXN.fetch_add(1, Ordering::Relaxed);
        self.put(
            &format!("/_matrix/client/v3/rooms/{room}/send/{event_type}/t{txn}"),
            Some(token),
            content,
        )
        .await
    }

    /// Sends a text message and returns its event id.
    pub(crate) async fn send_text(&self, token: &str, room: &str, text: &str) -> String {
        let (status, r) = self
            .send_event(
                token,
                room,
                "m.room.message",
                json!({"msgtype": "m.text", "body": text}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{r}");
        r["event_id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn join(&self, token: &str, room: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/_matrix/client/v3/join/{room}"),
            Some(token),
            json!({}),
        )
        .await
    }

    pub(crate) async fn invite(&self, token: &str, room: &str, user: &str) -> (StatusCode, Value) {
        self.post(
            &format!("/_matrix/client/v3/rooms/{room}/invite"),
            Some(token),
            json!({"user_id": user}),
        )
        .await
    }

    /// `/sync`, optionally incremental and long-polling.
    pub(crate) async fn sync(&self, token: &str, since: Option<&str>, timeout_ms: u64) -> Value {
        let mut path = format!("/_matrix/client/v3/sync?timeout={timeout_ms}");
        if let Some(since) = since {
            path.push_str(&format!("&since={since}"));
        }
        let (status, body) = self.get(&path, Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Message bodies of a room's timeline in a sync response.
    pub(crate) fn timeline_bodies(sync: &Value, room: &str) -> Vec<String> {
        sync["rooms"]["join"][room]["timeline"]["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}
