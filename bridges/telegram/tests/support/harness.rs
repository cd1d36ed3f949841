//! The whole bridge in one process, for the `bridge_*` tests: `TelegramNetwork` on the SDK's `Bridge`,
//! fake-bot-api as Telegram, and the SDK's test homeserver as Matrix. Matrix transactions go in through the
//! bridge's router; what the bridge does is read back from the fake (`/_fake/sent`) and the homeserver's
//! record. Every scenario runs on SQLite and PostgreSQL (a fresh database each).
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
pub use std::time::{Duration, Instant};

use appservice_sdk::Appservice;
pub use appservice_sdk::bridge::{Bridge, Network};
use appservice_sdk::config::BridgeConfig;
use appservice_sdk::registration::Registration;
use appservice_sdk::store::{PortalRecord, Store};
use appservice_sdk::testing::{Recorded, TestHomeserver};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use rand::Rng;
pub use serde_json::{Value, json};
use sqlx::{AnyPool, AssertSqlSafe, Executor};
use telegram_bridge::config::TelegramConfig;
use telegram_bridge::fake_bot_api::{self, FakeBotApi, FakeConfig};
use telegram_bridge::network::TelegramNetwork;
use telegram_bridge::network::api::RetryPolicy;
use tower::ServiceExt;

pub const GROUP: i64 = -100_500;
pub const CONFIG: &str = r#"
homeserver: {address: "http://unused", domain: test}
appservice: {address: "http://unused", id: telegram, bot: {username: telegrambot}}
bridge:
  permissions: {test: user, "@boss:test": admin}
"#;

pub fn pg_base() -> String {
    std::env::var("CAUSEWAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh database URL for a backend (`sqlite` in `dir`, or a new PostgreSQL database).
pub async fn fresh_database(backend: &str, dir: &std::path::Path) -> String {
    if backend == "sqlite" {
        return format!("sqlite:{}", dir.join("bridge.db").display());
    }
    sqlx::any::install_default_drivers();
    let name = format!("tg_test_{:016x}", rand::rng().random::<u64>());
    let admin = AnyPool::connect(&format!("{}/postgres", pg_base()))
        .await
        .unwrap();
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await;
    format!("{}/{name}", pg_base())
}

pub struct Fake {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub _stop: tokio::sync::oneshot::Sender<()>,
}

impl Fake {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(fake_bot_api::run(
            listener,
            FakeBotApi::new(FakeConfig::default()),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            http: reqwest::Client::new(),
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Injects an update; returns its answer (`update_id`, `message_id`).
    pub async fn update(&self, update: Value) -> Value {
        self.post("/_fake/updates", update).await
    }

    pub async fn sent(&self, chat: i64) -> Vec<Value> {
        self.get(&format!("/_fake/sent?chat_id={chat}"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Sits in front of the test homeserver, which has no media downloads: serves media the test put there under
/// `/_matrix/client/v1/media/download/test/<id>` and forwards every other request.
pub struct MediaProxy {
    url: String,
    media: Arc<std::sync::Mutex<std::collections::HashMap<String, (bytes::Bytes, String)>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl MediaProxy {
    pub async fn start(homeserver: &str) -> Self {
        use axum::extract::{Path, State};
        use axum::response::IntoResponse;
        type Shared = (
            Arc<std::sync::Mutex<std::collections::HashMap<String, (bytes::Bytes, String)>>>,
            String,
        );
        async fn download(
            State((media, _)): State<Shared>,
            Path((_server, id)): Path<(String, String)>,
        ) -> axum::response::Response {
            match media.lock().unwrap().get(&id).cloned() {
                Some((data, mime)) => {
                    ([(axum::http::header::CONTENT_TYPE, mime)], data).into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        async fn forward(
            State((_, homeserver)): State<Shared>,
            request: Request<Body>,
        ) -> axum::response::Response {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let url = format!(
                "{homeserver}{}",
                parts.uri.path_and_query().map_or("", |p| p.as_str())
            );
            let mut forwarded = reqwest::Client::new()
                .request(parts.method.clone(), url)
                .body(body);
            for name in [
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ] {
                if let Some(value) = parts.headers.get(&name) {
                    forwarded = forwarded.header(name.as_str(), value.to_str().unwrap());
                }
            }
            let answer = forwarded.send().await.unwrap();
            let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let bytes = answer.bytes().await.unwrap();
            (
                status,
                [(axum::http::header::CONTENT_TYPE, content_type)],
                bytes,
            )
                .into_response()
        }
        let media = Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let router = axum::Router::new()
            .route(
                "/_matrix/client/v1/media/download/{server}/{id}",
                axum::routing::get(download),
            )
            .fallback(forward)
            .with_state((media.clone(), homeserver.to_owned()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            url,
            media,
            _stop: stop,
        }
    }

    /// Makes `mxc://test/<id>` downloadable.
    pub fn put(&self, id: &str, data: &'static [u8], mime: &str) {
        self.media.lock().unwrap().insert(
            id.to_owned(),
            (bytes::Bytes::from_static(data), mime.to_owned()),
        );
    }
}

pub struct Harness {
    pub hs: TestHomeserver,
    pub media: MediaProxy,
    pub fake: Fake,
    pub bridge: Bridge,
    pub network: Arc<TelegramNetwork>,
    pub router: axum::Router,
    pub db: String,
    pub next_txn: std::sync::atomic::AtomicU32,
    pub _dir: tempfile::TempDir,
}

pub fn ann() -> Value {
    json!({"id": 7, "is_bot": false, "first_name": "Ann", "last_name": "Lee"})
}

pub fn group() -> Value {
    json!({"id": GROUP, "type": "supergroup", "title": "Causeway Group"})
}

pub fn text_from_ann(text: &str, extra: Value) -> Value {
    let mut message = json!({"chat": group(), "from": ann(), "text": text});
    message
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"message": message})
}

pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl Harness {
    pub async fn start(backend: &str) -> Self {
        // RUST_LOG=telegram_bridge=debug shows what the bridge does.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let hs = TestHomeserver::start(false).await;
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db = fresh_database(backend, dir.path()).await;
        let media = MediaProxy::start(hs.url()).await;
        let mut h = Self::with(hs, media, fake, db, dir).await;
        h.boot().await;
        h
    }

    pub async fn with(
        hs: TestHomeserver,
        media: MediaProxy,
        fake: Fake,
        db: String,
        dir: tempfile::TempDir,
    ) -> Self {
        let (bridge, network) = Self::make_bridge(&media.url, &fake, &db).await;
        let router = bridge.router();
        Self {
            hs,
            media,
            fake,
            bridge,
            network,
            router,
            db,
            next_txn: 0.into(),
            _dir: dir,
        }
    }

    pub async fn make_bridge(
        homeserver: &str,
        fake: &Fake,
        db: &str,
    ) -> (Bridge, Arc<TelegramNetwork>) {
        let registration = Registration::from_yaml(
            "id: telegram\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: telegrambot\nnamespaces: {}\n",
        )
        .unwrap();
        let appservice = Appservice::new(registration, homeserver, "test").unwrap();
        let store = Store::connect(db).await.unwrap();
        let telegram = TelegramConfig {
            bot_token: "4242:fake-secret".to_owned(),
            api_url: fake.url(),
            message_template: "<b>{displayname}</b>: {message}".to_owned(),
            emote_template: "* <b>{displayname}</b> {message}".to_owned(),
            poll_timeout: 1,
            link_code_ttl: 600,
        };
        let retry = RetryPolicy {
            first_backoff: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        let network = Arc::new(TelegramNetwork::with_retry(telegram, retry).unwrap());
        let config: BridgeConfig = BridgeConfig::from_yaml(CONFIG).unwrap();
        let bridge = Bridge::from_parts(appservice, store, network.clone(), &config);
        (bridge, network)
    }

    pub async fn boot(&mut self) {
        self.bridge.start().await.unwrap();
    }

    /// Stops the bridge (between two updates) and starts a new one on the same database.
    pub async fn restart(self) -> Self {
        self.network.stop().await.unwrap();
        let Harness {
            hs,
            media,
            fake,
            db,
            _dir,
            ..
        } = self;
        let mut h = Self::with(hs, media, fake, db, _dir).await;
        h.boot().await;
        h
    }

    /// Stops the bridge and drops a PostgreSQL test database.
    pub async fn finish(self) {
        self.network.stop().await.unwrap();
        self.bridge.store().close().await;
        if let Some(name) = self.db.strip_prefix(&format!("{}/", pg_base())) {
            let admin = AnyPool::connect(&format!("{}/postgres", pg_base()))
                .await
                .unwrap();
            admin
                .execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .unwrap();
            admin.close().await;
        }
    }

    /// A transaction with ephemeral events only (typing, receipts).
    pub async fn ephemeral(&self, ephemeral: Vec<Value>) {
        let n = self
            .next_txn
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let request = Request::put(format!("/_matrix/app/v1/transactions/tge{n}"))
            .header("authorization", "Bearer h")
            .body(Body::from(
                json!({"events": [], "ephemeral": ephemeral}).to_string(),
            ))
            .unwrap();
        let status = self.router.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
    }

    pub async fn txn(&self, events: Vec<Value>) {
        let n = self
            .next_txn
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let request = Request::put(format!("/_matrix/app/v1/transactions/tg{n}"))
            .header("authorization", "Bearer h")
            .body(Body::from(json!({"events": events}).to_string()))
            .unwrap();
        let status = self.router.clone().oneshot(request).await.unwrap().status();
        assert_eq!(status, StatusCode::OK);
    }

    /// A portal for `GROUP` without going through the link flow.
    pub async fn portal(&self) -> PortalRecord {
        let portal = PortalRecord {
            remote_id: GROUP.to_string(),
            room_id: "!portal:test".try_into().unwrap(),
            name: Some("Causeway Group".to_owned()),
            relay_enabled: false,
        };
        self.bridge.store().upsert_portal(&portal).await.unwrap();
        portal
    }

    /// Messages sent into a room, oldest first.
    pub fn sends(&self, room: &str) -> Vec<Recorded> {
        self.hs
            .recorded_of("send")
            .into_iter()
            .filter(|r| r.room_id.as_deref() == Some(room))
            .collect()
    }

    pub async fn wait_send(
        &self,
        room: &str,
        what: &str,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        wait_for(what, || async {
            self.sends(room).into_iter().find(|r| matches(r))
        })
        .await
    }

    pub async fn wait_sent(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || async {
            self.fake.sent(GROUP).await.into_iter().find(|m| matches(m))
        })
        .await
    }
}

pub fn matrix_event(kind: &str, id: &str, room: &str, content: Value) -> Value {
    json!({"type": kind, "event_id": id, "room_id": room, "sender": "@alice:test",
           "origin_server_ts": 1_700_000_000_000u64, "content": content})
}

impl Fake {
    pub async fn post_raw_file(&self, data: &'static [u8], kind: &str, name: &str) -> Value {
        let url = format!("{}/_fake/files?kind={kind}&file_name={name}", self.url());
        self.http
            .post(url)
            .body(data)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name("sqlite").await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name("postgres").await;
            })*
        }
    };
}
