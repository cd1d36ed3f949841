use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    login_offers_password_and_accepts_both_identifier_forms,
    a_wrong_password_is_forbidden,
    logout_invalidates_the_token,
    logout_all_ends_every_session,
    missing_and_unknown_tokens_are_told_apart,
    refresh_tokens_rotate_and_expired_tokens_soft_logout,
    the_access_token_query_parameter_is_accepted,
);

async fn login_offers_password_and_accepts_both_identifier_forms(db: Db) {
    let s = TestServer::start(db).await;
    let (status, flows) = s.get("/_matrix/client/v3/login", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        flows["flows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["type"] == "m.login.password")
    );
    s.register("alice", "secret").await;

    let t1 = s.login("alice", "secret").await;
    let t2 = s.login("@alice:test.local", "secret").await;
    let (status, body) = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "alice", "password": "secret"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "bare `user` is accepted: {body}");
    assert_eq!(body["user_id"], "@alice:test.local");
    assert_ne!(t1, t2);
    let (_, devices) = s.get("/_matrix/client/v3/devices", Some(&t1)).await;
    assert_eq!(
        devices["devices"].as_array().unwrap().len(),
        4,
        "registration + three logins"
    );
}

async fn a_wrong_password_is_forbidden(db: Db) {
    let s = TestServer::start(db).await;
    s.register("bob", "right").await;
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "bob", "password": "wrong"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "nobody", "password": "x"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn logout_invalidates_the_token(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, device) = s.register("carol", "pw").await;
    let (status, _) = s
        .post("/_matrix/client/v3/logout", Some(&token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some(&token))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(r.1["soft_logout"], false);
    let other = s.login("carol", "pw").await;
    let (_, devices) = s.get("/_matrix/client/v3/devices", Some(&other)).await;
    assert!(
        !devices.to_string().contains(&device),
        "the logged-out device is gone"
    );
}

async fn logout_all_ends_every_session(db: Db) {
    let s = TestServer::start(db).await;
    let (_, t1, _) = s.register("dave", "pw").await;
    let t2 = s.login("dave", "pw").await;
    let (status, _) = s
        .post("/_matrix/client/v3/logout/all", Some(&t2), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    for t in [&t1, &t2] {
        let r = s.get("/_matrix/client/v3/account/whoami", Some(t)).await;
        assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    }
}

async fn missing_and_unknown_tokens_are_told_apart(db: Db) {
    let s = TestServer::start(db).await;
    let r = s.get("/_matrix/client/v3/account/whoami", None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some("syt_made_up"))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

async fn refresh_tokens_rotate_and_expired_tokens_soft_logout(db: Db) {
    let s = TestServer::with_config(db, "refreshable_access_token_lifetime: 1500ms\n").await;
    s.register("erin", "pw").await;
    let (status, body) = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "erin", "password": "pw", "refresh_token": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in_ms"], 1500);
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.get("/_matrix/client/v3/account/whoami", Some(&access))
            .await
            .0,
        StatusCode::OK
    );

    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some(&access))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    assert_eq!(
        r.1["soft_logout"], true,
        "an expired token is a soft logout"
    );

    let (status, fresh) = s
        .post(
            "/_matrix/client/v3/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_ne!(fresh["refresh_token"], refresh.as_str());
    assert_eq!(
        s.get(
            "/_matrix/client/v3/account/whoami",
            fresh["access_token"].as_str()
        )
        .await
        .0,
        StatusCode::OK
    );
    let r = s
        .post(
            "/_matrix/client/v3/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

async fn the_access_token_query_parameter_is_accepted(db: Db) {
    let s = TestServer::start(db).await;
    let (user, token, _) = s.register("fay", "pw").await;
    let (status, who) = s
        .get(
            &format!("/_matrix/client/v3/account/whoami?access_token={token}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(who["user_id"], user);
}
