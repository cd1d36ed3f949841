//! A small in-process homeserver for tests and benchmarks (feature `testing`): it answers
//! the client-server requests the SDK makes, records them, and can be told to fail. It does
//! not check events or authorization; end-to-end tests use a real homeserver.
//!
//! ```no_run
//! # async fn demo() {
//! use appservice_sdk::testing::TestHomeserver;
//! let hs = TestHomeserver::start(true).await; // true: advertise batch send
//! hs.fail_next(2, 429, Some(10));             // the next two requests get M_LIMIT_EXCEEDED
//! println!("{}", hs.url());
//! # }
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{Value, json};

/// One request the test homeserver recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `send`, `state`, `redact`, `join`, `invite`, `register`, `displayname`, `avatar_url`,
    /// `upload`, `typing`, `receipt` or `batch_send`.
    pub kind: String,
    /// The room, if any.
    pub room_id: Option<String>,
    /// The acting user (`user_id` query, or the registered username).
    pub user_id: Option<String>,
    /// The event type, for sends and state.
    pub event_type: Option<String>,
    /// The JSON body (or `null`).
    pub body: Value,
    /// `ts` query parameter.
    pub ts: Option<u64>,
    /// The event id answered, for sends.
    pub event_id: Option<String>,
}

#[derive(Default)]
struct Inner {
    recorded: Vec<Recorded>,
    registered: HashSet<String>,
    txns: HashMap<(String, String), String>,
    invite_only: HashSet<String>,
    invited: HashSet<(String, String)>,
    fail: Option<(u32, u16, Option<u64>)>,
    next_event: u64,
    quiet: bool,
    sends: u64,
    /// The last upload (its bytes and `Content-Type`), served back at `mxc://test/uploaded`.
    uploaded: Option<(Vec<u8>, String)>,
}

/// The test homeserver; dropped, it stops.
#[derive(Clone)]
pub struct TestHomeserver {
    url: String,
    batch_send: bool,
    inner: Arc<Mutex<Inner>>,
    _shutdown: Arc<tokio::sync::oneshot::Sender<()>>,
}

type Shared = (Arc<Mutex<Inner>>, bool);
type Q = Query<HashMap<String, String>>;

impl TestHomeserver {
    /// Starts on a free loopback port; `batch_send` decides whether `/versions` advertises
    /// `fi.causeway.batch_send`.
    pub async fn start(batch_send: bool) -> Self {
        Self::start_with(batch_send, false).await
    }

    /// A sink for benchmarks: answers like [`TestHomeserver::start`] but records nothing
    /// (and keeps no transaction ids), only counting sends.
    pub async fn start_sink() -> Self {
        Self::start_with(false, true).await
    }

    /// How many events were sent (counted in sink mode too).
    pub fn send_count(&self) -> u64 {
        self.inner.lock().expect("lock").sends
    }

    async fn start_with(batch_send: bool, quiet: bool) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            quiet,
            ..Inner::default()
        }));
        let shared: Shared = (inner.clone(), batch_send);
        let c = "/_matrix/client/v3";
        let router = Router::new()
            .route("/_matrix/client/versions", get(versions))
            .route(&format!("{c}/register"), post(register))
            .route(&format!("{c}/rooms/{{room}}/join"), post(join))
            .route(&format!("{c}/join/{{room}}"), post(join))
            .route(&format!("{c}/rooms/{{room}}/invite"), post(invite))
            .route(&format!("{c}/rooms/{{room}}/leave"), post(leave))
            .route(
                &format!("{c}/rooms/{{room}}/send/{{kind}}/{{txn}}"),
                put(send),
            )
            .route(
                &format!("{c}/rooms/{{room}}/state/{{kind}}/{{key}}"),
                put(state),
            )
            .route(
                &format!("{c}/rooms/{{room}}/state/{{kind}}/"),
                put(state_empty_key),
            )
            .route(
                &format!("{c}/rooms/{{room}}/redact/{{event}}/{{txn}}"),
                put(redact),
            )
            .route(&format!("{c}/rooms/{{room}}/typing/{{user}}"), put(typing))
            .route(
                &format!("{c}/rooms/{{room}}/receipt/{{kind}}/{{event}}"),
                post(receipt),
            )
            .route(
                &format!("{c}/profile/{{user}}/{{field}}"),
                put(profile).get(no_profile),
            )
            .route(&format!("{c}/createRoom"), post(create_room))
            .route("/_matrix/media/v3/upload", post(upload))
            // Only the legacy download route, as older homeservers: clients must fall back to it.
            .route("/_matrix/media/v3/download/{server}/{media}", get(download))
            .route(
                "/_matrix/client/unstable/fi.causeway.batch_send/rooms/{room}/batch_send",
                post(batch_send_route),
            )
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            url,
            batch_send,
            inner,
            _shutdown: Arc::new(tx),
        }
    }

    /// Base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether batch send is advertised.
    pub fn batch_send(&self) -> bool {
        self.batch_send
    }

    /// Everything recorded so far.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner.lock().expect("lock").recorded.clone()
    }

    /// Recorded requests of one kind.
    pub fn recorded_of(&self, kind: &str) -> Vec<Recorded> {
        self.recorded()
            .into_iter()
            .filter(|r| r.kind == kind)
            .collect()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.inner.lock().expect("lock").recorded.clear();
    }

    /// Makes joining `room_id` need an invite, except for `member` (e.g. the bot).
    pub fn make_invite_only(&self, room_id: &str, member: &str) {
        let mut inner = self.inner.lock().expect("lock");
        inner.invite_only.insert(room_id.to_owned());
        inner
            .invited
            .insert((room_id.to_owned(), member.to_owned()));
    }

    /// The next `count` requests fail with `status` (`M_LIMIT_EXCEEDED` with
    /// `retry_after_ms` for 429, `M_UNKNOWN` otherwise).
    pub fn fail_next(&self, count: u32, status: u16, retry_after_ms: Option<u64>) {
        self.inner.lock().expect("lock").fail = Some((count, status, retry_after_ms));
    }
}

fn injected_failure(inner: &Mutex<Inner>) -> Option<Response> {
    let mut inner = inner.lock().expect("lock");
    let (count, status, retry) = inner.fail?;
    inner.fail = (count > 1).then_some((count - 1, status, retry));
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if status == StatusCode::TOO_MANY_REQUESTS {
        json!({"errcode": "M_LIMIT_EXCEEDED", "error": "slow down", "retry_after_ms": retry})
    } else {
        json!({"errcode": "M_UNKNOWN", "error": "injected failure"})
    };
    Some((status, Json(body)).into_response())
}

fn record(inner: &Mutex<Inner>, r: Recorded) {
    let mut inner = inner.lock().expect("lock");
    if !inner.quiet {
        inner.recorded.push(r);
    }
}

fn new_event_id(inner: &Mutex<Inner>) -> String {
    let mut inner = inner.lock().expect("lock");
    inner.next_event += 1;
    format!("$ev{}", inner.next_event)
}

fn recorded(kind: &str, room: Option<&str>, q: &HashMap<String, String>, body: Value) -> Recorded {
    Recorded {
        kind: kind.to_owned(),
        room_id: room.map(str::to_owned),
        user_id: q.get("user_id").cloned(),
        event_type: None,
        body,
        ts: q.get("ts").and_then(|t| t.parse().ok()),
        event_id: None,
    }
}

macro_rules! fail_point {
    ($inner:expr) => {
        if let Some(resp) = injected_failure(&$inner) {
            return resp;
        }
    };
}

async fn versions(State((inner, batch)): State<Shared>) -> Response {
    fail_point!(inner);
    Json(json!({"versions": ["v1.11"], "unstable_features": {"fi.causeway.batch_send": batch}}))
        .into_response()
}

async fn register(State((inner, _)): State<Shared>, q: Q, Json(body): Json<Value>) -> Response {
    fail_point!(inner);
    let name = body["username"].as_str().unwrap_or_default().to_owned();
    let mut r = recorded("register", None, &q, body.clone());
    r.user_id = Some(name.clone());
    record(&inner, r);
    if !inner.lock().expect("lock").registered.insert(name.clone()) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"errcode": "M_USER_IN_USE", "error": "taken"})),
        )
            .into_response();
    }
    Json(json!({"user_id": format!("@{name}:test")})).into_response()
}

async fn join(State((inner, _)): State<Shared>, Path(room): Path<String>, q: Q) -> Response {
    fail_point!(inner);
    let user = q.0.get("user_id").cloned().unwrap_or_default();
    {
        let guard = inner.lock().expect("lock");
        if guard.invite_only.contains(&room)
            && !guard.invited.contains(&(room.clone(), user.clone()))
        {
            drop(guard);
            record(
                &inner,
                recorded("join_refused", Some(&room), &q, Value::Null),
            );
            return (
                StatusCode::FORBIDDEN,
                Json(json!({"errcode": "M_FORBIDDEN", "error": "not invited"})),
            )
                .into_response();
        }
    }
    record(&inner, recorded("join", Some(&room), &q, Value::Null));
    Json(json!({"room_id": room})).into_response()
}

async fn invite(
    State((inner, _)): State<Shared>,
    Path(room): Path<String>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    let invitee = body["user_id"].as_str().unwrap_or_default().to_owned();
    inner
        .lock()
        .expect("lock")
        .invited
        .insert((room.clone(), invitee));
    record(&inner, recorded("invite", Some(&room), &q, body));
    Json(json!({})).into_response()
}

async fn leave(State((inner, _)): State<Shared>, Path(room): Path<String>, q: Q) -> Response {
    fail_point!(inner);
    record(&inner, recorded("leave", Some(&room), &q, Value::Null));
    Json(json!({})).into_response()
}

async fn send(
    State((inner, _)): State<Shared>,
    Path((room, kind, txn)): Path<(String, String, String)>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    let user = q.0.get("user_id").cloned().unwrap_or_default();
    let quiet = {
        let mut guard = inner.lock().expect("lock");
        guard.sends += 1;
        guard.quiet
    };
    if quiet {
        return Json(json!({"event_id": new_event_id(&inner)})).into_response();
    }
    let existing = inner
        .lock()
        .expect("lock")
        .txns
        .get(&(user.clone(), txn.clone()))
        .cloned();
    let event_id = match existing {
        Some(id) => id,
        None => {
            let id = new_event_id(&inner);
            inner
                .lock()
                .expect("lock")
                .txns
                .insert((user, txn), id.clone());
            let mut r = recorded("send", Some(&room), &q, body);
            r.event_type = Some(kind);
            r.event_id = Some(id.clone());
            record(&inner, r);
            id
        }
    };
    Json(json!({"event_id": event_id})).into_response()
}

async fn state(
    State((inner, _)): State<Shared>,
    Path((room, kind, _key)): Path<(String, String, String)>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    let id = new_event_id(&inner);
    let mut r = recorded("state", Some(&room), &q, body);
    r.event_type = Some(kind);
    r.event_id = Some(id.clone());
    record(&inner, r);
    Json(json!({"event_id": id})).into_response()
}

async fn state_empty_key(
    State(shared): State<Shared>,
    Path((room, kind)): Path<(String, String)>,
    q: Q,
    body: Json<Value>,
) -> Response {
    state(State(shared), Path((room, kind, String::new())), q, body).await
}

async fn redact(
    State((inner, _)): State<Shared>,
    Path((room, event, _txn)): Path<(String, String, String)>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    let id = new_event_id(&inner);
    let mut r = recorded(
        "redact",
        Some(&room),
        &q,
        json!({"redacts": event, "reason": body["reason"]}),
    );
    r.event_id = Some(id.clone());
    record(&inner, r);
    Json(json!({"event_id": id})).into_response()
}

async fn typing(
    State((inner, _)): State<Shared>,
    Path((room, _user)): Path<(String, String)>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    record(&inner, recorded("typing", Some(&room), &q, body));
    Json(json!({})).into_response()
}

async fn receipt(
    State((inner, _)): State<Shared>,
    Path((room, kind, event)): Path<(String, String, String)>,
    q: Q,
) -> Response {
    fail_point!(inner);
    record(
        &inner,
        recorded(
            "receipt",
            Some(&room),
            &q,
            json!({"type": kind, "event_id": event}),
        ),
    );
    Json(json!({})).into_response()
}

async fn profile(
    State((inner, _)): State<Shared>,
    Path((_user, field)): Path<(String, String)>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    record(&inner, recorded(&field, None, &q, body));
    Json(json!({})).into_response()
}

async fn no_profile() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"errcode": "M_NOT_FOUND", "error": "no profile"})),
    )
        .into_response()
}

async fn create_room(State((inner, _)): State<Shared>, q: Q, Json(body): Json<Value>) -> Response {
    fail_point!(inner);
    let id = {
        let mut guard = inner.lock().expect("lock");
        guard.next_event += 1;
        format!("!room{}:test", guard.next_event)
    };
    record(&inner, recorded("create_room", Some(&id), &q, body));
    Json(json!({"room_id": id})).into_response()
}

async fn upload(
    State((inner, _)): State<Shared>,
    q: Q,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    fail_point!(inner);
    record(
        &inner,
        recorded("upload", None, &q, json!({"size": body.len()})),
    );
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    inner.lock().expect("lock").uploaded = Some((body.to_vec(), content_type));
    Json(json!({"content_uri": "mxc://test/uploaded"})).into_response()
}

async fn download(
    State((inner, _)): State<Shared>,
    Path((server, media)): Path<(String, String)>,
) -> Response {
    fail_point!(inner);
    let uploaded = inner.lock().expect("lock").uploaded.clone();
    match uploaded {
        Some((data, content_type)) if server == "test" && media == "uploaded" => {
            ([(axum::http::header::CONTENT_TYPE, content_type)], data).into_response()
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"errcode": "M_NOT_FOUND", "error": "no such media"})),
        )
            .into_response(),
    }
}

async fn batch_send_route(
    State((inner, _)): State<Shared>,
    Path(room): Path<String>,
    q: Q,
    Json(body): Json<Value>,
) -> Response {
    fail_point!(inner);
    let count = body["events"].as_array().map_or(0, Vec::len);
    let ids: Vec<String> = (0..count).map(|_| new_event_id(&inner)).collect();
    let mut r = recorded("batch_send", Some(&room), &q, body);
    r.event_id = ids.first().cloned();
    record(&inner, r);
    Json(json!({"event_ids": ids})).into_response()
}
