use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    registration_runs_the_dummy_flow_and_logs_in,
    registering_a_taken_name_is_m_user_in_use,
    bad_usernames_are_m_invalid_username,
    registration_can_skip_login_and_pick_a_device,
    disabled_registration_is_forbidden,
    guests_register_only_when_allowed,
    registration_without_password_is_m_missing_param,
    register_available_answers_for_free_and_taken_names,
);

async fn registration_runs_the_dummy_flow_and_logs_in(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "Alice", "password": "pw"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["flows"], json!([{"stages": ["m.login.dummy"]}]));
    let session = body["session"].as_str().unwrap().to_owned();

    let (status, body) = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "Alice", "password": "pw", "auth": {"type": "m.login.dummy", "session": session}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["user_id"], "@alice:test.local",
        "usernames are lower-cased"
    );
    let token = body["access_token"].as_str().unwrap();
    let (status, who) = s
        .get("/_matrix/client/v3/account/whoami", Some(token))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["user_id"], "@alice:test.local");
    assert_eq!(who["device_id"], body["device_id"]);
    assert_ne!(who["is_guest"], true, "absent means false");
}

async fn registering_a_taken_name_is_m_user_in_use(db: Db) {
    let s = TestServer::start(db).await;
    s.register("bob", "pw").await;
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "bob", "password": "x", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
}

async fn bad_usernames_are_m_invalid_username(db: Db) {
    let s = TestServer::start(db).await;
    for name in ["with space", "_reserved", "emoji😀", &"x".repeat(300)] {
        let r = s
            .post(
                "/_matrix/client/v3/register",
                None,
                json!({"username": name, "password": "x", "auth": {"type": "m.login.dummy"}}),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    }
}

async fn registration_can_skip_login_and_pick_a_device(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "carol", "password": "pw", "inhibit_login": true, "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["user_id"], "@carol:test.local");
    assert!(body.get("access_token").is_none(), "{body}");

    let (status, body) = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "dave", "password": "pw", "device_id": "MYDEVICE",
                   "initial_device_display_name": "Phone", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["device_id"], "MYDEVICE");
    let (_, device) = s
        .get(
            "/_matrix/client/v3/devices/MYDEVICE",
            body["access_token"].as_str(),
        )
        .await;
    assert_eq!(device["display_name"], "Phone");
}

async fn disabled_registration_is_forbidden(db: Db) {
    let s = TestServer::with_config(db, "enable_registration: false\n").await;
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "eve", "password": "pw", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn guests_register_only_when_allowed(db: Db) {
    let s = TestServer::start(db).await;
    let r = s
        .post("/_matrix/client/v3/register?kind=guest", None, json!({}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_GUEST_ACCESS_FORBIDDEN");

    let s =
        TestServer::with_config(db, "allow_guest_access: true\nenable_registration: false\n").await;
    let (status, body) = s
        .post("/_matrix/client/v3/register?kind=guest", None, json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, who) = s
        .get(
            "/_matrix/client/v3/account/whoami",
            body["access_token"].as_str(),
        )
        .await;
    assert_eq!(who["is_guest"], true);
    assert_eq!(who["user_id"], body["user_id"]);
}

async fn registration_without_password_is_m_missing_param(db: Db) {
    let s = TestServer::start(db).await;
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "frank", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
}

async fn register_available_answers_for_free_and_taken_names(db: Db) {
    let s = TestServer::start(db).await;
    s.register("gina", "pw").await;
    let (status, body) = s
        .get("/_matrix/client/v3/register/available?username=henry", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["available"], true);
    let r = s
        .get("/_matrix/client/v3/register/available?username=gina", None)
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
    let r = s
        .get(
            "/_matrix/client/v3/register/available?username=Bad%20Name",
            None,
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_INVALID_USERNAME");
    let r = s.get("/_matrix/client/v3/register/available", None).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_MISSING_PARAM");
}
