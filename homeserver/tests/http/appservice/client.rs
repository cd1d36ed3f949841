//! What appservices may do as clients beyond the basics: user queries wherever a client touches an
//! unknown namespaced user, rate limits, device deletion (MSC4190), alias namespaces, deactivated
//! users.

use http::{Method, StatusCode};
use serde_json::json;

use super::{AS_TOKEN, Setup, as_register, setup, setup_with};
use crate::support::{Db, assert_error};

async fn profile_lookups_and_room_invites_ask_about_unknown_namespaced_users(db: Db) {
    let Setup {
        server: s,
        appservice,
        ..
    } = setup(db).await;
    let (_, alice, _) = s.register("alice", "password-alice").await;
    // A profile lookup: the appservice registers the user on demand, then the profile is there.
    let r = s
        .get(
            "/_matrix/client/v3/profile/@bridge_auto_pat:test.local",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    assert_eq!(r.1["displayname"], "bridge_auto_pat", "{}", r.1);
    // A direct chat created with a ghost that does not exist yet.
    let room = s
        .create_room(
            &alice,
            json!({"invite": ["@bridge_auto_dm:test.local"], "is_direct": true, "preset": "trusted_private_chat"}),
        )
        .await;
    assert!(
        s.services
            .store
            .user_exists("@bridge_auto_dm:test.local")
            .await
            .unwrap()
    );
    let state = s
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/m.room.member/@bridge_auto_dm:test.local"
            ),
            Some(&alice),
        )
        .await;
    assert_eq!(state.1["membership"], "invite", "{}", state.1);
    // A user nobody provides: not found, and the miss is remembered, so asking again does not
    // ask the appservice again.
    for _ in 0..3 {
        let r = s
            .get(
                "/_matrix/client/v3/profile/@bridge_nobody:test.local/displayname",
                Some(&alice),
            )
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
    // Users outside every namespace, and users that exist, are never asked about.
    s.get("/_matrix/client/v3/profile/@alice:test.local", Some(&alice))
        .await;
    s.get(
        "/_matrix/client/v3/profile/@nobody:test.local",
        Some(&alice),
    )
    .await;
    s.get(
        "/_matrix/client/v3/profile/@bridge_auto_pat:test.local",
        Some(&alice),
    )
    .await;
    assert_eq!(
        *appservice.seen.queries.lock().unwrap(),
        [
            "@bridge_auto_pat:test.local",
            "@bridge_auto_dm:test.local",
            "@bridge_nobody:test.local"
        ]
    );
    // A remembered miss never hides a user registered since.
    as_register(&s, "bridge_nobody").await;
    let r = s
        .get(
            "/_matrix/client/v3/profile/@bridge_nobody:test.local/displayname",
            Some(&alice),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
}

const TIGHT: &str = "rc_message: {per_second: 0.001, burst_count: 3}\n";

async fn rc_message_limits_sends_except_for_unlimited_appservices(db: Db) {
    let Setup { server: s, .. } = setup_with(db, "", TIGHT).await;
    let (alice, room) = super::room_with_ghost(&s).await;
    for i in 0..3 {
        s.send_text(&alice, &room, &format!("m{i}")).await;
    }
    let r = s
        .send_event(
            &alice,
            &room,
            "m.room.message",
            json!({"msgtype": "m.text", "body": "over"}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    assert!(r.1["retry_after_ms"].as_u64().unwrap() > 0, "{}", r.1);
    // State events and redactions count too.
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.topic/"),
            Some(&alice),
            json!({"topic": "t"}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
    // `rate_limited: false`: the appservice and the users it masquerades as are not limited.
    for i in 0..10 {
        let r = s
            .put(
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/g{i}?user_id=@bridge_ghost:test.local"),
                Some(AS_TOKEN),
                json!({"msgtype": "m.text", "body": format!("g{i}")}),
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    }
    // An appservice without `rate_limited: false` is limited like anyone.
    let room = s.create_room("as-nourl", json!({})).await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = s
            .put(
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/n{i}"),
                Some("as-nourl"),
                json!({"msgtype": "m.text", "body": "n"}),
            )
            .await;
        statuses.push(r.0);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
}

async fn appservices_delete_their_users_devices_without_uia(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    as_register(&s, "bridge_alice").await;
    let ghost = "user_id=@bridge_alice:test.local";
    for dev in ["DEV1", "DEV2", "DEV3"] {
        let r = s
            .put(
                &format!("/_matrix/client/v3/devices/{dev}?{ghost}"),
                Some(AS_TOKEN),
                json!({}),
            )
            .await;
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    }
    let r = s
        .call(
            Method::DELETE,
            &format!("/_matrix/client/v3/devices/DEV1?{ghost}"),
            Some(AS_TOKEN),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = s
        .post(
            &format!("/_matrix/client/v3/delete_devices?{ghost}"),
            Some(AS_TOKEN),
            json!({"devices": ["DEV2", "DEV3"]}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    let r = s
        .get(
            &format!("/_matrix/client/v3/devices?{ghost}"),
            Some(AS_TOKEN),
        )
        .await;
    assert_eq!(r.1["devices"], json!([]), "{}", r.1);
    let r = s
        .call(
            Method::DELETE,
            &format!("/_matrix/client/v3/devices/DEV1?{ghost}"),
            Some(AS_TOKEN),
            Some(json!({})),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    // Humans still go through user-interactive auth.
    let (_, alice, device) = s.register("alice", "password-alice").await;
    let r = s
        .call(
            Method::DELETE,
            &format!("/_matrix/client/v3/devices/{device}"),
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED, "{}", r.1);
    assert!(r.1["flows"].is_array(), "{}", r.1);
}

async fn aliases_outside_its_namespaces_are_refused_to_an_appservice(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    // `#nourl_*` is held exclusively by another appservice.
    let r = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(AS_TOKEN),
            json!({"room_alias_name": "nourl_room"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    // ... also when it masquerades as one of its users.
    as_register(&s, "bridge_alice").await;
    let r = s
        .post(
            "/_matrix/client/v3/createRoom?user_id=@bridge_alice:test.local",
            Some(AS_TOKEN),
            json!({"room_alias_name": "nourl_room"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    // Outside every namespace: appservices create aliases only inside their own.
    let r = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(AS_TOKEN),
            json!({"room_alias_name": "plain_room"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    let room = s
        .create_room(AS_TOKEN, json!({"room_alias_name": "bridge_mine"}))
        .await;
    for alias in ["%23nourl_x:test.local", "%23plain:test.local"] {
        let r = s
            .put(
                &format!("/_matrix/client/v3/directory/room/{alias}"),
                Some(AS_TOKEN),
                json!({"room_id": room}),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "M_EXCLUSIVE");
    }
    let r = s
        .put(
            "/_matrix/client/v3/directory/room/%23bridge_other:test.local",
            Some(AS_TOKEN),
            json!({"room_id": room}),
        )
        .await;
    assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    // Nothing of a refused createRoom was made.
    let r = s
        .get(
            "/_matrix/client/v3/directory/room/%23nourl_room:test.local",
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn masquerading_as_a_deactivated_user_is_refused(db: Db) {
    let Setup { server: s, .. } = setup(db).await;
    as_register(&s, "bridge_gone").await;
    s.services
        .store
        .deactivate_user("@bridge_gone:test.local")
        .await
        .unwrap();
    let r = s
        .get(
            "/_matrix/client/v3/account/whoami?user_id=@bridge_gone:test.local",
            Some(AS_TOKEN),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_USER_DEACTIVATED");
    let r = s
        .put(
            "/_matrix/client/v3/profile/@bridge_gone:test.local/displayname?user_id=@bridge_gone:test.local",
            Some(AS_TOKEN),
            json!({"displayname": "back"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_USER_DEACTIVATED");
}

on_both_backends!(
    profile_lookups_and_room_invites_ask_about_unknown_namespaced_users,
    rc_message_limits_sends_except_for_unlimited_appservices,
    appservices_delete_their_users_devices_without_uia,
    aliases_outside_its_namespaces_are_refused_to_an_appservice,
    masquerading_as_a_deactivated_user_is_refused,
);
