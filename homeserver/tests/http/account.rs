use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    changing_the_password_needs_the_old_one_and_logs_out_other_devices,
    deactivation_needs_the_password_and_locks_the_account,
    global_and_room_account_data_round_trip,
    account_data_of_others_is_forbidden,
    third_party_ids_are_an_empty_list,
);

fn password_auth(user: &str, password: &str, session: Option<&str>) -> serde_json::Value {
    json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password, "session": session})
}

async fn changing_the_password_needs_the_old_one_and_logs_out_other_devices(db: Db) {
    let s = TestServer::start(db).await;
    let (_, t1, _) = s.register("alice", "old").await;
    let t2 = s.login("alice", "old").await;

    let (status, challenge) = s
        .post(
            "/_matrix/client/v3/account/password",
            Some(&t1),
            json!({"new_password": "new"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge["flows"],
        json!([{"stages": ["m.login.password"]}])
    );
    let session = challenge["session"].as_str().unwrap();

    let (status, body) = s
        .post(
            "/_matrix/client/v3/account/password",
            Some(&t1),
            json!({"new_password": "new", "auth": password_auth("alice", "wrong", Some(session))}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["errcode"], "M_FORBIDDEN");
    assert_eq!(body["session"], session, "a failed stage keeps the session");

    let (status, body) = s
        .post(
            "/_matrix/client/v3/account/password",
            Some(&t1),
            json!({"new_password": "new", "auth": password_auth("alice", "old", Some(session))}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        s.get("/_matrix/client/v3/account/whoami", Some(&t1))
            .await
            .0,
        StatusCode::OK,
        "this device stays"
    );
    let r = s.get("/_matrix/client/v3/account/whoami", Some(&t2)).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "alice", "password": "old"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    s.login("alice", "new").await;
}

async fn deactivation_needs_the_password_and_locks_the_account(db: Db) {
    let s = TestServer::start(db).await;
    let (user, token, _) = s.register("bob", "pw").await;
    let (status, _) = s
        .post(
            "/_matrix/client/v3/account/deactivate",
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = s
        .post(
            "/_matrix/client/v3/account/deactivate",
            Some(&token),
            json!({"auth": password_auth(&user, "pw", None)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id_server_unbind_result"], "no-support");
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some(&token))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let r = s
        .post(
            "/_matrix/client/v3/login",
            None,
            json!({"type": "m.login.password", "user": "bob", "password": "pw"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_USER_DEACTIVATED");
    let r = s
        .post(
            "/_matrix/client/v3/register",
            None,
            json!({"username": "bob", "password": "x", "auth": {"type": "m.login.dummy"}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_USER_IN_USE");
}

async fn global_and_room_account_data_round_trip(db: Db) {
    let s = TestServer::start(db).await;
    let (user, token, _) = s.register("carol", "pw").await;
    let path = format!("/_matrix/client/v3/user/{user}/account_data/org.example.settings");
    let r = s.get(&path, Some(&token)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(
        s.put(&path, Some(&token), json!({"theme": "dark"})).await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.put(&path, Some(&token), json!({"theme": "light"}))
            .await
            .0,
        StatusCode::OK
    );
    let (status, body) = s.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"theme": "light"}));

    let room_path =
        format!("/_matrix/client/v3/user/{user}/rooms/!room:test.local/account_data/m.tag.extra");
    assert_eq!(
        s.put(&room_path, Some(&token), json!({"x": 1})).await.0,
        StatusCode::OK
    );
    assert_eq!(s.get(&room_path, Some(&token)).await.1, json!({"x": 1}));
    let r = s
        .put(
            &format!("/_matrix/client/v3/user/{user}/account_data/m.fully_read"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn account_data_of_others_is_forbidden(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("dan", "pw").await;
    let (other, _, _) = s.register("erin", "pw").await;
    let r = s
        .put(
            &format!("/_matrix/client/v3/user/{other}/account_data/x.y"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn third_party_ids_are_an_empty_list(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("fay", "pw").await;
    let (status, body) = s.get("/_matrix/client/v3/account/3pid", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"threepids": []}));
}
