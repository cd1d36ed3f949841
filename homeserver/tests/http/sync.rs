use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer};

on_both_backends!(
    initial_sync_has_state_and_timeline_and_incremental_only_news,
    a_long_poll_wakes_as_soon_as_a_message_arrives,
    the_timeline_limit_is_honoured_with_limited_and_prev_batch,
    invites_and_leaves_appear_in_their_sections,
    a_kick_wakes_the_kicked_users_sync_with_the_leave,
    typing_receipts_tags_and_account_data_reach_sync,
    stored_and_inline_filters_select_events,
    lazy_loading_sends_only_the_members_who_spoke,
    a_long_poll_with_nothing_new_returns_at_the_timeout,
    unread_counts_follow_the_read_receipt,
    incremental_syncs_carry_unread_counts_forward,
);

async fn initial_sync_has_state_and_timeline_and_incremental_only_news(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({"name": "Sync"})).await;
    s.send_text(&token, &room, "first").await;
    let initial = s.sync(&token, None, 0).await;
    let joined = &initial["rooms"]["join"][&room];
    assert!(
        joined["state"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.name")
            || joined["timeline"]["events"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["type"] == "m.room.name")
    );
    assert_eq!(TestServer::timeline_bodies(&initial, &room), vec!["first"]);
    assert_eq!(joined["summary"]["m.joined_member_count"], 1);
    let next = initial["next_batch"].as_str().unwrap();

    s.send_text(&token, &room, "second").await;
    let incremental = s.sync(&token, Some(next), 0).await;
    assert_eq!(
        TestServer::timeline_bodies(&incremental, &room),
        vec!["second"]
    );
    assert_eq!(
        incremental["rooms"]["join"][&room]["timeline"]["limited"],
        false
    );
    let again = s.sync(&token, incremental["next_batch"].as_str(), 0).await;
    assert!(
        again["rooms"]["join"].as_object().unwrap().is_empty(),
        "nothing new: {again}"
    );
}

async fn a_long_poll_wakes_as_soon_as_a_message_arrives(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let since = s.sync(&bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let (sync, _) = tokio::join!(s.sync(&bob_token, Some(&since), 20_000), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        s.send_text(&token, &room, "wake up").await
    });
    assert_eq!(TestServer::timeline_bodies(&sync, &room), vec!["wake up"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woke after {:?}",
        started.elapsed()
    );
}

async fn a_long_poll_with_nothing_new_returns_at_the_timeout(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    s.create_room(&token, json!({})).await;
    let since = s.sync(&token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = Instant::now();
    let sync = s.sync(&token, Some(&since), 300).await;
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert_eq!(sync["next_batch"], since.as_str());
}

async fn the_timeline_limit_is_honoured_with_limited_and_prev_batch(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let since = s.sync(&token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..150 {
        s.send_text(&token, &room, &format!("m{i}")).await;
    }
    let filter = json!({"room": {"timeline": {"limit": 120}}}).to_string();
    let path = format!(
        "/_matrix/client/v3/sync?since={since}&filter={}",
        urlencode(&filter)
    );
    let (status, sync) = s.get(&path, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let bodies = TestServer::timeline_bodies(&sync, &room);
    assert_eq!(bodies.len(), 120);
    assert_eq!(bodies.last().unwrap(), "m149");
    let timeline = &sync["rooms"]["join"][&room]["timeline"];
    assert_eq!(timeline["limited"], true);
    let prev = timeline["prev_batch"].as_str().unwrap();
    let (_, page) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=30&from={prev}"),
            Some(&token),
        )
        .await;
    let older: Vec<&str> = page["chunk"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(
        older,
        (0..30)
            .rev()
            .map(|i| format!("m{i}"))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn invites_and_leaves_appear_in_their_sections(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let since = s.sync(&bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let room = s
        .create_room(&token, json!({"name": "Invite me", "invite": [bob]}))
        .await;
    let sync = s.sync(&bob_token, Some(&since), 1000).await;
    let state = sync["rooms"]["invite"][&room]["invite_state"]["events"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.name" && e["content"]["name"] == "Invite me"),
        "{sync}"
    );
    assert!(
        state
            .iter()
            .any(|e| e["type"] == "m.room.member" && e["state_key"] == bob.as_str())
    );
    let since = sync["next_batch"].as_str().unwrap().to_owned();
    s.post(
        &format!("/_matrix/client/v3/rooms/{room}/leave"),
        Some(&bob_token),
        json!({}),
    )
    .await;
    let sync = s.sync(&bob_token, Some(&since), 1000).await;
    assert!(sync["rooms"]["leave"].get(&room).is_some(), "{sync}");
}

async fn a_kick_wakes_the_kicked_users_sync_with_the_leave(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let since = s.sync(&bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let kick = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, body) = s
            .post(
                &format!("/_matrix/client/v3/rooms/{room}/kick"),
                Some(&token),
                json!({"user_id": bob, "reason": "test"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    };
    let (sync, ()) = tokio::join!(s.sync(&bob_token, Some(&since), 10_000), kick);
    let left = &sync["rooms"]["leave"][&room];
    let events = left["timeline"]["events"]
        .as_array()
        .expect("a leave section");
    assert!(
        events.iter().any(|e| e["type"] == "m.room.member"
            && e["state_key"] == bob.as_str()
            && e["content"]["membership"] == "leave"),
        "{sync}"
    );
    assert!(sync["rooms"]["join"].get(&room).is_none(), "{sync}");
}

async fn typing_receipts_tags_and_account_data_reach_sync(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let event = s.send_text(&token, &room, "read me").await;
    let since = s.sync(&bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _) = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/typing/{alice}"),
            Some(&token),
            json!({"typing": true, "timeout": 10000}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = s.sync(&bob_token, Some(&since), 1000).await;
    let ephemeral = sync["rooms"]["join"][&room]["ephemeral"]["events"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        ephemeral
            .iter()
            .any(|e| e["type"] == "m.typing" && e["content"]["user_ids"] == json!([alice])),
        "{sync}"
    );
    let since = sync["next_batch"].as_str().unwrap().to_owned();

    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{event}"),
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .put(
            &format!("/_matrix/client/v3/user/{bob}/rooms/{room}/tags/u.work"),
            Some(&bob_token),
            json!({"order": 0.5}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s
        .post(
            &format!("/_matrix/client/v3/rooms/{room}/read_markers"),
            Some(&bob_token),
            json!({"m.fully_read": event}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let sync = s.sync(&bob_token, Some(&since), 1000).await;
    let joined = &sync["rooms"]["join"][&room];
    let receipt = joined["ephemeral"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "m.receipt")
        .cloned()
        .unwrap();
    assert!(
        receipt["content"][&event]["m.read"][&bob]["ts"].is_i64(),
        "{receipt}"
    );
    let data = joined["account_data"]["events"].as_array().unwrap();
    assert!(
        data.iter()
            .any(|e| e["type"] == "m.tag" && e["content"]["tags"]["u.work"]["order"] == 0.5),
        "{joined}"
    );
    assert!(
        data.iter()
            .any(|e| e["type"] == "m.fully_read" && e["content"]["event_id"] == event.as_str())
    );
    let (_, tags) = s
        .get(
            &format!("/_matrix/client/v3/user/{bob}/rooms/{room}/tags"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(tags["tags"]["u.work"]["order"], 0.5);
    s.call(
        http::Method::DELETE,
        &format!("/_matrix/client/v3/user/{bob}/rooms/{room}/tags/u.work"),
        Some(&bob_token),
        None,
    )
    .await;
    let (_, tags) = s
        .get(
            &format!("/_matrix/client/v3/user/{bob}/rooms/{room}/tags"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(tags["tags"], json!({}));

    let since = sync["next_batch"].as_str().unwrap().to_owned();
    s.put(
        &format!("/_matrix/client/v3/user/{bob}/account_data/org.example.x"),
        Some(&bob_token),
        json!({"v": 1}),
    )
    .await;
    let sync = s.sync(&bob_token, Some(&since), 1000).await;
    assert_eq!(sync["account_data"]["events"][0]["type"], "org.example.x");
}

async fn stored_and_inline_filters_select_events(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    s.send_text(&token, &room, "text").await;
    s.send_event(
        &token,
        &room,
        "org.example.custom",
        json!({"body": "custom"}),
    )
    .await;
    let (status, created) = s
        .post(
            &format!("/_matrix/client/v3/user/{alice}/filter"),
            Some(&token),
            json!({"room": {"timeline": {"types": ["org.example.*"]}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["filter_id"].as_str().unwrap();
    let (status, stored) = s
        .get(
            &format!("/_matrix/client/v3/user/{alice}/filter/{id}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stored["room"]["timeline"]["types"],
        json!(["org.example.*"])
    );
    let (_, sync) = s
        .get(
            &format!("/_matrix/client/v3/sync?filter={id}"),
            Some(&token),
        )
        .await;
    assert_eq!(TestServer::timeline_bodies(&sync, &room), vec!["custom"]);
    let inline = urlencode(
        &json!({"room": {"timeline": {"not_types": ["org.example.custom"]}}}).to_string(),
    );
    let (_, sync) = s
        .get(
            &format!("/_matrix/client/v3/sync?filter={inline}"),
            Some(&token),
        )
        .await;
    assert_eq!(TestServer::timeline_bodies(&sync, &room), vec!["text"]);
    let r = s
        .get(
            &format!("/_matrix/client/v3/user/{alice}/filter/999"),
            Some(&token),
        )
        .await;
    crate::support::assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn lazy_loading_sends_only_the_members_who_spoke(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    let mut tokens = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let (_, t, _) = s.register(name, "pw").await;
        s.join(&t, &room).await;
        tokens.push(t);
    }
    for i in 0..12 {
        s.send_text(&token, &room, &format!("filler {i}")).await;
    }
    s.send_text(&tokens[0], &room, "bob speaks").await;
    let filter = urlencode(
        &json!({"room": {"timeline": {"limit": 2}, "state": {"lazy_load_members": true}}})
            .to_string(),
    );
    let (_, sync) = s
        .get(
            &format!("/_matrix/client/v3/sync?filter={filter}"),
            Some(&token),
        )
        .await;
    let members: Vec<&str> = sync["rooms"]["join"][&room]["state"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "m.room.member")
        .filter_map(|e| e["state_key"].as_str())
        .collect();
    assert!(
        members.contains(&"@bob:test.local") && members.contains(&"@alice:test.local"),
        "{members:?}"
    );
    assert!(
        !members.contains(&"@carol:test.local") && !members.contains(&"@dave:test.local"),
        "{members:?}"
    );

    // Incremental: a member who speaks for the first time comes with their member event, once;
    // `include_redundant_members` sends it every time.
    let state_members = |sync: &serde_json::Value| -> Vec<String> {
        sync["rooms"]["join"][&room]["state"]["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["type"] == "m.room.member")
                    .filter_map(|e| e["state_key"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let incremental = |since: String, filter: String| {
        let s = &s;
        let token = &token;
        async move {
            s.get(
                &format!("/_matrix/client/v3/sync?filter={filter}&since={since}&timeout=0"),
                Some(token),
            )
            .await
            .1
        }
    };
    let mut since = sync["next_batch"].as_str().unwrap().to_owned();
    s.send_text(&tokens[1], &room, "carol speaks").await;
    let sync = incremental(since, filter.clone()).await;
    assert_eq!(state_members(&sync), vec!["@carol:test.local"], "{sync}");
    since = sync["next_batch"].as_str().unwrap().to_owned();
    s.send_text(&tokens[1], &room, "carol again").await;
    s.send_text(&tokens[0], &room, "bob again").await;
    let sync = incremental(since.clone(), filter).await;
    assert!(state_members(&sync).is_empty(), "already sent: {sync}");
    let redundant = urlencode(
        &json!({"room": {"timeline": {"limit": 10}, "state": {"lazy_load_members": true, "include_redundant_members": true}}})
            .to_string(),
    );
    let sync = incremental(since, redundant).await;
    let mut members = state_members(&sync);
    members.sort();
    assert_eq!(
        members,
        vec!["@alice:test.local", "@bob:test.local", "@carol:test.local"],
        "{sync}"
    );
}

async fn unread_counts_follow_the_read_receipt(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    s.send_text(&token, &room, "one").await;
    let last = s.send_text(&token, &room, "hey bob, two").await;
    let sync = s.sync(&bob_token, None, 0).await;
    let counts = &sync["rooms"]["join"][&room]["unread_notifications"];
    assert_eq!(counts["notification_count"], 2, "{counts}");
    assert_eq!(counts["highlight_count"], 1, "{counts}");
    s.post(
        &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"),
        Some(&bob_token),
        json!({}),
    )
    .await;
    let sync = s.sync(&bob_token, None, 0).await;
    assert_eq!(
        sync["rooms"]["join"][&room]["unread_notifications"]["notification_count"],
        0
    );
}

async fn incremental_syncs_carry_unread_counts_forward(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    s.send_text(&token, &room, "one").await;
    let counts = |sync: &serde_json::Value| {
        let c = &sync["rooms"]["join"][&room]["unread_notifications"];
        (
            c["notification_count"].as_u64().unwrap(),
            c["highlight_count"].as_u64().unwrap(),
        )
    };
    let sync = s.sync(&bob_token, None, 0).await;
    assert_eq!(counts(&sync), (1, 0));
    let mut since = sync["next_batch"].as_str().unwrap().to_owned();
    s.send_text(&token, &room, "two").await;
    s.send_text(&token, &room, "three for bob").await;
    let sync = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(counts(&sync), (3, 1), "carried forward over two new events");
    let again = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(
        counts(&again),
        (3, 1),
        "a repeated token counts nothing twice"
    );
    since = sync["next_batch"].as_str().unwrap().to_owned();
    // Bob's own message reads everything before it.
    s.send_text(&bob_token, &room, "reading").await;
    let sync = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(counts(&sync), (0, 0));
    since = sync["next_batch"].as_str().unwrap().to_owned();
    let last = s.send_text(&token, &room, "four").await;
    let sync = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(counts(&sync), (1, 0));
    since = sync["next_batch"].as_str().unwrap().to_owned();
    s.post(
        &format!("/_matrix/client/v3/rooms/{room}/receipt/m.read/{last}"),
        Some(&bob_token),
        json!({}),
    )
    .await;
    let sync = s.sync(&bob_token, Some(&since), 0).await;
    assert_eq!(counts(&sync), (0, 0), "the receipt moved the marker");
    // Alice's syncs, which saw none of this, count from the store and agree.
    let sync = s.sync(&token, None, 0).await;
    assert_eq!(counts(&sync), (0, 0), "alice sent the last message herself");
}
