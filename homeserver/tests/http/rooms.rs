use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    a_room_is_created_with_its_initial_state,
    messages_are_sent_once_per_transaction_and_read_back,
    every_room_version_from_1_to_12_works,
    invite_only_rooms_refuse_uninvited_joins,
    banned_users_cannot_rejoin_until_unbanned,
    power_levels_stop_a_low_power_user_renaming_the_room,
    kicked_members_leave_and_can_forget,
    member_lists_filter_by_membership,
    bad_events_are_refused_with_the_right_errcode,
    redactions_strip_content_and_need_power_for_others,
    joined_history_visibility_hides_earlier_messages,
    rooms_keep_a_single_forward_extremity,
    concurrent_sends_in_many_rooms_commit_together_and_a_repeat_fails_alone,
    a_power_override_without_the_creator_applies_after_the_initial_state,
    a_restart_loses_no_events_and_rooms_continue,
    knocking_needs_a_knock_join_rule,
    restricted_rooms_admit_members_of_allowed_rooms,
);

async fn a_room_is_created_with_its_initial_state(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (bob, _, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(
            &token,
            json!({"name": "Lobby", "topic": "Say hi", "room_alias_name": "lobby", "preset": "public_chat",
                   "visibility": "public", "invite": [bob],
                   "initial_state": [{"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "forbidden"}}],
                   "power_level_content_override": {"events_default": 10}}),
        )
        .await;
    let (status, state) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let find = |t: &str, k: &str| {
        state
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == t && e["state_key"] == k)
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(find("m.room.create", "")["content"]["room_version"], "11");
    assert_eq!(find("m.room.name", "")["content"]["name"], "Lobby");
    assert_eq!(find("m.room.topic", "")["content"]["topic"], "Say hi");
    assert_eq!(
        find("m.room.join_rules", "")["content"]["join_rule"],
        "public"
    );
    assert_eq!(
        find("m.room.canonical_alias", "")["content"]["alias"],
        "#lobby:test.local"
    );
    assert_eq!(
        find("m.room.guest_access", "")["content"]["guest_access"],
        "forbidden"
    );
    assert_eq!(
        find("m.room.power_levels", "")["content"]["users"][&alice],
        100
    );
    assert_eq!(
        find("m.room.power_levels", "")["content"]["events_default"],
        10
    );
    assert_eq!(
        find("m.room.member", &alice)["content"]["membership"],
        "join"
    );
    assert_eq!(
        find("m.room.member", &bob)["content"]["membership"],
        "invite"
    );

    let (status, one) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one, json!({"name": "Lobby"}));
    let (_, alias) = s
        .get(
            "/_matrix/client/v3/directory/room/%23lobby:test.local",
            None,
        )
        .await;
    assert_eq!(alias["room_id"], room.as_str());
    let (_, public) = s.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(public["chunk"][0]["room_id"], room.as_str());
    assert_eq!(public["chunk"][0]["name"], "Lobby");
    let r = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&token),
            json!({"room_alias_name": "lobby"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_ROOM_IN_USE");
    let r = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&token),
            json!({"room_version": "999"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_UNSUPPORTED_ROOM_VERSION");
}

async fn messages_are_sent_once_per_transaction_and_read_back(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/txn1");
    let content = json!({"msgtype": "m.text", "body": "hello"});
    let (status, first) = s.put(&path, Some(&token), content.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again) = s.put(&path, Some(&token), content).await;
    assert_eq!(
        first["event_id"], again["event_id"],
        "the same transaction id is idempotent"
    );

    let (status, page) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=5"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let chunk = page["chunk"].as_array().unwrap();
    assert_eq!(chunk[0]["event_id"], first["event_id"]);
    assert_eq!(chunk[0]["content"]["body"], "hello");
    assert_eq!(
        chunk[0]["unsigned"]["transaction_id"], "txn1",
        "the sending device sees its txn id"
    );
    let bodies: Vec<_> = chunk
        .iter()
        .filter(|e| e["type"] == "m.room.message")
        .collect();
    assert_eq!(bodies.len(), 1, "sent once");

    let event_id = first["event_id"].as_str().unwrap();
    let (status, event) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{event_id}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["content"]["body"], "hello");

    // A retry that arrives after the sender left still answers with the first event.
    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, late) = s
        .put(
            &path,
            Some(&token),
            json!({"msgtype": "m.text", "body": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{late}");
    assert_eq!(late["event_id"], first["event_id"]);
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/txn2"),
            Some(&token),
            json!({"msgtype": "m.text", "body": "new"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn every_room_version_from_1_to_12_works(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    for v in 1..=12 {
        let room = s
            .create_room(
                &token,
                json!({"room_version": v.to_string(), "preset": "public_chat"}),
            )
            .await;
        assert_eq!(
            s.join(&bob_token, &room).await.0,
            StatusCode::OK,
            "v{v} join"
        );
        s.send_text(&bob_token, &room, &format!("hi in v{v}")).await;
        let (_, state) = s
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/state/m.room.create/"),
                Some(&token),
            )
            .await;
        assert_eq!(state["room_version"], v.to_string());
        let (_, member) = s
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/state/m.room.member/{bob}"),
                Some(&token),
            )
            .await;
        assert_eq!(member["membership"], "join", "v{v}");
    }
}

async fn invite_only_rooms_refuse_uninvited_joins(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "private_chat"}))
        .await;
    let r = s.join(&bob_token, &room).await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(s.invite(&token, &room, &bob).await.0, StatusCode::OK);
    let (status, body) = s.join(&bob_token, &room).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, rooms) = s
        .get("/_matrix/client/v3/joined_rooms", Some(&bob_token))
        .await;
    assert_eq!(rooms["joined_rooms"], json!([room]));
}

async fn banned_users_cannot_rejoin_until_unbanned(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/ban"),
            Some(&token),
            json!({"user_id": bob, "reason": "spam"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = s.join(&bob_token, &room).await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .send_event(
            &bob_token,
            &room,
            "m.room.message",
            json!({"body": "x", "msgtype": "m.text"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/unban"),
            Some(&token),
            json!({"user_id": bob}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s.join(&bob_token, &room).await.0, StatusCode::OK);
}

async fn power_levels_stop_a_low_power_user_renaming_the_room(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let path = format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/");
    let r = s
        .put(&path, Some(&bob_token), json!({"name": "Bob's room"}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        s.put(&path, Some(&token), json!({"name": "Alice's room"}))
            .await
            .0,
        StatusCode::OK
    );
    let r = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/kick"),
            Some(&bob_token),
            json!({"user_id": "@alice:test.local"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn kicked_members_leave_and_can_forget(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let r = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/forget"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_eq!(
        r.0,
        StatusCode::BAD_REQUEST,
        "cannot forget a joined room: {}",
        r.1
    );
    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/kick"),
            Some(&token),
            json!({"user_id": bob}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, rooms) = s
        .get("/_matrix/client/v3/joined_rooms", Some(&bob_token))
        .await;
    assert_eq!(rooms["joined_rooms"], json!([]));
    assert_eq!(
        s.post(
            &format!("/_matrix/client/v3/rooms/{room}/forget"),
            Some(&bob_token),
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
    let sync = s.sync(&bob_token, None, 0).await;
    assert!(
        sync["rooms"]["leave"].get(&room).is_none(),
        "a forgotten room is not listed"
    );
    let r = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/leave"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn member_lists_filter_by_membership(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (bob, _, _) = s.register("bob", "pw").await;
    let (carol, carol_token, _) = s.register("carol", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat", "invite": [bob]}))
        .await;
    s.join(&carol_token, &room).await;
    let (_, all) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/members"),
            Some(&token),
        )
        .await;
    assert_eq!(all["chunk"].as_array().unwrap().len(), 3);
    let (_, joined) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/members?membership=join"),
            Some(&token),
        )
        .await;
    let ids: Vec<&str> = joined["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state_key"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&alice.as_str())
            && ids.contains(&carol.as_str())
            && !ids.contains(&bob.as_str())
    );
    let (_, not_joined) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/members?not_membership=join"),
            Some(&token),
        )
        .await;
    assert_eq!(not_joined["chunk"][0]["state_key"], bob.as_str());
    let (_, jm) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/joined_members"),
            Some(&token),
        )
        .await;
    assert_eq!(jm["joined"].as_object().unwrap().len(), 2);
    assert_eq!(jm["joined"][&carol]["display_name"], "carol");
    // `at` a token from before carol joined.
    let (_, early) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=3"),
            Some(&token),
        )
        .await;
    let at = early["end"].as_str().unwrap();
    let (_, then) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/members?at={at}"),
            Some(&token),
        )
        .await;
    assert!(!then.to_string().contains(&carol), "{then}");
}

async fn bad_events_are_refused_with_the_right_errcode(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let r = s
        .send_event(
            &token,
            "!nowhere:test.local",
            "m.room.message",
            json!({"body": "x"}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .send_event(&bob_token, &room, "m.room.message", json!({"body": "x"}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .send_event(
            &token,
            &room,
            "m.room.message",
            json!({"body": "x".repeat(70_000)}),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");
    let r = s
        .put(
            &format!(
                "/_matrix/client/v3/rooms/{room}/state/m.custom/{}",
                "k".repeat(300)
            ),
            Some(&token),
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let r = s
        .send_event(
            &token,
            &room,
            "m.room.message",
            json!(["not", "an", "object"]),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_BAD_JSON");
    let r = s.join(&bob_token, "!unknown:test.local").await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let r = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b"),
            Some(&bob_token),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    // Real clients send `POST /join` with no body at all.
    let public = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    let (status, _) = s
        .call(
            http::Method::POST,
            &format!("/_matrix/client/v3/rooms/{public}/join"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

async fn redactions_strip_content_and_need_power_for_others(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let mine = s.send_text(&bob_token, &room, "oops").await;
    let alices = s.send_text(&token, &room, "keep").await;
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{alices}/r1"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let (status, body) = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{mine}/r2"),
            Some(&bob_token),
            json!({"reason": "typo"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, event) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{mine}"),
            Some(&token),
        )
        .await;
    assert_eq!(event["content"], json!({}), "{event}");
    assert_eq!(
        event["unsigned"]["redacted_because"]["content"]["reason"],
        "typo"
    );
    assert_eq!(
        s.put(
            &format!("/_matrix/client/v3/rooms/{room}/redact/{alices}/r3"),
            Some(&token),
            json!({})
        )
        .await
        .0,
        StatusCode::OK
    );
}

async fn joined_history_visibility_hides_earlier_messages(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let shared = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    let joined = s
        .create_room(
            &token,
            json!({"preset": "public_chat", "initial_state": [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}]}),
        )
        .await;
    for room in [&shared, &joined] {
        s.send_text(&token, room, "before bob").await;
        s.join(&bob_token, room).await;
        s.send_text(&token, room, "after bob").await;
    }
    let bodies = |page: &serde_json::Value| -> Vec<String> {
        page["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["content"]["body"].as_str().map(str::to_owned))
            .collect()
    };
    let (_, page) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{shared}/messages?dir=b&limit=50"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(bodies(&page), vec!["after bob", "before bob"]);
    let (_, page) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{joined}/messages?dir=b&limit=50"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(bodies(&page), vec!["after bob"]);
    let sync = s.sync(&bob_token, None, 0).await;
    assert_eq!(
        TestServer::timeline_bodies(&sync, &joined),
        vec!["after bob"]
    );
}

async fn rooms_keep_a_single_forward_extremity(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let sends = (0..20).map(|i| {
        let (s, token, room) = (&s, &token, &room);
        async move { s.send_text(token, room, &format!("m{i}")).await }
    });
    futures::future::join_all(sends).await;
    let extremities = s.services.store.forward_extremities(&room).await.unwrap();
    assert_eq!(extremities.len(), 1, "{extremities:?}");
}

async fn concurrent_sends_in_many_rooms_commit_together_and_a_repeat_fails_alone(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let mut rooms = Vec::new();
    for _ in 0..4 {
        rooms.push(s.create_room(&token, json!({})).await);
    }
    let dup_path = format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/dup",
        rooms[0]
    );
    let (status, first) = s
        .put(
            &dup_path,
            Some(&token),
            json!({"msgtype": "m.text", "body": "dup"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    // After a restart only the database knows the transaction id, so the repeats reach the
    // writer and its unique index refuses them, along with the room's events queued behind them.
    let s = s.restart().await;
    // Forty sends over four rooms at once, with repeats of the first transaction among them:
    // whichever shared commit a repeat lands in, only the repeat is answered from the store.
    let mut calls = Vec::new();
    for i in 0..40 {
        let path = format!(
            "/_matrix/client/v3/rooms/{}/send/m.room.message/t{i}",
            rooms[i % 4]
        );
        calls.push((path, format!("m{i}")));
        if i % 10 == 0 {
            calls.push((dup_path.clone(), "dup".to_owned()));
        }
    }
    let answers = futures::future::join_all(calls.iter().map(|(path, body)| {
        s.put(
            path,
            Some(&token),
            json!({"msgtype": "m.text", "body": body}),
        )
    }))
    .await;
    for ((path, _), (status, body)) in calls.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{path}: {body}");
        if *path == dup_path {
            assert_eq!(
                body["event_id"], first["event_id"],
                "a repeat answers the first event"
            );
        }
    }
    for (r, room) in rooms.iter().enumerate() {
        let (_, page) = s
            .get(
                &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=50"),
                Some(&token),
            )
            .await;
        let mut bodies: Vec<String> = page["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| e["content"]["body"].as_str().unwrap().to_owned())
            .collect();
        bodies.sort();
        let mut expected: Vec<String> = (0..40)
            .filter(|i| i % 4 == r)
            .map(|i| format!("m{i}"))
            .collect();
        if r == 0 {
            expected.push("dup".to_owned());
        }
        expected.sort();
        assert_eq!(bodies, expected, "room {r} has each message once");
        // Events queued behind a refused repeat were built on it: they were built again, so
        // every event cites events that exist, and the room goes on from what was written.
        for e in page["chunk"].as_array().unwrap() {
            let id = e["event_id"].as_str().unwrap();
            let row = s.services.store.event(id).await.unwrap().unwrap();
            let pdu: serde_json::Value = serde_json::from_str(&row.json).unwrap();
            for prev in pdu["prev_events"].as_array().unwrap() {
                let prev = prev.as_str().unwrap();
                assert!(
                    s.services.store.event(prev).await.unwrap().is_some(),
                    "room {r}: {id} cites {prev}, which was never written"
                );
            }
        }
        let (status, last) = s
            .put(
                &format!("/_matrix/client/v3/rooms/{room}/send/m.room.message/after{r}"),
                Some(&token),
                json!({"msgtype": "m.text", "body": "after"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{last}");
        let extremities = s.services.store.forward_extremities(room).await.unwrap();
        assert_eq!(
            extremities,
            vec![last["event_id"].as_str().unwrap()],
            "room {r}"
        );
    }
}

async fn a_power_override_without_the_creator_applies_after_the_initial_state(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, _, _) = s.register("bob", "pw").await;
    let (status, body) = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&token),
            json!({"room_alias_name": "handed-over", "name": "Handed over", "invite": [bob],
                   "power_level_content_override": {"users": {bob.clone(): 100}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let room = body["room_id"].as_str().unwrap();
    let (_, power) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.power_levels/"),
            Some(&token),
        )
        .await;
    assert_eq!(
        power["users"],
        json!({bob.clone(): 100}),
        "the override, as asked"
    );
    let (_, name) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
            Some(&token),
        )
        .await;
    assert_eq!(name["name"], "Handed over");
    let r = s
        .post(
            "/_matrix/client/v3/createRoom",
            Some(&token),
            json!({"power_level_content_override": {"users": 5}}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_BAD_JSON");
}

async fn a_restart_loses_no_events_and_rooms_continue(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({"name": "Durable"})).await;
    s.send_text(&token, &room, "one").await;
    let since = s.sync(&token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    s.send_text(&token, &room, "two").await;
    let s = s.restart().await;
    s.send_text(&token, &room, "three").await;
    let sync = s.sync(&token, Some(&since), 0).await;
    assert_eq!(
        TestServer::timeline_bodies(&sync, &room),
        vec!["two", "three"]
    );
    let (_, name) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.name/"),
            Some(&token),
        )
        .await;
    assert_eq!(name["name"], "Durable");
    assert_eq!(
        s.services
            .store
            .forward_extremities(&room)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn knocking_needs_a_knock_join_rule(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let closed = s
        .create_room(&token, json!({"preset": "private_chat"}))
        .await;
    let r = s
        .post(
            &format!("/_matrix/client/v3/knock/{closed}"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let knockable = s
        .create_room(&token, json!({"room_version": "10", "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": {"join_rule": "knock"}}]}))
        .await;
    let (status, body) = s
        .post(
            &format!("/_matrix/client/v3/knock/{knockable}"),
            Some(&bob_token),
            json!({"reason": "let me in"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sync = s.sync(&bob_token, None, 0).await;
    assert!(sync["rooms"]["knock"].get(&knockable).is_some(), "{sync}");
    assert_eq!(s.invite(&token, &knockable, &bob).await.0, StatusCode::OK);
    assert_eq!(s.join(&bob_token, &knockable).await.0, StatusCode::OK);
}

async fn restricted_rooms_admit_members_of_allowed_rooms(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let (_, carol_token, _) = s.register("carol", "pw").await;
    let space = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    let rule = json!({"join_rule": "restricted", "allow": [{"type": "m.room_membership", "room_id": space}]});
    let room = s
        .create_room(&token, json!({"room_version": "10", "initial_state": [{"type": "m.room.join_rules", "state_key": "", "content": rule}]}))
        .await;
    s.join(&bob_token, &space).await;
    let (status, body) = s.join(&bob_token, &room).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let r = s.join(&carol_token, &room).await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
}
