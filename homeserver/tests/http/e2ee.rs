//! End-to-end encryption: keys upload, query, claim and changes, cross-signing keys and
//! signatures, to-device messages, and what `/sync` says about them.

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use http::StatusCode;
use ruma::{
    CanonicalJsonValue,
    signatures::{Ed25519KeyPair, sign_json},
};
use serde_json::{Value, json};

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    uploaded_device_keys_are_returned_by_query,
    claiming_takes_one_key_at_a_time_then_the_fallback,
    concurrent_claims_never_get_the_same_key,
    one_time_key_counts_and_fallback_types_reach_sync,
    bad_key_uploads_are_refused_with_their_errcodes,
    to_device_messages_arrive_in_order_once_per_transaction,
    syncing_past_to_device_messages_acknowledges_them,
    a_long_poll_wakes_for_a_to_device_message,
    a_sync_holds_back_to_device_messages_past_a_hundred,
    deleting_a_device_drops_its_pending_messages,
    a_deleted_devices_keys_go_and_room_members_are_told,
    device_lists_report_a_members_new_keys_and_wake_a_long_poll,
    device_lists_report_new_and_departed_room_members,
    cross_signing_keys_need_uia_once_set_and_are_queried,
    uploaded_signatures_are_merged_into_queried_keys,
);

fn device_keys(user: &str, device: &str, curve: &str) -> Value {
    json!({
        "user_id": user,
        "device_id": device,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            format!("curve25519:{device}"): curve,
            format!("ed25519:{device}"): format!("ed-{curve}"),
        },
        "signatures": {user: {format!("ed25519:{device}"): "c2lnbmF0dXJl"}},
    })
}

fn signed_key(user: &str, key: &str) -> Value {
    json!({"key": key, "signatures": {user: {"ed25519:DEV": "c2ln"}}})
}

async fn upload(s: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
    s.post("/_matrix/client/v3/keys/upload", Some(token), body)
        .await
}

async fn claim(s: &TestServer, token: &str, user: &str, device: &str) -> Value {
    let (status, body) = s
        .post(
            "/_matrix/client/v3/keys/claim",
            Some(token),
            json!({"one_time_keys": {user: {device: "signed_curve25519"}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn next_batch(s: &TestServer, token: &str, since: Option<&str>) -> String {
    s.sync(token, since, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn send_to_device(s: &TestServer, token: &str, txn: &str, messages: Value) {
    let (status, body) = s
        .put(
            &format!("/_matrix/client/v3/sendToDevice/m.test/{txn}"),
            Some(token),
            json!({ "messages": messages }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn to_device_bodies(sync: &Value) -> Vec<String> {
    sync["to_device"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["content"]["body"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn changed(sync: &Value) -> Vec<&str> {
    sync["device_lists"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect()
}

async fn uploaded_device_keys_are_returned_by_query(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let keys = device_keys(&alice, &device, "curve-a");
    let (status, body) = upload(&s, &token, json!({"device_keys": keys})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 0);

    let (status, q) = s
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob_token),
            json!({"device_keys": {alice.clone(): []}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{q}");
    assert_eq!(q["device_keys"][&alice][&device], keys);
    assert_eq!(q["failures"], json!({}));

    // Asking for one unknown device of a user gets nothing for them.
    let (_, q) = s
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob_token),
            json!({"device_keys": {alice.clone(): ["NOSUCH"]}}),
        )
        .await;
    assert_eq!(q["device_keys"][&alice], json!({}));
}

async fn claiming_takes_one_key_at_a_time_then_the_fallback(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let (status, body) = upload(
        &s,
        &token,
        json!({
            "one_time_keys": {
                "signed_curve25519:AAAAAA": signed_key(&alice, "one"),
                "signed_curve25519:AAAAAB": signed_key(&alice, "two"),
            },
            "fallback_keys": {
                "signed_curve25519:AAAAAF": signed_key(&alice, "fallback"),
            },
        }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 2);

    let mut got = Vec::new();
    for _ in 0..4 {
        let c = claim(&s, &bob_token, &alice, &device).await;
        let keys = c["one_time_keys"][&alice][&device].as_object().unwrap();
        assert_eq!(keys.len(), 1, "{c}");
        let (id, key) = keys.iter().next().unwrap();
        got.push((id.clone(), key["key"].as_str().unwrap().to_owned()));
    }
    let keys: Vec<&str> = got.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(keys, ["one", "two", "fallback", "fallback"]);
    assert_eq!(got[2].0, "signed_curve25519:AAAAAF");
    let (_, body) = upload(&s, &token, json!({})).await;
    assert_eq!(body["one_time_key_counts"]["signed_curve25519"], 0);

    // A device with no keys at all is left out.
    let (bob, _, bob_device) = s.register("carol", "pw").await;
    let c = claim(&s, &bob_token, &bob, &bob_device).await;
    assert_eq!(c["one_time_keys"], json!({}), "{c}");
}

async fn concurrent_claims_never_get_the_same_key(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let keys: serde_json::Map<String, Value> = (0..5)
        .map(|i| {
            (
                format!("signed_curve25519:K{i}"),
                signed_key(&alice, &format!("k{i}")),
            )
        })
        .collect();
    upload(&s, &token, json!({ "one_time_keys": keys })).await;
    let claims =
        futures::future::join_all((0..10).map(|_| claim(&s, &bob_token, &alice, &device))).await;
    let mut got: Vec<String> = claims
        .iter()
        .filter_map(|c| c["one_time_keys"][&alice][&device].as_object())
        .flat_map(|keys| keys.keys().cloned())
        .collect();
    got.sort();
    assert_eq!(
        got,
        (0..5)
            .map(|i| format!("signed_curve25519:K{i}"))
            .collect::<Vec<_>>()
    );
}

async fn one_time_key_counts_and_fallback_types_reach_sync(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let sync = s.sync(&token, None, 0).await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));
    upload(
        &s,
        &token,
        json!({
            "one_time_keys": {"signed_curve25519:A1": signed_key(&alice, "k1")},
            "fallback_keys": {"signed_curve25519:F1": signed_key(&alice, "f1")},
        }),
    )
    .await;
    let sync = s.sync(&token, None, 0).await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 1);
    assert_eq!(
        sync["device_unused_fallback_key_types"],
        json!(["signed_curve25519"])
    );
    claim(&s, &bob_token, &alice, &device).await;
    claim(&s, &bob_token, &alice, &device).await;
    let sync = s.sync(&token, None, 0).await;
    assert_eq!(sync["device_one_time_keys_count"]["signed_curve25519"], 0);
    assert_eq!(sync["device_unused_fallback_key_types"], json!([]));
}

async fn bad_key_uploads_are_refused_with_their_errcodes(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (bob, _, _) = s.register("bob", "pw").await;
    let other_user = upload(
        &s,
        &token,
        json!({"device_keys": device_keys(&bob, &device, "x")}),
    )
    .await;
    assert_error(&other_user, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let other_device = upload(
        &s,
        &token,
        json!({"device_keys": device_keys(&alice, "ELSE", "x")}),
    )
    .await;
    assert_error(&other_device, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let not_keys = upload(&s, &token, json!({"device_keys": {"user_id": alice}})).await;
    assert_error(&not_keys, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let bad_token = s
        .get(
            "/_matrix/client/v3/keys/changes?from=nonsense&to=s1_0",
            Some(&token),
        )
        .await;
    assert_error(&bad_token, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let bad_content = s
        .put(
            "/_matrix/client/v3/sendToDevice/m.test/t1",
            Some(&token),
            json!({"messages": {bob: {"*": "not an object"}}}),
        )
        .await;
    assert_error(&bad_content, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    // Nothing was stored by the refused uploads.
    let (_, q) = s
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&token),
            json!({"device_keys": {alice.clone(): []}}),
        )
        .await;
    assert_eq!(q["device_keys"][&alice], json!({}));
}

async fn to_device_messages_arrive_in_order_once_per_transaction(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, bob_device) = s.register("bob", "pw").await;
    let second_token = s.login("bob", "pw").await;
    let since = next_batch(&s, &bob_token, None).await;
    let second_since = next_batch(&s, &second_token, None).await;

    send_to_device(
        &s,
        &token,
        "t1",
        json!({&bob: {&bob_device: {"body": "one"}}}),
    )
    .await;
    send_to_device(
        &s,
        &token,
        "t1",
        json!({&bob: {&bob_device: {"body": "one"}}}),
    )
    .await;
    send_to_device(&s, &token, "t2", json!({&bob: {"*": {"body": "two"}}})).await;
    // A device that does not exist gets nothing, and nothing waits for it.
    send_to_device(
        &s,
        &token,
        "t3",
        json!({&bob: {"NOSUCH": {"body": "lost"}}}),
    )
    .await;
    let waiting = s
        .services
        .store
        .to_device_messages(&bob, "NOSUCH", 0, i64::MAX, 10)
        .await
        .unwrap();
    assert!(waiting.is_empty(), "{waiting:?}");

    let sync = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(to_device_bodies(&sync), ["one", "two"], "{sync}");
    let event = &sync["to_device"]["events"][0];
    assert_eq!(event["sender"], alice.as_str());
    assert_eq!(event["type"], "m.test");
    // `*` reached bob's other device too, and only the message meant for all.
    let other = s.sync(&second_token, Some(&second_since), 0).await;
    assert_eq!(to_device_bodies(&other), ["two"], "{other}");
}

async fn syncing_past_to_device_messages_acknowledges_them(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, bob_device) = s.register("bob", "pw").await;
    let since = next_batch(&s, &bob_token, None).await;
    send_to_device(
        &s,
        &token,
        "t1",
        json!({&bob: {&bob_device: {"body": "hi"}}}),
    )
    .await;

    // Repeating the same `since` (a lost response) delivers the message again.
    let first = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(to_device_bodies(&first), ["hi"]);
    let repeat = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(to_device_bodies(&repeat), ["hi"]);
    // Syncing from the response's next_batch acknowledges it: gone, even from an initial sync.
    let next = first["next_batch"].as_str().unwrap();
    let after = s.sync(&bob_token, Some(next), 0).await;
    assert!(to_device_bodies(&after).is_empty(), "{after}");
    let initial = s.sync(&bob_token, None, 0).await;
    assert!(to_device_bodies(&initial).is_empty(), "{initial}");
}

async fn a_long_poll_wakes_for_a_to_device_message(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, bob_device) = s.register("bob", "pw").await;
    let since = next_batch(&s, &bob_token, None).await;
    let started = Instant::now();
    let (sync, _) = tokio::join!(s.sync(&bob_token, Some(&since), 20_000), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send_to_device(
            &s,
            &token,
            "t1",
            json!({&bob: {&bob_device: {"body": "wake"}}}),
        )
        .await
    });
    assert_eq!(to_device_bodies(&sync), ["wake"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woke after {:?}",
        started.elapsed()
    );
}

async fn a_sync_holds_back_to_device_messages_past_a_hundred(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, bob_device) = s.register("bob", "pw").await;
    let since = next_batch(&s, &bob_token, None).await;
    for i in 0..150 {
        let body = json!({&bob: {&bob_device: {"body": format!("m{i}")}}});
        send_to_device(&s, &token, &format!("t{i}"), body).await;
    }
    let first = s.sync(&bob_token, Some(&since), 0).await;
    let bodies = to_device_bodies(&first);
    assert_eq!(bodies.len(), 100);
    assert_eq!((bodies[0].as_str(), bodies[99].as_str()), ("m0", "m99"));
    // The rest comes at once, even from a long-poll, and then nothing more.
    let started = Instant::now();
    let second = s
        .sync(&bob_token, first["next_batch"].as_str(), 10_000)
        .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    let bodies = to_device_bodies(&second);
    assert_eq!(bodies.len(), 50);
    assert_eq!((bodies[0].as_str(), bodies[49].as_str()), ("m100", "m149"));
    let third = s.sync(&bob_token, second["next_batch"].as_str(), 0).await;
    assert!(to_device_bodies(&third).is_empty(), "{third}");
}

async fn deleting_a_device_drops_its_pending_messages(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, bob_device) = s.register("bob", "pw").await;
    send_to_device(
        &s,
        &token,
        "t1",
        json!({&bob: {&bob_device: {"body": "lost"}}}),
    )
    .await;
    let (status, _) = s
        .post("/_matrix/client/v3/logout", Some(&bob_token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let pending = s
        .services
        .store
        .to_device_messages(&bob, &bob_device, 0, i64::MAX, 10)
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

async fn a_deleted_devices_keys_go_and_room_members_are_told(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, bob_device) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    upload(
        &s,
        &bob_token,
        json!({"device_keys": device_keys(&bob, &bob_device, "curve-b")}),
    )
    .await;
    let since = next_batch(&s, &token, None).await;
    let (status, _) = s
        .post("/_matrix/client/v3/logout", Some(&bob_token), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = s.sync(&token, Some(&since), 0).await;
    assert_eq!(changed(&sync), [bob.as_str()], "{sync}");
    let (_, q) = s
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&token),
            json!({"device_keys": {bob.clone(): []}}),
        )
        .await;
    assert_eq!(q["device_keys"][&bob], json!({}), "{q}");
}

async fn device_lists_report_a_members_new_keys_and_wake_a_long_poll(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let (_, carol_token, _) = s.register("carol", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let since = next_batch(&s, &bob_token, None).await;
    let carol_since = next_batch(&s, &carol_token, None).await;

    let started = Instant::now();
    let (sync, _) = tokio::join!(s.sync(&bob_token, Some(&since), 20_000), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let keys = device_keys(&alice, &device, "curve-a");
        upload(&s, &token, json!({"device_keys": keys})).await
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woke after {:?}",
        started.elapsed()
    );
    assert_eq!(changed(&sync), [alice.as_str()], "{sync}");
    let next = sync["next_batch"].as_str().unwrap();
    let (status, c) = s
        .get(
            &format!("/_matrix/client/v3/keys/changes?from={since}&to={next}"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["changed"], json!([alice]));
    // Carol shares no room with alice: she is not told.
    let carol = s.sync(&carol_token, Some(&carol_since), 0).await;
    assert!(changed(&carol).is_empty(), "{carol}");
    // Uploading the same keys again is no change.
    upload(
        &s,
        &token,
        json!({"device_keys": device_keys(&alice, &device, "curve-a")}),
    )
    .await;
    let again = s.sync(&bob_token, Some(next), 0).await;
    assert!(changed(&again).is_empty(), "{again}");
}

async fn device_lists_report_new_and_departed_room_members(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    let since = next_batch(&s, &token, None).await;
    s.join(&bob_token, &room).await;
    let sync = s.sync(&token, Some(&since), 0).await;
    assert_eq!(changed(&sync), [bob.as_str()], "{sync}");
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    let bob_since = next_batch(&s, &bob_token, None).await;

    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = s.sync(&token, Some(&since), 0).await;
    assert_eq!(sync["device_lists"]["left"], json!([bob]), "{sync}");
    let bob_sync = s.sync(&bob_token, Some(&bob_since), 0).await;
    assert_eq!(
        bob_sync["device_lists"]["left"],
        json!([alice]),
        "{bob_sync}"
    );
}

/// An ed25519 key a test signs with, named by its public key as cross-signing keys are.
struct SigningKey {
    pair: Ed25519KeyPair,
    public: String,
}

impl SigningKey {
    fn new() -> Self {
        let der = Ed25519KeyPair::generate();
        let unnamed = Ed25519KeyPair::from_der(&der, String::new()).unwrap();
        let public = STANDARD_NO_PAD.encode(unnamed.public_key());
        let pair = Ed25519KeyPair::from_der(&der, public.clone()).unwrap();
        Self { pair, public }
    }

    fn key_id(&self) -> String {
        format!("ed25519:{}", self.public)
    }

    /// This key as a cross-signing key of `user` with `usage`.
    fn cross_signing(&self, user: &str, usage: &str) -> Value {
        json!({"user_id": user, "usage": [usage], "keys": {self.key_id(): self.public}})
    }

    /// `value` with this key's signature (as `user`) added.
    fn sign(&self, user: &str, value: &Value) -> Value {
        let CanonicalJsonValue::Object(mut object) =
            CanonicalJsonValue::try_from(value.clone()).unwrap()
        else {
            panic!("not an object: {value}")
        };
        sign_json(user, &self.pair, &mut object).unwrap();
        serde_json::to_value(object).unwrap()
    }
}

async fn cross_signing_keys_need_uia_once_set_and_are_queried(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let path = "/_matrix/client/v3/keys/device_signing/upload";
    let (master, self_signing, user_signing) =
        (SigningKey::new(), SigningKey::new(), SigningKey::new());
    let first = json!({
        "master_key": master.cross_signing(&alice, "master"),
        "self_signing_key": master.sign(&alice, &self_signing.cross_signing(&alice, "self_signing")),
        "user_signing_key": master.sign(&alice, &user_signing.cross_signing(&alice, "user_signing")),
    });
    // No master key yet: no user-interactive auth.
    let (status, body) = s.post(path, Some(&token), first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The same keys again: none needed either, and it is no change of alice's keys.
    let since = next_batch(&s, &token, None).await;
    let (status, body) = s.post(path, Some(&token), first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync = s.sync(&token, Some(&since), 0).await;
    assert!(changed(&sync).is_empty(), "{sync}");
    // New keys: a password is asked for, then accepted.
    let master2 = SigningKey::new();
    let new = json!({"master_key": master2.cross_signing(&alice, "master")});
    let (status, challenge) = s.post(path, Some(&token), new.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
    let session = challenge["session"].as_str().unwrap();
    let mut with_auth = new;
    with_auth["auth"] = json!({
        "type": "m.login.password", "session": session,
        "identifier": {"type": "m.id.user", "user": "alice"}, "password": "pw",
    });
    let (status, body) = s.post(path, Some(&token), with_auth).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let wrong_usage = json!({"master_key": master.cross_signing(&bob, "self_signing")});
    let refused = s.post(path, Some(&bob_token), wrong_usage).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let not_mine = json!({"master_key": master.cross_signing(&alice, "master")});
    let refused = s.post(path, Some(&bob_token), not_mine).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    let bob_master = SigningKey::new();
    let unsigned = json!({
        "master_key": bob_master.cross_signing(&bob, "master"),
        "self_signing_key": SigningKey::new().cross_signing(&bob, "self_signing"),
    });
    let refused = s.post(path, Some(&bob_token), unsigned).await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "M_INVALID_PARAM");

    let query = json!({"device_keys": {alice.clone(): []}});
    let (_, by_bob) = s
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob_token),
            query.clone(),
        )
        .await;
    assert_eq!(
        by_bob["master_keys"][&alice]["keys"][master2.key_id()],
        master2.public.as_str()
    );
    assert_eq!(
        by_bob["self_signing_keys"][&alice]["keys"][self_signing.key_id()],
        self_signing.public.as_str()
    );
    assert!(by_bob.get("user_signing_keys").is_none(), "{by_bob}");
    let (_, by_alice) = s
        .post("/_matrix/client/v3/keys/query", Some(&token), query)
        .await;
    assert_eq!(
        by_alice["user_signing_keys"][&alice]["keys"][user_signing.key_id()],
        user_signing.public.as_str()
    );
}

async fn uploaded_signatures_are_merged_into_queried_keys(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, device) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let keys = device_keys(&alice, &device, "curve-a");
    upload(&s, &token, json!({"device_keys": keys.clone()})).await;
    let (master, self_signing) = (SigningKey::new(), SigningKey::new());
    let (status, body) = s
        .post(
            "/_matrix/client/v3/keys/device_signing/upload",
            Some(&token),
            json!({
                "master_key": master.cross_signing(&alice, "master"),
                "self_signing_key":
                    master.sign(&alice, &self_signing.cross_signing(&alice, "self_signing")),
            }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bob_since = next_batch(&s, &bob_token, None).await;

    let signed = self_signing.sign(&alice, &keys);
    let signature = signed["signatures"][&alice][self_signing.key_id()].clone();
    let mut forged = master.cross_signing(&alice, "master");
    forged["signatures"] = json!({&alice: {self_signing.key_id(): "Zm9yZ2VkIHNpZ25hdHVyZQ"}});
    let (status, body) = s
        .post(
            "/_matrix/client/v3/keys/signatures/upload",
            Some(&token),
            json!({&alice: {
                &device: signed,
                "NOSUCH": {"signatures": {}},
                &master.public: forged,
            }}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["failures"][&alice]["NOSUCH"]["errcode"], "M_NOT_FOUND");
    assert_eq!(
        body["failures"][&alice][&master.public]["errcode"], "M_INVALID_SIGNATURE",
        "{body}"
    );

    let (_, q) = s
        .post(
            "/_matrix/client/v3/keys/query",
            Some(&bob_token),
            json!({"device_keys": {alice.clone(): [device.clone()]}}),
        )
        .await;
    let sigs = &q["device_keys"][&alice][&device]["signatures"][&alice];
    assert_eq!(sigs[self_signing.key_id()], signature, "{q}");
    assert_eq!(sigs[format!("ed25519:{device}")], "c2lnbmF0dXJl", "{q}");
    let master_sigs = &q["master_keys"][&alice]["signatures"];
    assert!(
        master_sigs.get(&alice).is_none(),
        "the forged signature was kept: {q}"
    );
    // A new signature is a change of alice's keys for those who share a room.
    let sync = s.sync(&bob_token, Some(&bob_since), 0).await;
    assert_eq!(changed(&sync), [alice.as_str()], "{sync}");
}
