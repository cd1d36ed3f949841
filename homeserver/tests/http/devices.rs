use http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    devices_are_listed_renamed_and_deleted_with_uia,
    deleting_many_devices_needs_uia,
    a_device_is_seen_when_it_makes_requests,
);

async fn a_device_is_seen_when_it_makes_requests(db: Db) {
    let s = TestServer::start(db).await;
    let (user, token, device) = s.register("alice", "pw").await;
    s.services
        .store
        .set_device_seen(&user, &device, 1, "203.0.113.9")
        .await
        .unwrap();
    // A restarted server has not seen the device yet: its first request is recorded.
    let s = s.restart().await;
    let (status, _) = s
        .get("/_matrix/client/v3/account/whoami", Some(&token))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut seen = None;
    for _ in 0..100 {
        let (_, d) = s
            .get(
                &format!("/_matrix/client/v3/devices/{device}"),
                Some(&token),
            )
            .await;
        if d["last_seen_ts"].as_i64().unwrap_or(0) > 1 {
            seen = Some(d);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let d = seen.expect("last_seen_ts moved past the old value");
    assert_ne!(d["last_seen_ip"], "203.0.113.9", "{d}");
}

async fn devices_are_listed_renamed_and_deleted_with_uia(db: Db) {
    let s = TestServer::start(db).await;
    let (user, token, mine) = s.register("alice", "pw").await;
    let other_token = s.login("alice", "pw").await;
    let (_, who) = s
        .get("/_matrix/client/v3/account/whoami", Some(&other_token))
        .await;
    let other = who["device_id"].as_str().unwrap().to_owned();

    let (status, list) = s.get("/_matrix/client/v3/devices", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&mine.as_str()) && ids.contains(&other.as_str()));

    let path = format!("/_matrix/client/v3/devices/{other}");
    assert_eq!(
        s.put(&path, Some(&token), json!({"display_name": "Laptop"}))
            .await
            .0,
        StatusCode::OK
    );
    let (status, device) = s.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(device["display_name"], "Laptop");
    assert!(device["last_seen_ts"].is_u64());

    let r = s
        .get("/_matrix/client/v3/devices/NOSUCHDEVICE", Some(&token))
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let r = s
        .put(
            "/_matrix/client/v3/devices/NOSUCHDEVICE",
            Some(&token),
            json!({"display_name": "x"}),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let (status, challenge) = s.call(Method::DELETE, &path, Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    let auth = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user},
                      "password": "pw", "session": challenge["session"]});
    let (status, body) = s
        .call(
            Method::DELETE,
            &path,
            Some(&token),
            Some(json!({"auth": auth})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = s
        .get("/_matrix/client/v3/account/whoami", Some(&other_token))
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let r = s.get(&path, Some(&token)).await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn deleting_many_devices_needs_uia(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("bob", "pw").await;
    let mut others = Vec::new();
    for _ in 0..3 {
        let t = s.login("bob", "pw").await;
        let (_, who) = s.get("/_matrix/client/v3/account/whoami", Some(&t)).await;
        others.push(who["device_id"].as_str().unwrap().to_owned());
    }
    let (status, _) = s
        .post(
            "/_matrix/client/v3/delete_devices",
            Some(&token),
            json!({"devices": others}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let auth = json!({"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "bob"}, "password": "pw"});
    let (status, body) = s
        .post(
            "/_matrix/client/v3/delete_devices",
            Some(&token),
            json!({"devices": others, "auth": auth}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list) = s.get("/_matrix/client/v3/devices", Some(&token)).await;
    assert_eq!(list["devices"].as_array().unwrap().len(), 1);
}
