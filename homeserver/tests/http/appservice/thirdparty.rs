//! Third-party lookups, proxied to the appservices that declare each protocol.

use std::sync::{Arc, atomic::Ordering};

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    routing::get,
};
use http::StatusCode;
use serde_json::{Value, json};

use super::{AS_TOKEN, Appservice, Seen, registrations};
use crate::support::{Db, TestServer, assert_error};

/// The test appservice's `/_matrix/app/v1/thirdparty/*`: it describes `bridgeproto` (and sleeps
/// on `slowproto`), finds locations and users when a `channel` or `nick` field is given, and maps
/// `#bridge_*` aliases and `@bridge_*` users back. Every lookup is recorded as `path?query`.
pub(super) fn routes() -> Router<Arc<Seen>> {
    Router::new()
        .route(
            "/_matrix/app/v1/thirdparty/protocol/{protocol}",
            get(protocol),
        )
        .route(
            "/_matrix/app/v1/thirdparty/location/{protocol}",
            get(location),
        )
        .route("/_matrix/app/v1/thirdparty/user/{protocol}", get(user))
        .route(
            "/_matrix/app/v1/thirdparty/location",
            get(location_for_alias),
        )
        .route("/_matrix/app/v1/thirdparty/user", get(user_for_id))
}

/// Records the call and checks the `hs_token`; `None` when the caller is not the homeserver.
async fn record(seen: &Seen, headers: &HeaderMap, what: String) -> Option<()> {
    seen.thirdparty.lock().unwrap().push(what);
    let delay = seen.thirdparty_delay.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_secs(delay.into())).await;
    }
    (headers.get("authorization")?.to_str().ok()? == format!("Bearer {}", seen.hs_token()))
        .then_some(())
}

fn network(seen: &Seen) -> &'static str {
    if seen.hs_token() == super::HS_TOKEN {
        "bridgenet"
    } else {
        "secondnet"
    }
}

async fn protocol(
    State(seen): State<Arc<Seen>>,
    Path(protocol): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if record(&seen, &headers, format!("protocol/{protocol}"))
        .await
        .is_none()
    {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"errcode": "M_FORBIDDEN"})),
        );
    }
    if protocol != "bridgeproto" && protocol != "slowproto" {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"errcode": "M_NOT_FOUND"})),
        );
    }
    let net = network(&seen);
    (
        StatusCode::OK,
        Json(json!({
            "user_fields": ["nick"],
            "location_fields": ["channel"],
            "icon": format!("mxc://test.local/{net}"),
            "field_types": {"nick": {"regexp": ".*", "placeholder": "nick"},
                            "channel": {"regexp": "#.*", "placeholder": "#chan"}},
            "instances": [{"network_id": net, "desc": net, "fields": {}}],
        })),
    )
}

fn query_map(query: &Option<String>) -> serde_json::Map<String, Value> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), json!(v)))
        .collect()
}

async fn location(
    State(seen): State<Arc<Seen>>,
    Path(protocol): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Json<Value> {
    let what = format!("location/{protocol}?{}", query.clone().unwrap_or_default());
    record(&seen, &headers, what).await.unwrap();
    let fields = query_map(&query);
    match fields.get("channel").and_then(Value::as_str) {
        Some(chan) => Json(json!([{
            "alias": format!("#bridge_{}:test.local", chan.trim_start_matches('#')),
            "protocol": protocol,
            "fields": fields,
        }])),
        None => Json(json!([])),
    }
}

async fn user(
    State(seen): State<Arc<Seen>>,
    Path(protocol): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Json<Value> {
    let what = format!("user/{protocol}?{}", query.clone().unwrap_or_default());
    record(&seen, &headers, what).await.unwrap();
    let fields = query_map(&query);
    match fields.get("nick").and_then(Value::as_str) {
        Some(nick) => Json(json!([{
            "userid": format!("@bridge_{nick}:test.local"),
            "protocol": protocol,
            "fields": fields,
        }])),
        None => Json(json!([])),
    }
}

async fn location_for_alias(
    State(seen): State<Arc<Seen>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Json<Value> {
    let what = format!("location?{}", query.clone().unwrap_or_default());
    record(&seen, &headers, what).await.unwrap();
    let alias = query_map(&query)["alias"].as_str().unwrap().to_owned();
    match alias
        .strip_prefix("#bridge_")
        .and_then(|a| a.strip_suffix(":test.local"))
    {
        Some(chan) => Json(json!([{
            "alias": alias,
            "protocol": "bridgeproto",
            "fields": {"channel": format!("#{chan}")},
        }])),
        None => Json(json!([])),
    }
}

async fn user_for_id(
    State(seen): State<Arc<Seen>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Json<Value> {
    let what = format!("user?{}", query.clone().unwrap_or_default());
    record(&seen, &headers, what).await.unwrap();
    let userid = query_map(&query)["userid"].as_str().unwrap().to_owned();
    match userid
        .strip_prefix("@bridge_")
        .and_then(|a| a.strip_suffix(":test.local"))
    {
        Some(nick) => Json(json!([{
            "userid": userid,
            "protocol": "bridgeproto",
            "fields": {"nick": nick},
        }])),
        None => Json(json!([])),
    }
}

/// The test appservice bridging `bridgeproto` and `slowproto`, and a second appservice, `second`,
/// that also bridges `bridgeproto` plus `deadproto`, which it cannot describe.
struct Setup {
    server: TestServer,
    bridge: Appservice,
    second: Appservice,
    _dir: tempfile::TempDir,
}

async fn setup(db: Db) -> Setup {
    let bridge = Appservice::start().await;
    let second = Appservice::start().await;
    let _ = second.seen.hs_token.set("hs-second".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let files = registrations(
        dir.path(),
        &bridge.url,
        "protocols: [bridgeproto, slowproto]\n",
    );
    let second_file = dir.path().join("second.yaml");
    std::fs::write(
        &second_file,
        format!(
            "id: second\nurl: {}\nas_token: as-second\nhs_token: hs-second\nsender_localpart: secondbot\n\
             protocols: [bridgeproto, deadproto]\n",
            second.url
        ),
    )
    .unwrap();
    let files = files.replace("]\n", &format!(", \"{}\"]\n", second_file.display()));
    let server = TestServer::with_config(db, &files).await;
    Setup {
        server,
        bridge,
        second,
        _dir: dir,
    }
}

async fn protocols_merge_the_instances_of_every_appservice_that_declares_them(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let r = s
        .get("/_matrix/client/v3/thirdparty/protocols", Some(&alice))
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let protocols = r.1.as_object().unwrap();
    // `deadproto` is declared, but nobody could describe it.
    let mut names: Vec<&String> = protocols.keys().collect();
    names.sort();
    assert_eq!(names, ["bridgeproto", "slowproto"], "{}", r.1);
    let proto = &r.1["bridgeproto"];
    assert_eq!(proto["user_fields"], json!(["nick"]));
    assert_eq!(
        proto["icon"], "mxc://test.local/bridgenet",
        "the first appservice's metadata"
    );
    let instances: Vec<(&str, &str)> = proto["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["network_id"].as_str().unwrap(),
                i["instance_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        instances,
        [
            ("bridgenet", "bridge|bridgenet"),
            ("secondnet", "second|secondnet")
        ]
    );
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/protocol/bridgeproto",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["instances"].as_array().unwrap().len(), 2);
    for name in ["deadproto", "nosuchproto"] {
        let r = s
            .get(
                &format!("/_matrix/client/v3/thirdparty/protocol/{name}"),
                Some(&alice),
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    // Clients must authenticate.
    let r = s.get("/_matrix/client/v3/thirdparty/protocols", None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

async fn lookups_are_proxied_with_their_fields_and_nothing_found_is_not_found(db: Db) {
    let Setup {
        server: s,
        bridge,
        second,
        ..
    } = setup(db).await;
    let (_, alice, _) = s.register("alice", "password-alice").await;
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/location/bridgeproto?channel=%23matrix",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    // Both appservices declare the protocol and both answer.
    let aliases: Vec<&str> =
        r.1.as_array()
            .unwrap()
            .iter()
            .map(|l| l["alias"].as_str().unwrap())
            .collect();
    assert_eq!(
        aliases,
        ["#bridge_matrix:test.local", "#bridge_matrix:test.local"]
    );
    assert_eq!(r.1[0]["fields"]["channel"], "#matrix");
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/user/bridgeproto?nick=bob",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1[0]["userid"], "@bridge_bob:test.local");
    // No results: the spec's 404.
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/location/bridgeproto?other=x",
            Some(&alice),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Nobody bridges it: nobody is asked.
    let before = bridge.seen.thirdparty.lock().unwrap().len();
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/user/nosuchproto?nick=bob",
            Some(&alice),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(bridge.seen.thirdparty.lock().unwrap().len(), before);
    // Reverse lookups.
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/location?alias=%23bridge_matrix:test.local",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1[0]["fields"]["channel"], "#matrix");
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/user?userid=@bridge_bob:test.local",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1[0]["fields"]["nick"], "bob");
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/user?userid=@alice:test.local",
            Some(&alice),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // The homeserver's own query parameters are not passed on as fields, even when an
    // appservice masquerades.
    s.get(
        "/_matrix/client/v3/thirdparty/user/bridgeproto?nick=carol&user_id=@bridgebot:test.local",
        Some(AS_TOKEN),
    )
    .await;
    let asked = bridge.seen.thirdparty.lock().unwrap().clone();
    assert!(
        asked.contains(&"location/bridgeproto?channel=%23matrix".to_owned()),
        "{asked:?}"
    );
    assert!(
        asked.contains(&"user/bridgeproto?nick=carol".to_owned()),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .all(|a| !a.contains("access_token") && !a.contains("user_id")),
        "{asked:?}"
    );
    assert!(!second.seen.thirdparty.lock().unwrap().is_empty());
}

async fn a_slow_appservice_is_left_out_after_the_timeout(db: Db) {
    let Setup {
        server: s, second, ..
    } = setup(db).await;
    let (_, alice, _) = s.register("alice", "password-alice").await;
    second.seen.thirdparty_delay.store(8, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/location/bridgeproto?channel=%23matrix",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(
        r.1.as_array().unwrap().len(),
        1,
        "only the prompt answer: {}",
        r.1
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(8));
    let r = s
        .get(
            "/_matrix/client/v3/thirdparty/protocol/bridgeproto",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["instances"].as_array().unwrap().len(), 1, "{}", r.1);
}

on_both_backends!(
    protocols_merge_the_instances_of_every_appservice_that_declares_them,
    lookups_are_proxied_with_their_fields_and_nothing_found_is_not_found,
    a_slow_appservice_is_left_out_after_the_timeout,
);
