//! HTTP tests of the appservice server: authentication, transaction dedup, queries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use appservice_sdk::server::{self, AppserviceHandler, ServerState, Transaction};
use appservice_sdk::store::Store;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ruma::UserId;
use serde_json::{Value, json};
use tower::ServiceExt;

#[derive(Default)]
struct Counting {
    events: AtomicUsize,
    calls: AtomicUsize,
    fail_next: AtomicUsize,
}

#[async_trait::async_trait]
impl AppserviceHandler for Counting {
    async fn handle_transaction(&self, txn: Transaction) -> appservice_sdk::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Long enough that a concurrent retry arrives while this one is in flight.
        tokio::time::sleep(Duration::from_millis(200)).await;
        if self.fail_next.swap(0, Ordering::SeqCst) > 0 {
            return Err(appservice_sdk::Error::Network("boom".to_owned()));
        }
        self.events.fetch_add(txn.events.len(), Ordering::SeqCst);
        Ok(())
    }

    async fn query_user(&self, user_id: &UserId) -> bool {
        user_id.localpart().starts_with("echo_")
    }
}

async fn setup() -> (Arc<Counting>, axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite:{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let handler = Arc::new(Counting::default());
    let router = server::app(ServerState::new("hs-secret", store, handler.clone()));
    (handler, router, dir)
}

fn txn(path: &str, auth: Option<&str>) -> Request<Body> {
    let body = json!({"events": [{"type": "m.room.message", "event_id": "$1", "room_id": "!r:x",
        "sender": "@a:x", "origin_server_ts": 1, "content": {"msgtype": "m.text", "body": "hi"}}]});
    let mut req = Request::put(path).header("content-type", "application/json");
    if let Some(token) = auth {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    req.body(Body::from(body.to_string())).unwrap()
}

async fn send(router: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn a_transaction_with_the_right_bearer_token_is_handled() {
    let (h, router, _dir) = setup().await;
    let (status, body) = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({}));
    assert_eq!(h.events.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_token_is_also_accepted_in_the_query_and_on_the_legacy_path() {
    let (h, router, _dir) = setup().await;
    let (status, _) = send(
        &router,
        txn("/transactions/t1?access_token=hs-secret", None),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.events.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_missing_token_is_401_and_a_wrong_one_403() {
    let (h, router, _dir) = setup().await;
    let (status, body) = send(&router, txn("/_matrix/app/v1/transactions/t1", None)).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("M_UNAUTHORIZED"))
    );
    let (status, body) = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("nope")),
    )
    .await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::FORBIDDEN, Some("M_FORBIDDEN"))
    );
    assert_eq!(h.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn header_and_query_tokens_that_differ_are_refused_even_if_one_is_right() {
    let (h, router, _dir) = setup().await;
    let req = txn(
        "/_matrix/app/v1/transactions/t1?access_token=other",
        Some("hs-secret"),
    );
    let (status, _) = send(&router, req).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_redelivered_transaction_is_acknowledged_without_reprocessing() {
    let (h, router, _dir) = setup().await;
    for _ in 0..3 {
        let (status, _) = send(
            &router,
            txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_processed_transaction_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("t.db").display());
    let first = Arc::new(Counting::default());
    let router = server::app(ServerState::new(
        "hs-secret",
        Store::connect(&url).await.unwrap(),
        first.clone(),
    ));
    send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    )
    .await;
    let second = Arc::new(Counting::default());
    let router = server::app(ServerState::new(
        "hs-secret",
        Store::connect(&url).await.unwrap(),
        second.clone(),
    ));
    let (status, _) = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_concurrent_retry_waits_for_the_delivery_in_flight() {
    let (h, router, _dir) = setup().await;
    let a = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    );
    let b = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    );
    let ((sa, _), (sb, _)) = tokio::join!(a, b);
    assert_eq!((sa, sb), (StatusCode::OK, StatusCode::OK));
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
    assert_eq!(h.events.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_transaction_is_500_and_processed_on_retry() {
    let (h, router, _dir) = setup().await;
    h.fail_next.store(1, Ordering::SeqCst);
    let (status, body) = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["errcode"], "M_UNKNOWN");
    let (status, _) = send(
        &router,
        txn("/_matrix/app/v1/transactions/t1", Some("hs-secret")),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.events.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn user_queries_ask_the_handler() {
    let (_h, router, _dir) = setup().await;
    let get = |uri: &str| {
        Request::get(uri)
            .header("authorization", "Bearer hs-secret")
            .body(Body::empty())
            .unwrap()
    };
    let (status, _) = send(&router, get("/_matrix/app/v1/users/@echo_a:x")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = send(&router, get("/_matrix/app/v1/users/@bob:x")).await;
    assert_eq!(
        (status, body["errcode"].as_str()),
        (StatusCode::NOT_FOUND, Some("M_NOT_FOUND"))
    );
    let (status, _) = send(&router, get("/_matrix/app/v1/rooms/%23nothing:x")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&router, get("/_matrix/app/v1/thirdparty/protocol/echo")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn ping_is_answered_with_an_empty_object() {
    let (_h, router, _dir) = setup().await;
    let req = Request::post("/_matrix/app/v1/ping")
        .header("authorization", "Bearer hs-secret")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"transaction_id":"p1"}"#))
        .unwrap();
    assert_eq!(send(&router, req).await, (StatusCode::OK, json!({})));
}

#[tokio::test]
async fn a_synapse_transaction_with_both_ephemeral_keys_is_accepted() {
    let (h, router, _dir) = setup().await;
    let typing = json!({"type": "m.typing", "room_id": "!r:x", "content": {"user_ids": []}});
    let body = json!({"events": [], "ephemeral": [typing], "de.sorunome.msc2409.ephemeral": [typing],
        "de.sorunome.msc2409.to_device": [], "org.matrix.msc3202.device_lists": {"changed": [], "left": []}});
    let req = Request::put("/_matrix/app/v1/transactions/s1")
        .header("authorization", "Bearer hs-secret")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(send(&router, req).await, (StatusCode::OK, json!({})));
    assert_eq!(h.calls.load(Ordering::SeqCst), 1);
}
