//! Helpers for the fake-bot-api HTTP tests: the router, calls, injected updates, multipart bodies.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use axum::Router;
pub use axum::body::Body;
pub use axum::http::{Request, StatusCode, header};
pub use http_body_util::BodyExt;
pub use serde_json::{Value, json};
pub use telegram_bridge::fake_bot_api::{FakeBotApi, FakeConfig, app};
pub use tower::ServiceExt;

pub const BOT: &str = "/bot123456:TEST-token_x";
pub const GROUP: i64 = -100_200;

pub fn fake() -> Router {
    app(FakeBotApi::new(FakeConfig::default()))
}

pub async fn send(router: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, body)
}

pub async fn post(router: &Router, path: &str, body: Value) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    send(router, request).await
}

pub async fn get(router: &Router, path: &str) -> (StatusCode, Value) {
    send(router, Request::get(path).body(Body::empty()).unwrap()).await
}

/// Calls a method with a JSON body and returns its `result`, asserting success.
pub async fn call(router: &Router, method: &str, params: Value) -> Value {
    let (status, body) = post(router, &format!("{BOT}/{method}"), params).await;
    assert_eq!(status, StatusCode::OK, "{method}: {body}");
    assert_eq!(body["ok"], true);
    body["result"].clone()
}

/// Calls a method that must fail; returns (error_code, description).
pub async fn call_err(router: &Router, method: &str, params: Value) -> (u64, String) {
    let (status, body) = post(router, &format!("{BOT}/{method}"), params).await;
    assert_eq!(body["ok"], false, "{method}: {body}");
    let code = body["error_code"].as_u64().unwrap();
    assert_eq!(u64::from(status.as_u16()), code);
    (code, body["description"].as_str().unwrap().to_owned())
}

pub fn user(id: i64, name: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": name})
}

/// Injects a group text message from user 7 and returns its message id.
pub async fn user_says(router: &Router, text: &str) -> i64 {
    let update = json!({"message": {"chat": {"id": GROUP, "type": "supergroup", "title": "Group"},
                                    "from": user(7, "Ann"), "text": text}});
    let (status, body) = post(router, "/_fake/updates", update).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["message_id"].as_i64().unwrap()
}

pub async fn sent(router: &Router, chat_id: i64) -> Vec<Value> {
    let (_, body) = get(router, &format!("/_fake/sent?chat_id={chat_id}")).await;
    body.as_array().unwrap().clone()
}

pub fn multipart(fields: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XyZzYboundary";
    let mut body = Vec::new();
    for (name, file_name, content) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file_name {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

pub async fn post_multipart(
    router: &Router,
    path: &str,
    fields: &[(&str, Option<&str>, &[u8])],
) -> (StatusCode, Value) {
    let (content_type, body) = multipart(fields);
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .unwrap();
    send(router, request).await
}
