//! Chat life on Telegram mirrored in the portal: members, title, photo, supergroup migration, forum topics,
//! private chats (see `support/harness.rs`).

#[path = "support/harness.rs"]
mod harness;

use harness::*;

fn bob() -> Value {
    json!({"id": 8, "is_bot": false, "first_name": "Bob"})
}

async fn members_title_and_photo_follow_the_chat(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    h.fake
        .update(json!({"message": {"chat": group(), "from": ann(), "new_chat_members": [bob()]}}))
        .await;
    wait_for("Bob's ghost to join", || async {
        h.hs.recorded_of("join").into_iter().find(|j| {
            j.user_id.as_deref() == Some("@telegram_8:test")
                && j.room_id.as_deref() == Some(room.as_str())
        })
    })
    .await;
    h.fake
        .update(json!({"message": {"chat": group(), "from": bob(), "left_chat_member": bob()}}))
        .await;
    wait_for("Bob's ghost to leave", || async {
        h.hs.recorded_of("leave")
            .into_iter()
            .find(|j| j.user_id.as_deref() == Some("@telegram_8:test"))
    })
    .await;
    h.fake
        .update(json!({"message": {"chat": group(), "from": ann(), "new_chat_title": "Renamed"}}))
        .await;
    let name = wait_for("the room name", || async {
        h.hs.recorded_of("state")
            .into_iter()
            .find(|s| s.event_type.as_deref() == Some("m.room.name"))
    })
    .await;
    assert_eq!(name.body, json!({"name": "Renamed"}));
    // The bridge stores the new name after the homeserver took the state event: wait for it too.
    wait_for("the portal's new name in the store", || async {
        let portal = h.bridge.store().portal_by_room_id(&room).await.unwrap()?;
        (portal.name.as_deref() == Some("Renamed")).then_some(())
    })
    .await;
    let file = h
        .fake
        .post_raw_file(b"GIF89a\x01\x00\x01\x00", "photos", "chat.gif")
        .await;
    let sizes = json!([{"file_id": file["file_id"], "file_unique_id": file["file_unique_id"], "width": 1, "height": 1}]);
    h.fake
        .update(json!({"message": {"chat": group(), "from": ann(), "new_chat_photo": sizes}}))
        .await;
    let avatar = wait_for("the room avatar", || async {
        h.hs.recorded_of("state")
            .into_iter()
            .find(|s| s.event_type.as_deref() == Some("m.room.avatar"))
    })
    .await;
    assert_eq!(avatar.body["url"], "mxc://test/uploaded");
    h.finish().await;
}

async fn a_group_upgraded_to_a_supergroup_keeps_its_room(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    let new_id = -1_000_000_500_i64;
    h.fake
        .update(json!({"message": {"chat": group(), "from": ann(), "migrate_to_chat_id": new_id}}))
        .await;
    let moved = wait_for("the portal to follow", || async {
        h.bridge
            .store()
            .portal_by_remote_id(&new_id.to_string())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(moved.room_id.as_str(), room);
    assert!(
        h.bridge
            .store()
            .portal_by_remote_id(&GROUP.to_string())
            .await
            .unwrap()
            .is_none()
    );
    let supergroup = json!({"id": new_id, "type": "supergroup", "title": "Causeway Group"});
    h.fake
        .update(json!({"message": {"chat": supergroup, "from": ann(), "text": "still here"}}))
        .await;
    h.wait_send(&room, "a message from the supergroup", |r| {
        r.body["body"] == "still here"
    })
    .await;
    h.finish().await;
}

async fn forum_topics_become_threads(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.to_string();
    let forum = json!({"id": GROUP, "type": "supergroup", "title": "Forum", "is_forum": true});
    let topic = h
        .fake
        .update(json!({"message": {"chat": forum, "from": ann(), "message_thread_id": 10, "message_id": 10,
            "is_topic_message": true, "forum_topic_created": {"name": "Ideas", "icon_color": 7322096}}}))
        .await;
    assert_eq!(topic["message_id"], 10);
    let root = h
        .wait_send(&room, "the topic", |r| r.body["body"] == "Topic: Ideas")
        .await;
    let root_created = json!({"message_id": 10, "date": 1, "chat": forum, "message_thread_id": 10,
        "forum_topic_created": {"name": "Ideas", "icon_color": 7322096}});
    h.fake
        .update(json!({"message": {"chat": forum, "from": ann(), "text": "in the topic", "message_thread_id": 10,
            "is_topic_message": true, "reply_to_message": root_created}}))
        .await;
    let in_topic = h
        .wait_send(&room, "the topic message", |r| {
            r.body["body"] == "in the topic"
        })
        .await;
    assert_eq!(in_topic.body["m.relates_to"]["rel_type"], "m.thread");
    assert_eq!(
        in_topic.body["m.relates_to"]["event_id"],
        json!(root.event_id)
    );
    // A Matrix answer in the thread goes to the topic.
    let answer = json!({"msgtype": "m.text", "body": "agreed",
        "m.relates_to": {"rel_type": "m.thread", "event_id": root.event_id, "is_falling_back": true,
                         "m.in_reply_to": {"event_id": in_topic.event_id}}});
    h.txn(vec![matrix_event(
        "m.room.message",
        "$thread",
        &room,
        answer,
    )])
    .await;
    let sent = h
        .wait_sent("the answer", |m| m["text"] == "@alice:test: agreed")
        .await;
    assert_eq!(sent["message_thread_id"], 10);
    h.finish().await;
}

async fn a_private_chat_links_to_a_direct_room(backend: &str) {
    let h = Harness::start(backend).await;
    let private = json!({"id": 7, "type": "private", "first_name": "Ann"});
    h.fake
        .update(json!({"message": {"chat": private, "from": ann(), "text": "/bridge"}}))
        .await;
    let answer = wait_for("the code", || async {
        h.fake.sent(7).await.into_iter().find(|m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("send bridge "))
        })
    })
    .await;
    let code = answer["text"]
        .as_str()
        .unwrap()
        .split("send bridge ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let invite = json!({"type": "m.room.member", "event_id": "$dm", "room_id": "!dm:test", "sender": "@alice:test",
        "state_key": "@telegrambot:test", "origin_server_ts": 1, "content": {"membership": "invite", "is_direct": true}});
    h.txn(vec![invite]).await;
    h.txn(vec![matrix_event(
        "m.room.message",
        "$login",
        "!dm:test",
        json!({"msgtype": "m.text", "body": format!("bridge {code}")}),
    )])
    .await;
    let portal = wait_for("the portal", || async {
        h.bridge.store().portal_by_remote_id("7").await.unwrap()
    })
    .await;
    let created = h.hs.recorded_of("create_room");
    assert_eq!(created[0].body["is_direct"], true);
    assert_eq!(created[0].body["invite"], json!(["@alice:test"]));
    h.fake
        .update(json!({"message": {"chat": private, "from": ann(), "text": "just us"}}))
        .await;
    h.wait_send(portal.room_id.as_str(), "the private message", |r| {
        r.body["body"] == "just us"
    })
    .await;
    // Either side can unlink; here Ann does it from Telegram.
    h.fake
        .update(json!({"message": {"chat": private, "from": ann(), "text": "/unbridge"}}))
        .await;
    wait_for("the portal to go", || async {
        h.bridge
            .store()
            .portal_by_remote_id("7")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    h.finish().await;
}

on_both_backends!(
    members_title_and_photo_follow_the_chat,
    a_group_upgraded_to_a_supergroup_keeps_its_room,
    forum_topics_become_threads,
    a_private_chat_links_to_a_direct_room,
);
