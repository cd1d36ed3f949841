//! The appservice HTTP server: what the homeserver calls (`/_matrix/app/v1/*`, and the legacy
//! unprefixed paths), authenticated by the `hs_token`.
//!
//! Transactions are deduplicated: a processed txnId is persisted in the store, so a
//! redelivery (after a crash or a lost answer) is acknowledged without reprocessing, and a
//! retry that arrives while the first delivery is still being handled waits for it.
//!
//! ```no_run
//! # async fn demo(store: appservice_sdk::store::Store) -> std::io::Result<()> {
//! use std::sync::Arc;
//! use appservice_sdk::server::{self, AppserviceHandler, ServerState, Transaction};
//!
//! struct Printer;
//! #[async_trait::async_trait]
//! impl AppserviceHandler for Printer {
//!     async fn handle_transaction(&self, txn: Transaction) -> appservice_sdk::Result<()> {
//!         println!("{} events", txn.events.len());
//!         Ok(())
//!     }
//! }
//!
//! let state = ServerState::new("the-hs-token", store, Arc::new(Printer));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:29330").await?;
//! server::run(listener, server::app(state), std::future::pending()).await
//! # }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use ruma::{RoomAliasId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::error::Result;
use crate::metrics::Metrics;
use crate::store::Store;

/// One transaction pushed by the homeserver.
#[derive(Debug, Clone, Deserialize)]
pub struct Transaction {
    /// The homeserver's transaction id.
    #[serde(skip)]
    pub txn_id: String,
    /// Timeline events (raw JSON, in order).
    #[serde(default)]
    pub events: Vec<Value>,
    /// Ephemeral events (typing, receipts, presence) if `receive_ephemeral` is on, from the
    /// spec's `ephemeral` and the MSC2409 `de.sorunome.msc2409.ephemeral` (Synapse sends both).
    #[serde(default)]
    pub ephemeral: Vec<Value>,
    #[serde(default, rename = "de.sorunome.msc2409.ephemeral")]
    msc2409_ephemeral: Vec<Value>,
}

impl Transaction {
    /// A transaction with these events.
    pub fn new(txn_id: &str, events: Vec<Value>, ephemeral: Vec<Value>) -> Self {
        Self {
            txn_id: txn_id.to_owned(),
            events,
            ephemeral,
            msc2409_ephemeral: Vec::new(),
        }
    }

    /// Takes the MSC2409 list when the spec's is empty, so each ephemeral event counts once.
    fn merge_ephemeral(&mut self) {
        if self.ephemeral.is_empty() {
            self.ephemeral = std::mem::take(&mut self.msc2409_ephemeral);
        } else {
            self.msc2409_ephemeral.clear();
        }
    }
}

/// What the bridge answers to the homeserver. Only `handle_transaction` is required.
#[async_trait]
pub trait AppserviceHandler: Send + Sync + 'static {
    /// Handles a transaction; when this returns `Ok` the transaction is acknowledged and
    /// recorded as processed. An `Err` makes the homeserver retry it later.
    async fn handle_transaction(&self, txn: Transaction) -> Result<()>;

    /// Whether a user in the namespace exists (creating it if it should).
    async fn query_user(&self, _user_id: &UserId) -> bool {
        false
    }

    /// Whether an alias in the namespace exists (creating the room if it should).
    async fn query_room_alias(&self, _alias: &RoomAliasId) -> bool {
        false
    }

    /// The third-party lookups (`/_matrix/app/v1/thirdparty/*`), if the handler answers them;
    /// `None` (the default) answers 404 to each.
    fn third_party(&self) -> Option<&dyn ThirdPartyLookup> {
        None
    }

    /// JSON for `GET /_causeway/status` (bridge status).
    fn status(&self) -> Value {
        json!({})
    }
}

/// Third-party lookups (`/_matrix/app/v1/thirdparty/*`), declared once here: a raw
/// [`AppserviceHandler`] and a bridge [`Network`](crate::bridge::Network) each expose them through
/// their `third_party` method. Every method has a default that knows nothing.
///
/// ```
/// use appservice_sdk::server::ThirdPartyLookup;
/// use serde_json::{Value, json};
///
/// struct Lookup;
///
/// #[async_trait::async_trait]
/// impl ThirdPartyLookup for Lookup {
///     async fn thirdparty_protocol(&self, protocol: &str) -> Option<Value> {
///         (protocol == "echo").then(|| json!({"user_fields": [], "location_fields": [], "icon": "",
///             "field_types": {}, "instances": []}))
///     }
/// }
/// ```
#[async_trait]
pub trait ThirdPartyLookup: Send + Sync {
    /// Third-party protocol metadata, `GET /_matrix/app/v1/thirdparty/protocol/{protocol}`.
    async fn thirdparty_protocol(&self, _protocol: &str) -> Option<Value> {
        None
    }

    /// Third-party locations: by protocol and fields (`alias` is `None`), or by Matrix alias.
    async fn thirdparty_locations(
        &self,
        _protocol: Option<&str>,
        _fields: &BTreeMap<String, String>,
        _alias: Option<&str>,
    ) -> Vec<Value> {
        Vec::new()
    }

    /// Third-party users: by protocol and fields (`user_id` is `None`), or by Matrix user id.
    async fn thirdparty_users(
        &self,
        _protocol: Option<&str>,
        _fields: &BTreeMap<String, String>,
        _user_id: Option<&str>,
    ) -> Vec<Value> {
        Vec::new()
    }
}

/// Shared state of the server routes.
pub struct ServerState {
    hs_token: String,
    store: Store,
    handler: Arc<dyn AppserviceHandler>,
    metrics: Arc<Metrics>,
    in_flight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl ServerState {
    /// State for a server checking `hs_token`, recording processed transactions in `store`.
    pub fn new(hs_token: &str, store: Store, handler: Arc<dyn AppserviceHandler>) -> Arc<Self> {
        Self::with_metrics(hs_token, store, handler, Arc::new(Metrics::default()))
    }

    /// Like [`ServerState::new`], sharing a metrics registry.
    pub fn with_metrics(
        hs_token: &str,
        store: Store,
        handler: Arc<dyn AppserviceHandler>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            hs_token: hs_token.to_owned(),
            store,
            handler,
            metrics,
            in_flight: Mutex::new(HashMap::new()),
        })
    }
}

/// The router: every appservice route, plus `GET /metrics` and `GET /_causeway/status`.
pub fn app(state: Arc<ServerState>) -> Router {
    Router::new()
        .route(
            "/_matrix/app/v1/transactions/{txn_id}",
            put(put_transaction),
        )
        .route("/transactions/{txn_id}", put(put_transaction))
        .route("/_matrix/app/v1/users/{user_id}", get(get_user))
        .route("/users/{user_id}", get(get_user))
        .route("/_matrix/app/v1/rooms/{alias}", get(get_room_alias))
        .route("/rooms/{alias}", get(get_room_alias))
        .route("/_matrix/app/v1/ping", post(post_ping))
        .route(
            "/_matrix/app/v1/thirdparty/protocol/{protocol}",
            get(get_protocol),
        )
        .route(
            "/_matrix/app/v1/thirdparty/location/{protocol}",
            get(get_locations_by_protocol),
        )
        .route(
            "/_matrix/app/v1/thirdparty/location",
            get(get_locations_by_alias),
        )
        .route(
            "/_matrix/app/v1/thirdparty/user/{protocol}",
            get(get_users_by_protocol),
        )
        .route("/_matrix/app/v1/thirdparty/user", get(get_users_by_id))
        .route("/metrics", get(get_metrics))
        .route("/_causeway/status", get(get_status))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn run(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

/// A Matrix error response.
fn error(status: StatusCode, errcode: &str, message: &str) -> Response {
    (status, Json(json!({"errcode": errcode, "error": message}))).into_response()
}

/// Checks the `hs_token` from the `Authorization: Bearer` header and/or the `access_token`
/// query parameter, in constant time; both given but different is refused.
fn authenticate(
    state: &ServerState,
    headers: &HeaderMap,
    query: &BTreeMap<String, String>,
) -> Result<(), Box<Response>> {
    let from_header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let from_query = query.get("access_token").map(String::as_str);
    let token = match (from_header, from_query) {
        (None, None) => {
            return Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "M_UNAUTHORIZED",
                "missing token",
            )));
        }
        (Some(h), Some(q)) if !bool::from(h.as_bytes().ct_eq(q.as_bytes())) => {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "M_FORBIDDEN",
                "header and query tokens differ",
            )));
        }
        (Some(t), _) | (None, Some(t)) => t,
    };
    if bool::from(token.as_bytes().ct_eq(state.hs_token.as_bytes())) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "M_FORBIDDEN",
            "bad token",
        )))
    }
}

/// `PUT /_matrix/app/v1/transactions/{txnId}`
async fn put_transaction(
    State(state): State<Arc<ServerState>>,
    Path(txn_id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    let mut txn: Transaction = match serde_json::from_slice(&body) {
        Ok(txn) => txn,
        Err(e) => {
            tracing::warn!(txn_id, error = %e, "refusing a transaction that does not parse");
            return error(StatusCode::BAD_REQUEST, "M_NOT_JSON", &e.to_string());
        }
    };
    txn.txn_id = txn_id.clone();
    txn.merge_ephemeral();
    state.metrics.transaction();

    let lock = {
        let mut in_flight = state.in_flight.lock().expect("in-flight lock");
        in_flight.entry(txn_id.clone()).or_default().clone()
    };
    let outcome = {
        let _turn = lock.lock().await;
        process_once(&state, txn).await
    };
    {
        let mut in_flight = state.in_flight.lock().expect("in-flight lock");
        // Only the last one out removes the entry, so a waiter never races a newcomer.
        if Arc::strong_count(&lock) == 2 {
            in_flight.remove(&txn_id);
        }
    }
    match outcome {
        Ok(()) => Json(json!({})).into_response(),
        Err(e) => {
            tracing::error!(txn_id, error = %e, "transaction failed; the homeserver will retry");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "M_UNKNOWN",
                "transaction failed",
            )
        }
    }
}

async fn process_once(state: &ServerState, txn: Transaction) -> Result<()> {
    if state.store.is_txn_processed(&txn.txn_id).await? {
        tracing::debug!(
            txn_id = txn.txn_id,
            "transaction redelivered; already processed"
        );
        return Ok(());
    }
    let txn_id = txn.txn_id.clone();
    state.handler.handle_transaction(txn).await?;
    state.store.mark_txn_processed(&txn_id).await
}

/// `GET /_matrix/app/v1/users/{userId}`
async fn get_user(
    State(state): State<Arc<ServerState>>,
    Path(user_id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    match UserId::parse(&user_id) {
        Ok(user_id) if state.handler.query_user(&user_id).await => Json(json!({})).into_response(),
        _ => error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such user"),
    }
}

/// `GET /_matrix/app/v1/rooms/{roomAlias}`
async fn get_room_alias(
    State(state): State<Arc<ServerState>>,
    Path(alias): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    match RoomAliasId::parse(&alias) {
        Ok(alias) if state.handler.query_room_alias(&alias).await => {
            Json(json!({})).into_response()
        }
        _ => error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such room alias"),
    }
}

/// `POST /_matrix/app/v1/ping`
async fn post_ping(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    Json(json!({})).into_response()
}

/// `GET /_matrix/app/v1/thirdparty/protocol/{protocol}`
async fn get_protocol(
    State(state): State<Arc<ServerState>>,
    Path(protocol): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    match match state.handler.third_party() {
        Some(lookup) => lookup.thirdparty_protocol(&protocol).await,
        None => Default::default(),
    } {
        Some(p) => Json(p).into_response(),
        None => error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "no such protocol"),
    }
}

fn without_token(mut query: BTreeMap<String, String>) -> BTreeMap<String, String> {
    query.remove("access_token");
    query
}

fn list_or_not_found(items: Vec<Value>) -> Response {
    if items.is_empty() {
        error(StatusCode::NOT_FOUND, "M_NOT_FOUND", "nothing found")
    } else {
        Json(items).into_response()
    }
}

/// `GET /_matrix/app/v1/thirdparty/location/{protocol}`
async fn get_locations_by_protocol(
    State(state): State<Arc<ServerState>>,
    Path(protocol): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    let fields = without_token(query);
    list_or_not_found(match state.handler.third_party() {
        Some(lookup) => {
            lookup
                .thirdparty_locations(Some(&protocol), &fields, None)
                .await
        }
        None => Default::default(),
    })
}

/// `GET /_matrix/app/v1/thirdparty/location?alias=`
async fn get_locations_by_alias(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    let Some(alias) = query.get("alias").cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "M_MISSING_PARAM",
            "alias is required",
        );
    };
    list_or_not_found(match state.handler.third_party() {
        Some(lookup) => {
            lookup
                .thirdparty_locations(None, &BTreeMap::new(), Some(&alias))
                .await
        }
        None => Default::default(),
    })
}

/// `GET /_matrix/app/v1/thirdparty/user/{protocol}`
async fn get_users_by_protocol(
    State(state): State<Arc<ServerState>>,
    Path(protocol): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    let fields = without_token(query);
    list_or_not_found(match state.handler.third_party() {
        Some(lookup) => {
            lookup
                .thirdparty_users(Some(&protocol), &fields, None)
                .await
        }
        None => Default::default(),
    })
}

/// `GET /_matrix/app/v1/thirdparty/user?userid=`
async fn get_users_by_id(
    State(state): State<Arc<ServerState>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authenticate(&state, &headers, &query) {
        return *refused;
    }
    let Some(user_id) = query.get("userid").cloned() else {
        return error(
            StatusCode::BAD_REQUEST,
            "M_MISSING_PARAM",
            "userid is required",
        );
    };
    list_or_not_found(match state.handler.third_party() {
        Some(lookup) => {
            lookup
                .thirdparty_users(None, &BTreeMap::new(), Some(&user_id))
                .await
        }
        None => Default::default(),
    })
}

/// `GET /metrics` (Prometheus text format)
async fn get_metrics(State(state): State<Arc<ServerState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// `GET /_causeway/status`
async fn get_status(State(state): State<Arc<ServerState>>) -> Response {
    Json(state.handler.status()).into_response()
}
