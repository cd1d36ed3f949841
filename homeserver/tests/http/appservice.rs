//! The application service API: registrations, as_token auth, masquerading, `ts`, exclusive
//! namespaces, durable transactions, ping, batch send. A small appservice runs in each test.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::HeaderMap,
    routing::{post, put},
};
use http::StatusCode;
use serde_json::{Value, json};

use crate::support::{Db, TestServer, assert_error};

mod client;
mod ephemeral;
mod thirdparty;

const AS_TOKEN: &str = "as-token-bridge";
const HS_TOKEN: &str = "hs-token-bridge";

/// What the test appservice has seen, and how it should answer.
#[derive(Default)]
struct Seen {
    /// `(txn id, events)` per delivery attempt that was answered 200, in arrival order.
    txns: Mutex<Vec<(String, Vec<Value>)>>,
    /// Attempts refused while "down".
    refused: Mutex<u32>,
    /// 0: up; anything else: answer that status (a 5xx while "down").
    status: AtomicU16,
    /// Seconds ping sleeps before answering.
    ping_delay: AtomicU16,
    /// The homeserver, for the alias query handler to create rooms with.
    homeserver: std::sync::OnceLock<Router>,
    /// User ids and aliases it was asked about.
    queries: Mutex<Vec<String>>,
    /// `(txn id, ephemeral)` per delivery answered 200, and the body's top-level keys.
    ephemeral: Mutex<Vec<(String, Vec<Value>)>>,
    body_keys: Mutex<HashSet<String>>,
    /// Its `hs_token`, when not [`HS_TOKEN`].
    hs_token: std::sync::OnceLock<String>,
    /// Third-party lookups it was asked, as `path?query`.
    thirdparty: Mutex<Vec<String>>,
    /// Seconds third-party lookups sleep before answering.
    thirdparty_delay: AtomicU16,
}

impl Seen {
    fn hs_token(&self) -> &str {
        self.hs_token.get().map(String::as_str).unwrap_or(HS_TOKEN)
    }
}

/// `GET /_matrix/app/v1/users/{userId}`: `@bridge_auto_*` users are registered on demand.
async fn user_query(State(seen): State<Arc<Seen>>, Path(user_id): Path<String>) -> StatusCode {
    seen.queries.lock().unwrap().push(user_id.clone());
    let Some(localpart) = user_id
        .strip_prefix('@')
        .and_then(|a| a.strip_suffix(":test.local"))
        .filter(|l| l.starts_with("bridge_auto_"))
    else {
        return StatusCode::NOT_FOUND;
    };
    use tower::ServiceExt;
    let app = seen.homeserver.get().unwrap().clone();
    let req = http::Request::post("/_matrix/client/v3/register")
        .header("authorization", format!("Bearer {AS_TOKEN}"))
        .body(axum::body::Body::from(
            json!({"type": "m.login.application_service", "username": localpart, "inhibit_login": true})
                .to_string(),
        ))
        .unwrap();
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    StatusCode::OK
}

/// `GET /_matrix/app/v1/rooms/{alias}`: `#bridge_auto_*` rooms are made on demand.
async fn alias_query(
    State(seen): State<Arc<Seen>>,
    Path(alias): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    assert_eq!(
        headers.get("authorization").unwrap(),
        &format!("Bearer {HS_TOKEN}")
    );
    seen.queries.lock().unwrap().push(alias.clone());
    let Some(localpart) = alias
        .strip_prefix('#')
        .and_then(|a| a.strip_suffix(":test.local"))
        .filter(|l| l.starts_with("bridge_auto_"))
    else {
        return StatusCode::NOT_FOUND;
    };
    use tower::ServiceExt;
    let app = seen.homeserver.get().unwrap().clone();
    let req = http::Request::post("/_matrix/client/v3/createRoom")
        .header("authorization", format!("Bearer {AS_TOKEN}"))
        .body(axum::body::Body::from(
            json!({"room_alias_name": localpart}).to_string(),
        ))
        .unwrap();
    let response = app.oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    StatusCode::OK
}

struct Appservice {
    url: String,
    seen: Arc<Seen>,
}

async fn transaction(
    State(seen): State<Arc<Seen>>,
    Path(txn): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {}", seen.hs_token()))
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN"})),
        );
    }
    let status = seen.status.load(Ordering::SeqCst);
    if status != 0 {
        *seen.refused.lock().unwrap() += 1;
        return (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"errcode": "M_UNKNOWN"})),
        );
    }
    let events = body["events"].as_array().cloned().unwrap_or_default();
    let ephemeral = body["ephemeral"].as_array().cloned().unwrap_or_default();
    if let Some(keys) = body.as_object() {
        seen.body_keys.lock().unwrap().extend(keys.keys().cloned());
    }
    seen.ephemeral
        .lock()
        .unwrap()
        .push((txn.clone(), ephemeral));
    seen.txns.lock().unwrap().push((txn, events));
    (StatusCode::OK, Json(json!({})))
}

async fn ping(State(seen): State<Arc<Seen>>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let delay = seen.ping_delay.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_secs(delay.into())).await;
    }
    let status = seen.status.load(Ordering::SeqCst);
    if status != 0 {
        return (
            StatusCode::from_u16(status).unwrap(),
            Json(json!({"errcode": "M_UNKNOWN", "error": "down"})),
        );
    }
    assert_eq!(
        headers.get("authorization").unwrap(),
        &format!("Bearer {HS_TOKEN}")
    );
    (StatusCode::OK, Json(json!({})))
}

impl Appservice {
    async fn start() -> Self {
        Self::start_on("/_matrix/app/v1").await
    }

    /// An appservice that only knows the pre-v1 paths (`/transactions/...`).
    async fn start_legacy() -> Self {
        Self::start_on("").await
    }

    async fn start_on(prefix: &str) -> Self {
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route(&format!("{prefix}/transactions/{{txn}}"), put(transaction))
            .route("/_matrix/app/v1/ping", post(ping))
            .route(
                &format!("{prefix}/rooms/{{alias}}"),
                axum::routing::get(alias_query),
            )
            .route(
                &format!("{prefix}/users/{{user_id}}"),
                axum::routing::get(user_query),
            )
            .merge(thirdparty::routes())
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    fn set_down(&self, down: bool) {
        self.seen
            .status
            .store(if down { 503 } else { 0 }, Ordering::SeqCst);
    }

    /// Every event received, deduplicated by txn id as the spec asks of appservices.
    fn events(&self) -> Vec<Value> {
        let txns = self.seen.txns.lock().unwrap();
        let mut seen_txns = HashSet::new();
        let mut out = Vec::new();
        for (txn, events) in txns.iter() {
            if seen_txns.insert(txn.clone()) {
                out.extend(events.iter().cloned());
            }
        }
        out
    }

    fn bodies(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Waits until `n` message bodies have arrived (or panics after 20 s).
    async fn wait_for_messages(&self, n: usize) -> Vec<String> {
        for _ in 0..400 {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("only {} of {n} messages arrived", self.bodies().len());
    }
}

/// Writes the registration files into `dir` and returns the config lines naming them: `bridge`
/// (url = the test appservice, plus `bridge_extra` keys), `nourl` (url: null, holding `#nourl_*`
/// exclusively) and `closed` (a port nothing listens on).
fn registrations(dir: &std::path::Path, url: &str, bridge_extra: &str) -> String {
    let bridge = format!(
        "id: bridge\nurl: {url}\nas_token: {AS_TOKEN}\nhs_token: {HS_TOKEN}\nsender_localpart: bridgebot\n\
         rate_limited: false\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@bridge_.*:test\\.local'\n\
         \x20 aliases:\n    - exclusive: true\n      regex: '#bridge_.*:test\\.local'\n  rooms: []\n{bridge_extra}"
    );
    let nourl = "id: nourl\nurl: null\nas_token: as-nourl\nhs_token: hs-nourl\nsender_localpart: nourlbot\n\
        namespaces:\n  aliases:\n    - exclusive: true\n      regex: '#nourl_.*:test\\.local'\n";
    // A port that was free a moment ago: connection refused.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!(
        "id: closed\nurl: http://127.0.0.1:{closed_port}\nas_token: as-closed\nhs_token: hs-closed\nsender_localpart: closedbot\n"
    );
    let mut files = Vec::new();
    for (name, text) in [
        ("bridge", bridge.as_str()),
        ("nourl", nourl),
        ("closed", &closed),
    ] {
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text).unwrap();
        files.push(format!("\"{}\"", path.display()));
    }
    format!("app_service_config_files: [{}]\n", files.join(", "))
}

struct Setup {
    server: TestServer,
    appservice: Appservice,
    _dir: tempfile::TempDir,
}

async fn setup(db: Db) -> Setup {
    setup_with(db, "", "").await
}

/// [`setup`] with extra keys for the `bridge` registration and extra homeserver config.
async fn setup_with(db: Db, bridge_extra: &str, config_extra: &str) -> Setup {
    setup_around(db, Appservice::start().await, bridge_extra, config_extra).await
}

async fn setup_around(
    db: Db,
    appservice: Appservice,
    bridge_extra: &str,
    config_extra: &str,
) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let extra = registrations(dir.path(), &appservice.url, bridge_extra) + config_extra;
    let server = TestServer::with_config(db, &extra).await;
    let _ = appservice.seen.homeserver.set(server.app.clone());
    Setup {
        server,
        appservice,
        _dir: dir,
    }
}

/// Registers `@{localpart}:test.local` as the appservice.
async fn as_register(s: &TestServer, localpart: &str) -> (StatusCode, Value) {
    s.post(
        "/_matrix/client/v3/register",
        Some(AS_TOKEN),
        json!({"type": "m.login.application_service", "username": localpart, "inhibit_login": true}),
    )
    .await
}

/// A room created by a human `alice`, with `@bridge_ghost` joined; returns (alice token, room).
async fn room_with_ghost(s: &TestServer) -> (String, String) {
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let room = s
        .create_room(&alice, json!({"preset": "public_chat"}))
        .await;
    let r = as_register(s, "bridge_ghost").await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = s
        .post(
            &format!("/_matrix/client/v3/join/{room}?user_id=@bridge_ghost:test.local"),
            Some(AS_TOKEN),
            json!({}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    (alice, room)
}

async fn namespaces_and_exclusivity(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    // The appservice registers inside its namespace, with no password and no session.
    let r = as_register(&s, "bridge_alice").await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["user_id"], "@bridge_alice:test.local");
    assert!(r.1.get("access_token").is_none(), "inhibit_login: {}", r.1);
    // Outside it: M_EXCLUSIVE.
    assert_error(
        &as_register(&s, "carol").await,
        StatusCode::BAD_REQUEST,
        "M_EXCLUSIVE",
    );
    // The appservice login type without the as_token: 401.
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"type": "m.login.application_service", "username": "bridge_x"}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    // Humans cannot take names or aliases in an exclusive namespace.
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "bridge_bob", "password": "pw-bob-123", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let room = s.create_room(&alice, json!({})).await;
    let r = s
        .put(
            "/_matrix/client/v3/directory/room/%23bridge_room:test.local",
            Some(&alice),
            json!({"room_id": room}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    // Login as a namespaced user with the as_token.
    let r = s
        .post(
            "/_matrix/client/v3/login",
            Some(AS_TOKEN),
            json!({"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": "bridge_alice"}}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["user_id"], "@bridge_alice:test.local");
    let token = r.1["access_token"].as_str().unwrap();
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some(token))
        .await;
    assert_eq!(r.1["user_id"], "@bridge_alice:test.local");
    // ... and not as a user outside it.
    let r = s
        .post(
            "/_matrix/client/v3/login",
            Some(AS_TOKEN),
            json!({"type": "m.login.application_service", "identifier": {"type": "m.id.user", "user": "alice"}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
}

async fn masquerading(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    // Without user_id: the sender_localpart user; by header or by query token.
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some(AS_TOKEN))
        .await;
    assert_eq!(r.1["user_id"], "@bridgebot:test.local", "{}", r.1);
    let r = s
        .get(
            &format!("/_matrix/client/v3/account/whoami?access_token={AS_TOKEN}"),
            None,
        )
        .await;
    assert_eq!(r.1["user_id"], "@bridgebot:test.local", "{}", r.1);
    as_register(&s, "bridge_alice").await;
    let r = s
        .get(
            "/_matrix/client/v3/account/whoami?user_id=@bridge_alice:test.local",
            Some(AS_TOKEN),
        )
        .await;
    assert_eq!(r.1["user_id"], "@bridge_alice:test.local", "{}", r.1);
    s.register("alice", "password-alice").await;
    let r = s
        .get(
            "/_matrix/client/v3/account/whoami?user_id=@alice:test.local",
            Some(AS_TOKEN),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .get(
            "/_matrix/client/v3/account/whoami?user_id=@bridge_nobody:test.local",
            Some(AS_TOKEN),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .get(
            "/_matrix/client/v3/account/whoami?user_id=@bridge_alice:test.local&device_id=NOPE",
            Some(AS_TOKEN),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_UNKNOWN_DEVICE");
}

async fn ts_is_honoured_for_appservices_only(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    let (alice, room) = room_with_ghost(&s).await;
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/ts1?user_id=@bridge_ghost:test.local&ts=1000"),
            Some(AS_TOKEN),
            json!({"msgtype": "m.text", "body": "old"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let id = r.1["event_id"].as_str().unwrap();
    let e = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
            Some(&alice),
        )
        .await;
    assert_eq!(e.1["origin_server_ts"], 1000, "{}", e.1);
    assert_eq!(e.1["sender"], "@bridge_ghost:test.local");
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/?ts=2000"),
            Some(&alice),
            json!({"topic": "now"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let id = r.1["event_id"].as_str().unwrap();
    let e = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{id}"),
            Some(&alice),
        )
        .await;
    assert!(
        e.1["origin_server_ts"].as_i64().unwrap() > 2000,
        "ignored for humans: {}",
        e.1
    );
}

async fn transactions_arrive_in_order_and_batched(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let (alice, room) = room_with_ghost(&s).await;
    for i in 0..250 {
        s.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let bodies = appservice.wait_for_messages(250).await;
    let expected: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected);
    let txns = appservice.seen.txns.lock().unwrap();
    assert!(txns.iter().all(|(_, e)| e.len() <= 100));
    let ids: Vec<i64> = txns.iter().map(|(t, _)| t.parse().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "txn ids increase: {ids:?}"
    );
    drop(txns);
    // The ghost's own join went out too, and events are in client format.
    let events = appservice.events();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == "@bridge_ghost:test.local")
    );
    assert!(
        events
            .iter()
            .all(|e| e["room_id"] == room.as_str() && e["event_id"].is_string())
    );
}

async fn events_of_rooms_without_its_users_are_not_sent(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let (alice, room) = room_with_ghost(&s).await;
    let other = s.create_room(&alice, json!({})).await;
    s.send_text(&alice, &other, "private").await;
    s.send_text(&alice, &room, "bridged").await;
    assert_eq!(appservice.wait_for_messages(1).await, ["bridged"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(appservice.bodies(), ["bridged"]);
}

async fn an_outage_delays_but_loses_nothing(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let (alice, room) = room_with_ghost(&s).await;
    appservice.wait_for_messages(0).await;
    appservice.set_down(true);
    for i in 0..30 {
        s.send_text(&alice, &room, &format!("m{i}")).await;
    }
    // Wait for at least two refused attempts (the retry) before coming back.
    for _ in 0..200 {
        if *appservice.seen.refused.lock().unwrap() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(*appservice.seen.refused.lock().unwrap() >= 2);
    appservice.set_down(false);
    for i in 30..40 {
        s.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let bodies = appservice.wait_for_messages(40).await;
    let expected: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, expected, "everything, in order, once");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(appservice.bodies().len(), 40);
}

async fn queued_transactions_survive_a_restart(db: Db) {
    let Setup {
        server: s,
        appservice,
        _dir,
    } = setup(db).await;
    let (alice, room) = room_with_ghost(&s).await;
    appservice.set_down(true);
    for i in 0..20 {
        s.send_text(&alice, &room, &format!("m{i}")).await;
    }
    for _ in 0..200 {
        if *appservice.seen.refused.lock().unwrap() >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let s = s.restart().await;
    appservice.set_down(false);
    s.send_text(&alice, &room, "after").await;
    let bodies = appservice.wait_for_messages(21).await;
    let mut expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
    expected.push("after".to_owned());
    assert_eq!(bodies, expected);
    // Each txn id carried the same events every time it was delivered.
    let txns = appservice.seen.txns.lock().unwrap();
    let mut by_id: HashMap<&str, &Vec<Value>> = HashMap::new();
    for (id, events) in txns.iter() {
        if let Some(prev) = by_id.insert(id, events) {
            assert_eq!(prev, events, "txn {id} was resent with other events");
        }
    }
}

async fn ping_answers_and_each_error(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let path = |id: &str| format!("/_matrix/client/v1/appservice/{id}/ping");
    let r = s
        .post(
            &path("bridge"),
            Some(AS_TOKEN),
            json!({"transaction_id": "t1"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert!(r.1["duration_ms"].is_u64(), "{}", r.1);
    // Someone else's id.
    assert_error(
        &s.post(&path("nourl"), Some(AS_TOKEN), json!({})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    assert_error(
        &s.post(&path("nourl"), Some("as-nourl"), json!({})).await,
        StatusCode::BAD_REQUEST,
        "M_URL_NOT_SET",
    );
    assert_error(
        &s.post(&path("closed"), Some("as-closed"), json!({})).await,
        StatusCode::BAD_GATEWAY,
        "M_CONNECTION_FAILED",
    );
    appservice.seen.status.store(403, Ordering::SeqCst);
    let r = s.post(&path("bridge"), Some(AS_TOKEN), json!({})).await;
    assert_error(&r, StatusCode::BAD_GATEWAY, "M_BAD_STATUS");
    assert_eq!(r.1["status"], 403, "{}", r.1);
    assert!(r.1["body"].as_str().unwrap().contains("down"), "{}", r.1);
    appservice.seen.status.store(0, Ordering::SeqCst);
    appservice.seen.ping_delay.store(8, Ordering::SeqCst);
    assert_error(
        &s.post(&path("bridge"), Some(AS_TOKEN), json!({})).await,
        StatusCode::GATEWAY_TIMEOUT,
        "M_CONNECTION_TIMEOUT",
    );
}

async fn batch_send_appends_in_order_atomically(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    let (_, versions) = s.get("/_matrix/client/versions", None).await;
    assert_eq!(
        versions["unstable_features"]["fi.causeway.batch_send"],
        true
    );
    let (alice, room) = room_with_ghost(&s).await;
    let path = format!("/_matrix/client/unstable/fi.causeway.batch_send/rooms/{room}/batch_send");
    // More events than one SQLite statement holds (32,000 parameters, 14 per event).
    const N: usize = 2_500;
    let events: Vec<Value> = (0..N)
        .map(|i| {
            json!({"type": "m.room.message", "sender": "@bridge_ghost:test.local",
                   "content": {"msgtype": "m.text", "body": format!("h{i}")},
                   "origin_server_ts": 1_000_000 + i})
        })
        .collect();
    let r = s
        .post(&path, Some(AS_TOKEN), json!({"events": events}))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let ids = r.1["event_ids"].as_array().unwrap();
    assert_eq!(ids.len(), N);
    let e = s
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/event/{}",
                ids[7].as_str().unwrap()
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(e.1["origin_server_ts"], 1_000_007);
    assert_eq!(e.1["content"]["body"], "h7");
    let e = s
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/event/{}",
                ids[2_400].as_str().unwrap()
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(e.1["content"]["body"], "h2400");
    let m = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=500"),
            Some(&alice),
        )
        .await;
    let bodies: Vec<&str> = m.1["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    let expected: Vec<String> = (N - 500..N).map(|i| format!("h{i}")).collect();
    assert_eq!(bodies, expected);
    // State in a batch: the last event per key is the room's state, member events included.
    let pl_path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/");
    let mut pl = s.get(&pl_path, Some(&alice)).await.1;
    pl["users"]["@bridge_ghost:test.local"] = json!(50);
    let r = s.put(&pl_path, Some(&alice), pl).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let state_batch = json!({"events": [
        {"type": "m.room.topic", "sender": "@bridge_ghost:test.local", "state_key": "", "content": {"topic": "first"}, "origin_server_ts": 5},
        {"type": "m.room.member", "sender": "@bridge_ghost:test.local", "state_key": "@bridge_ghost:test.local",
         "content": {"membership": "join", "displayname": "Ghost"}, "origin_server_ts": 6},
        {"type": "m.room.topic", "sender": "@bridge_ghost:test.local", "state_key": "", "content": {"topic": "second"}, "origin_server_ts": 7},
        {"type": "m.room.message", "sender": "@bridge_ghost:test.local", "content": {"body": "h500"}, "origin_server_ts": 8},
    ]});
    let r = s.post(&path, Some(AS_TOKEN), state_batch).await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let topic = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/"),
            Some(&alice),
        )
        .await;
    assert_eq!(topic.1["topic"], "second", "{}", topic.1);
    let member = s
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/m.room.member/@bridge_ghost:test.local"
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(member.1["displayname"], "Ghost", "{}", member.1);
    let members = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
            Some(&alice),
        )
        .await;
    assert_eq!(
        members.1["joined"]["@bridge_ghost:test.local"]["display_name"], "Ghost",
        "{}",
        members.1
    );
    // A sender outside the namespace, or not joined, fails the whole batch.
    let bad = json!({"events": [
        {"type": "m.room.message", "sender": "@bridge_ghost:test.local", "content": {"body": "x"}, "origin_server_ts": 1},
        {"type": "m.room.message", "sender": "@alice:test.local", "content": {"body": "y"}, "origin_server_ts": 2},
    ]});
    assert_error(
        &s.post(&path, Some(AS_TOKEN), bad).await,
        StatusCode::BAD_REQUEST,
        "M_EXCLUSIVE",
    );
    as_register(&s, "bridge_stranger").await;
    let bad = json!({"events": [
        {"type": "m.room.message", "sender": "@bridge_ghost:test.local", "content": {"body": "x"}, "origin_server_ts": 1},
        {"type": "m.room.message", "sender": "@bridge_stranger:test.local", "content": {"body": "y"}, "origin_server_ts": 2},
    ]});
    assert_error(
        &s.post(&path, Some(AS_TOKEN), bad).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
    let m = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=1"),
            Some(&alice),
        )
        .await;
    assert_eq!(
        m.1["chunk"][0]["content"]["body"], "h500",
        "nothing of a failed batch landed"
    );
    // The room still works after a batch: a normal send builds on it.
    s.send_text(&alice, &room, "after").await;
    // Humans may not batch send.
    assert_error(
        &s.post(&path, Some(&alice), json!({"events": []})).await,
        StatusCode::FORBIDDEN,
        "M_FORBIDDEN",
    );
}

async fn registrations_reload_without_a_restart(db: Db) {
    let Setup {
        server: s, _dir, ..
    } = setup(db).await;
    let file = _dir.path().join("nourl.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("as-nourl", "as-nourl-2")).unwrap();
    s.services.reload_appservices().unwrap();
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some("as-nourl-2"))
        .await;
    assert_eq!(r.1["user_id"], "@nourlbot:test.local", "{}", r.1);
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some("as-nourl"))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    // A broken file is refused and the registrations in force stay.
    std::fs::write(&file, "id: [").unwrap();
    assert!(s.services.reload_appservices().is_err());
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some("as-nourl-2"))
        .await;
    assert_eq!(r.0, StatusCode::OK);
}

async fn exclusive_aliases_are_refused_at_room_creation(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let r = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&alice),
            json!({"room_alias_name": "bridge_taken"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
}

async fn unknown_aliases_in_a_namespace_are_asked_of_the_appservice(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let r = s
        .get(
            "/_matrix/client/v3/directory/room/%23bridge_auto_x:test.local",
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert!(r.1["room_id"].as_str().unwrap().starts_with('!'));
    let r = s
        .get(
            "/_matrix/client/v3/directory/room/%23bridge_none:test.local",
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Outside every namespace nobody is asked.
    let r = s
        .get(
            "/_matrix/client/v3/directory/room/%23other:test.local",
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(
        *appservice.seen.queries.lock().unwrap(),
        ["#bridge_auto_x:test.local", "#bridge_none:test.local"]
    );
}

async fn inviting_an_unknown_namespaced_user_asks_the_appservice(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let room = s.create_room(&alice, json!({})).await;
    let r = s.invite(&alice, &room, "@bridge_auto_bob:test.local").await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert!(
        s.services
            .store
            .user_exists("@bridge_auto_bob:test.local")
            .await
            .unwrap()
    );
    // Known users and users outside every namespace are not asked about.
    s.register("carol", "password-carol").await;
    s.invite(&alice, &room, "@carol:test.local").await;
    assert_eq!(
        *appservice.seen.queries.lock().unwrap(),
        ["@bridge_auto_bob:test.local"]
    );
}

async fn appservices_create_devices_and_act_as_them(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    as_register(&s, "bridge_alice").await;
    let r = s
        .put(
            "/_matrix/client/v3/devices/BRIDGEDEV?user_id=@bridge_alice:test.local",
            Some(AS_TOKEN),
            json!({"display_name": "bridge device"}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = s
        .get(
            "/_matrix/client/v3/account/whoami?user_id=@bridge_alice:test.local&device_id=BRIDGEDEV",
            Some(AS_TOKEN),
        )
        .await;
    assert_eq!(r.1["device_id"], "BRIDGEDEV", "{}", r.1);
    // Humans still cannot create devices this way.
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let r = s
        .put("/_matrix/client/v3/devices/NEWDEV", Some(&alice), json!({}))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

on_both_backends!(
    appservices_create_devices_and_act_as_them,
    inviting_an_unknown_namespaced_user_asks_the_appservice,
    unknown_aliases_in_a_namespace_are_asked_of_the_appservice,
    registrations_reload_without_a_restart,
    exclusive_aliases_are_refused_at_room_creation,
    namespaces_and_exclusivity,
    masquerading,
    ts_is_honoured_for_appservices_only,
    transactions_arrive_in_order_and_batched,
    events_of_rooms_without_its_users_are_not_sent,
    an_outage_delays_but_loses_nothing,
    queued_transactions_survive_a_restart,
    ping_answers_and_each_error,
    batch_send_appends_in_order_atomically,
    an_appservice_on_legacy_paths_is_served_there,
);

async fn an_appservice_on_legacy_paths_is_served_there(db: Db) {
    let Setup {
        server: s,
        appservice,
        _dir,
    } = setup_around(db, Appservice::start_legacy().await, "", "").await;
    let (alice, room) = room_with_ghost(&s).await;
    s.send_text(&alice, &room, "one").await;
    s.send_text(&alice, &room, "two").await;
    assert_eq!(appservice.wait_for_messages(2).await, vec!["one", "two"]);
    // An unknown user in the namespace is asked about on the legacy path too.
    let r = s
        .get(
            "/_matrix/client/v3/profile/@bridge_unknown:test.local",
            Some(&alice),
        )
        .await;
    assert!(
        appservice
            .seen
            .queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.contains("bridge_unknown")),
        "{r:?}"
    );
}
