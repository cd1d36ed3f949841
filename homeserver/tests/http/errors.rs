use http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    a_body_that_is_not_json_is_m_not_json,
    json_of_the_wrong_shape_is_m_bad_json,
    unknown_endpoints_and_methods_are_m_unrecognized,
    oversized_bodies_are_m_too_large,
    login_and_registration_are_rate_limited,
    an_empty_body_counts_as_an_empty_object,
);

async fn a_body_that_is_not_json_is_m_not_json(db: Db) {
    let s = TestServer::start(db).await;
    let r = s
        .call_raw(
            Method::POST,
            "/_matrix/client/v3/login",
            None,
            b"{not json".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_NOT_JSON");
    let (_, token, _) = s.register("alice", "pw").await;
    let r = s
        .call_raw(
            Method::PUT,
            "/_matrix/client/v3/devices/X",
            Some(&token),
            b"<xml/>".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_NOT_JSON");
}

async fn json_of_the_wrong_shape_is_m_bad_json(db: Db) {
    let s = TestServer::start(db).await;
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": 42, "password": "x"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let r = s.post("/_matrix/client/v3/refresh", None, json!({})).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
}

async fn unknown_endpoints_and_methods_are_m_unrecognized(db: Db) {
    let s = TestServer::start(db).await;
    let r = s.get("/_matrix/client/v3/no/such/endpoint", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
    let r = s
        .call(Method::DELETE, "/_matrix/client/versions", None, None)
        .await;
    assert_error(&r, StatusCode::METHOD_NOT_ALLOWED, "M_UNRECOGNIZED");
}

async fn oversized_bodies_are_m_too_large(db: Db) {
    let s = TestServer::with_config(db, "max_request_body_size: 10K\n").await;
    let big = json!({"username": "x".repeat(20_000), "password": "pw"});
    let r = s.post("/_matrix/client/v3/register", None, big).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
}

async fn login_and_registration_are_rate_limited(db: Db) {
    let s = TestServer::with_config(
        db,
        "rc_login: {per_second: 0.01, burst_count: 2}\nrc_registration: {per_second: 0.01, burst_count: 1}\n",
    )
    .await;
    s.register("alice", "pw").await;
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "bob", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(r.1["retry_after_ms"].as_u64().unwrap() > 1000, "{}", r.1);

    let login = json!({"type": "m.login.password", "user": "alice", "password": "pw"});
    assert_eq!(
        s.post("/_matrix/client/v3/login", None, login.clone())
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        s.post("/_matrix/client/v3/login", None, login.clone())
            .await
            .0,
        StatusCode::OK
    );
    let r = s.post("/_matrix/client/v3/login", None, login).await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(r.1["retry_after_ms"].is_u64());
}

async fn an_empty_body_counts_as_an_empty_object(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("carol", "pw").await;
    let (status, body) = s
        .call(
            Method::POST,
            "/_matrix/client/v3/logout",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
