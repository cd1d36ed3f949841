//! The whole bridge in one process: `TelegramNetwork` on the SDK's `Bridge`, fake-bot-api as Telegram, and the
//! SDK's test homeserver as Matrix. Matrix transactions go in through the bridge's router; what the bridge does
//! is read back from the fake (`/_fake/sent`) and the homeserver's record. Every scenario runs on SQLite and
//! PostgreSQL (a fresh database each).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use appservice_sdk::Appservice;
use appservice_sdk::bridge::{Bridge, Network};
use appservice_sdk::config::BridgeConfig;
use appservice_sdk::registration::Registration;
use appservice_sdk::store::{PortalRecord, Store};
use appservice_sdk::testing::{Recorded, TestHomeserver};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use rand::Rng;
use serde_json::{Value, json};
use sqlx::{AnyPool, AssertSqlSafe, Executor};
use telegram_bridge::config::TelegramConfig;
use telegram_bridge::fake_bot_api::{self, FakeBotApi, FakeConfig};
use telegram_bridge::network::TelegramNetwork;
use telegram_bridge::network::api::RetryPolicy;
use tower::ServiceExt;

const GROUP: i64 = -100_500;
const CONFIG: &str = r#"
homeserver: {address: "http://unused", domain: test}
appservice: {address: "http://unused", id: telegram, bot: {username: telegrambot}}
bridge:
  permissions: {test: user}
"#;

fn pg_base() -> String {
    std::env::var("CAUSEWAY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// A fresh database URL for a backend (`sqlite` in `dir`, or a new PostgreSQL database).
async fn fresh_database(backend: &str, dir: &std::path::Path) -> String {
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

struct Fake {
    addr: SocketAddr,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Fake {
    async fn start() -> Self {
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

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
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

    async fn get(&self, path: &str) -> Value {
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
    async fn update(&self, update: Value) -> Value {
        self.post("/_fake/updates", update).await
    }

    async fn sent(&self, chat: i64) -> Vec<Value> {
        self.get(&format!("/_fake/sent?chat_id={chat}"))
            .await
            .as_array()
            .unwrap()
            .clone()
    }
}

struct Harness {
    hs: TestHomeserver,
    fake: Fake,
    bridge: Bridge,
    network: Arc<TelegramNetwork>,
    router: axum::Router,
    db: String,
    next_txn: std::sync::atomic::AtomicU32,
    _dir: tempfile::TempDir,
}

fn ann() -> Value {
    json!({"id": 7, "is_bot": false, "first_name": "Ann", "last_name": "Lee"})
}

fn group() -> Value {
    json!({"id": GROUP, "type": "supergroup", "title": "Causeway Group"})
}

fn text_from_ann(text: &str, extra: Value) -> Value {
    let mut message = json!({"chat": group(), "from": ann(), "text": text});
    message
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"message": message})
}

async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
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
    async fn start(backend: &str) -> Self {
        let hs = TestHomeserver::start(false).await;
        let fake = Fake::start().await;
        let dir = tempfile::tempdir().unwrap();
        let db = fresh_database(backend, dir.path()).await;
        let mut h = Self::with(hs, fake, db, dir).await;
        h.boot().await;
        h
    }

    async fn with(hs: TestHomeserver, fake: Fake, db: String, dir: tempfile::TempDir) -> Self {
        let (bridge, network) = Self::make_bridge(&hs, &fake, &db).await;
        let router = bridge.router();
        Self {
            hs,
            fake,
            bridge,
            network,
            router,
            db,
            next_txn: 0.into(),
            _dir: dir,
        }
    }

    async fn make_bridge(
        hs: &TestHomeserver,
        fake: &Fake,
        db: &str,
    ) -> (Bridge, Arc<TelegramNetwork>) {
        let registration = Registration::from_yaml(
            "id: telegram\nurl: null\nas_token: a\nhs_token: h\nsender_localpart: telegrambot\nnamespaces: {}\n",
        )
        .unwrap();
        let appservice = Appservice::new(registration, hs.url(), "test").unwrap();
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

    async fn boot(&mut self) {
        self.bridge.start().await.unwrap();
    }

    /// Stops the bridge (between two updates) and starts a new one on the same database.
    async fn restart(self) -> Self {
        self.network.stop().await.unwrap();
        let Harness {
            hs, fake, db, _dir, ..
        } = self;
        let mut h = Self::with(hs, fake, db, _dir).await;
        h.boot().await;
        h
    }

    /// Stops the bridge and drops a PostgreSQL test database.
    async fn finish(self) {
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

    async fn txn(&self, events: Vec<Value>) {
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
    async fn portal(&self) -> PortalRecord {
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
    fn sends(&self, room: &str) -> Vec<Recorded> {
        self.hs
            .recorded_of("send")
            .into_iter()
            .filter(|r| r.room_id.as_deref() == Some(room))
            .collect()
    }

    async fn wait_send(
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

    async fn wait_sent(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || async {
            self.fake.sent(GROUP).await.into_iter().find(|m| matches(m))
        })
        .await
    }
}

fn matrix_event(kind: &str, id: &str, room: &str, content: Value) -> Value {
    json!({"type": kind, "event_id": id, "room_id": room, "sender": "@alice:test",
           "origin_server_ts": 1_700_000_000_000u64, "content": content})
}

async fn linking_with_a_code_creates_the_portal_room(backend: &str) {
    let h = Harness::start(backend).await;
    // Ann owns the group; she asks the bot for a code.
    let owner = json!({"status": "creator", "user": ann(), "is_anonymous": false});
    let was = json!({"status": "member", "user": ann()});
    h.fake
        .update(json!({"chat_member": {"chat": group(), "from": ann(), "date": 1, "old_chat_member": was, "new_chat_member": owner}}))
        .await;
    h.fake.update(text_from_ann("/bridge", json!({}))).await;
    let answer = h
        .wait_sent("the link code", |m| {
            m["text"].as_str().is_some_and(|t| t.contains("login "))
        })
        .await;
    let text = answer["text"].as_str().unwrap();
    let code = text
        .split("login ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    // Alice opens a management room with the bot and redeems it.
    let invite = json!({"type": "m.room.member", "event_id": "$dm", "room_id": "!dm:test", "sender": "@alice:test",
        "state_key": "@telegrambot:test", "origin_server_ts": 1, "content": {"membership": "invite", "is_direct": true}});
    h.txn(vec![invite]).await;
    h.txn(vec![matrix_event(
        "m.room.message",
        "$login",
        "!dm:test",
        json!({"msgtype": "m.text", "body": format!("login {code}")}),
    )])
    .await;
    let portal = wait_for("the portal", || async {
        h.bridge
            .store()
            .portal_by_remote_id(&GROUP.to_string())
            .await
            .unwrap()
    })
    .await;
    let created = h.hs.recorded_of("create_room");
    assert_eq!(created[0].room_id.as_deref(), Some(portal.room_id.as_str()));
    assert_eq!(created[0].body["invite"], json!(["@alice:test"]));
    assert_eq!(created[0].body["name"], "Causeway Group");
    h.wait_sent("the confirmation", |m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("now bridged"))
    })
    .await;
    // A code works once.
    h.txn(vec![matrix_event(
        "m.room.message",
        "$login2",
        "!dm:test",
        json!({"msgtype": "m.text", "body": format!("login {code}")}),
    )])
    .await;
    let notices = h.sends("!dm:test");
    wait_for("the refusal", || async {
        h.sends("!dm:test")
            .iter()
            .any(|r| {
                r.body["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("unknown or expired"))
            })
            .then_some(())
    })
    .await;
    assert!(!notices.is_empty());
    h.finish().await;
}

async fn telegram_and_matrix_users_talk_both_ways(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.as_str();

    // Telegram -> Matrix: text with entities, as Ann's ghost, at the original time.
    let date = 1_700_000_123;
    let hello = h
        .fake
        .update(text_from_ann(
            "😀 hi all",
            json!({"date": date, "entities": [{"type": "bold", "offset": 3, "length": 2}]}),
        ))
        .await;
    let hello_id = hello["message_id"].as_i64().unwrap();
    let event = h
        .wait_send(room, "Ann's message", |r| r.body["body"] == "😀 hi all")
        .await;
    assert_eq!(event.user_id.as_deref(), Some("@telegram_7:test"));
    assert_eq!(event.ts, Some(date * 1000));
    assert_eq!(event.body["formatted_body"], "😀 <strong>hi</strong> all");
    let displaynames = h.hs.recorded_of("displayname");
    assert!(
        displaynames
            .iter()
            .any(|d| d.body["displayname"] == "Ann Lee"),
        "{displaynames:?}"
    );

    // Matrix -> Telegram: the bot relays Alice with the template, HTML converted.
    let content = json!({"msgtype": "m.text", "body": "**yes**", "format": "org.matrix.custom.html",
        "formatted_body": "<strong>yes</strong> &amp; <em>welcome</em>",
        "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id.clone().unwrap()}}});
    h.txn(vec![matrix_event(
        "m.room.message",
        "$alice1",
        room,
        content,
    )])
    .await;
    let relayed = h
        .wait_sent("Alice's message", |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.ends_with("yes & welcome"))
        })
        .await;
    assert_eq!(relayed["text"], "@alice:test: yes & welcome");
    let kinds: Vec<&str> = relayed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bold", "bold", "italic"]);
    assert_eq!(
        relayed["reply_to_message"]["message_id"], hello_id,
        "the reply points at Ann's message"
    );
    let relayed_id = relayed["message_id"].as_i64().unwrap();

    // Telegram -> Matrix reply to the relayed message.
    h.fake
        .update(text_from_ann("thanks", json!({"reply_to_message": {"message_id": relayed_id, "date": 1, "chat": group(), "text": "x"}})))
        .await;
    let reply = h
        .wait_send(room, "Ann's reply", |r| r.body["body"] == "thanks")
        .await;
    assert_eq!(
        reply.body["m.relates_to"]["m.in_reply_to"]["event_id"],
        "$alice1"
    );

    // Edit, reaction, photo from Telegram.
    h.fake
        .update(json!({"edited_message": {"message_id": hello_id, "chat": group(), "from": ann(), "date": date,
            "edit_date": date + 60, "text": "hi everyone"}}))
        .await;
    let edit = h
        .wait_send(room, "the edit", |r| {
            r.body["m.new_content"]["body"] == "hi everyone"
        })
        .await;
    assert_eq!(edit.body["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(edit.ts, Some((date + 60) * 1000));
    h.fake
        .update(json!({"message_reaction": {"chat": group(), "message_id": hello_id, "user": ann(), "date": date + 70,
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "🔥"}]}}))
        .await;
    let reaction = wait_for("the reaction", || async {
        h.hs.recorded_of("send")
            .into_iter()
            .find(|r| r.event_type.as_deref() == Some("m.reaction"))
    })
    .await;
    assert_eq!(reaction.body["m.relates_to"]["key"], "🔥");
    let file = h
        .fake
        .post_raw_file(b"GIF89a\x02\x00\x02\x00", "photos", "p.gif")
        .await;
    h.fake
        .update(json!({"message": {"chat": group(), "from": ann(), "caption": "look",
            "photo": [{"file_id": file["file_id"], "file_unique_id": file["file_unique_id"], "width": 2, "height": 2}]}}))
        .await;
    let photo = h
        .wait_send(room, "the photo", |r| r.body["msgtype"] == "m.image")
        .await;
    assert_eq!(photo.body["url"], "mxc://test/uploaded");
    assert_eq!(photo.body["body"], "look");
    assert_eq!(photo.body["info"]["size"], 10);

    // Matrix -> Telegram reaction, edit and redaction of Alice's message.
    let on_hello = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event.event_id.clone().unwrap(), "key": "👍"}});
    h.txn(vec![matrix_event("m.reaction", "$react", room, on_hello)])
        .await;
    let reactions = wait_for("the bot's reaction", || async {
        let r = h
            .fake
            .get(&format!("/_fake/reactions?chat_id={GROUP}"))
            .await;
        (!r.as_array().unwrap().is_empty()).then_some(r)
    })
    .await;
    assert_eq!(reactions[0]["message_id"], hello_id);
    assert_eq!(reactions[0]["reaction"][0]["emoji"], "👍");
    let edit = json!({"msgtype": "m.text", "body": "* yes!", "m.new_content": {"msgtype": "m.text", "body": "yes!"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$alice1"}});
    h.txn(vec![matrix_event(
        "m.room.message",
        "$alice1edit",
        room,
        edit,
    )])
    .await;
    h.wait_sent("the edit in Telegram", |m| m["text"] == "@alice:test: yes!")
        .await;
    let redaction = json!({"type": "m.room.redaction", "event_id": "$redact", "room_id": room, "sender": "@alice:test",
        "origin_server_ts": 1, "redacts": "$alice1", "content": {"redacts": "$alice1"}});
    h.txn(vec![redaction]).await;
    let deleted = h.wait_sent("the deletion", |m| m["deleted"] == true).await;
    assert_eq!(deleted["message_id"], relayed_id);
    h.finish().await;
}

async fn updates_missed_while_down_arrive_once_in_order_with_their_dates(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    h.fake.update(text_from_ann("before", json!({}))).await;
    h.wait_send(&room, "the first message", |r| r.body["body"] == "before")
        .await;
    let h = {
        h.network.stop().await.unwrap();
        // Telegram users keep talking while the bridge is down.
        for i in 0..5 {
            h.fake
                .update(text_from_ann(
                    &format!("missed {i}"),
                    json!({"date": 1_600_000_000 + i}),
                ))
                .await;
        }
        h.restart().await
    };
    h.wait_send(&room, "the last missed message", |r| {
        r.body["body"] == "missed 4"
    })
    .await;
    h.fake.update(text_from_ann("after", json!({}))).await;
    h.wait_send(&room, "a new message", |r| r.body["body"] == "after")
        .await;
    let bodies: Vec<(String, Option<u64>)> = h
        .sends(&room)
        .into_iter()
        .map(|r| (r.body["body"].as_str().unwrap_or_default().to_owned(), r.ts))
        .collect();
    let mut expected = vec![("before".to_owned(), bodies[0].1)];
    expected.extend((0..5).map(|i| (format!("missed {i}"), Some((1_600_000_000 + i) * 1000))));
    expected.push(("after".to_owned(), bodies[6].1));
    assert_eq!(
        bodies, expected,
        "each message once, in order, with its Telegram date"
    );
    h.finish().await;
}

async fn a_burst_of_429s_loses_nothing_and_keeps_order(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.as_str();
    h.fake.update(text_from_ann("hello", json!({}))).await;
    h.wait_send(room, "the first message", |r| r.body["body"] == "hello")
        .await;
    h.fake
        .post(
            "/_fake/fail",
            json!({"count": 3, "error_code": 429, "retry_after": 1, "method": "sendMessage"}),
        )
        .await;
    let events = (0..3)
        .map(|i| {
            matrix_event(
                "m.room.message",
                &format!("$burst{i}"),
                room,
                json!({"msgtype": "m.text", "body": format!("burst {i}")}),
            )
        })
        .collect();
    let started = Instant::now();
    h.txn(events).await;
    h.wait_sent("the last message", |m| m["text"] == "@alice:test: burst 2")
        .await;
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "three retry_after waits of 1 s"
    );
    let texts: Vec<String> = h
        .fake
        .sent(GROUP)
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "@alice:test: burst 0",
            "@alice:test: burst 1",
            "@alice:test: burst 2"
        ]
    );
    h.finish().await;
}

impl Fake {
    async fn post_raw_file(&self, data: &'static [u8], kind: &str, name: &str) -> Value {
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

on_both_backends!(
    linking_with_a_code_creates_the_portal_room,
    telegram_and_matrix_users_talk_both_ways,
    updates_missed_while_down_arrive_once_in_order_with_their_dates,
    a_burst_of_429s_loses_nothing_and_keeps_order,
);
