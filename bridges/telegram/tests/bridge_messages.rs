//! Linking and talking both ways (see `support/harness.rs`).

#[path = "support/harness.rs"]
mod harness;

use harness::*;

async fn linking_with_a_code_creates_the_portal_room(backend: &str) {
    let h = Harness::start(backend).await;
    // Ann owns the group; she asks the bot for a code.
    let owner = json!({"status": "creator", "user": ann(), "is_anonymous": false});
    let was = json!({"status": "member", "user": ann()});
    h.fake
        .update(json!({"chat_member": {"chat": group(), "from": ann(), "date": 1, "old_chat_member": was, "new_chat_member": owner}}))
        .await;
    h.fake.update(text_from_ann("/bridge", json!({}))).await;
    let answer = h
        .wait_sent("the link code", |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.contains("send bridge "))
        })
        .await;
    let text = answer["text"].as_str().unwrap();
    let code = text
        .split("send bridge ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    // Alice opens a management room with the bot and redeems it.
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
        h.bridge
            .store()
            .portal_by_remote_id(&GROUP.to_string())
            .await
            .unwrap()
    })
    .await;
    let created = h.hs.recorded_of("create_room");
    assert_eq!(created[0].room_id.as_deref(), Some(portal.room_id.as_str()));
    assert_eq!(created[0].body["invite"], json!(["@alice:test"]));
    assert_eq!(created[0].body["name"], "Causeway Group");
    h.wait_sent("the confirmation", |m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("now bridged"))
    })
    .await;
    // A code works once.
    h.txn(vec![matrix_event(
        "m.room.message",
        "$login2",
        "!dm:test",
        json!({"msgtype": "m.text", "body": format!("bridge {code}")}),
    )])
    .await;
    let notices = h.sends("!dm:test");
    wait_for("the refusal", || async {
        h.sends("!dm:test")
            .iter()
            .any(|r| {
                r.body["body"]
                    .as_str()
                    .is_some_and(|b| b.contains("Unknown or expired"))
            })
            .then_some(())
    })
    .await;
    assert!(!notices.is_empty());
    h.finish().await;
}

async fn telegram_and_matrix_users_talk_both_ways(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.as_str();

    // Ann has a profile photo; her ghost gets it.
    let photo = h
        .fake
        .post_raw_file(b"GIF89a\x03\x00\x03\x00", "profile_photos", "ann.gif")
        .await;
    h.fake
        .post(
            "/_fake/profile_photo",
            json!({"user_id": 7, "file_id": photo["file_id"]}),
        )
        .await;

    // Telegram -> Matrix: text with entities, as Ann's ghost, at the original time.
    let date = 1_700_000_123;
    let hello = h
        .fake
        .update(text_from_ann(
            "😀 hi all",
            json!({"date": date, "entities": [{"type": "bold", "offset": 3, "length": 2}]}),
        ))
        .await;
    let hello_id = hello["message_id"].as_i64().unwrap();
    let event = h
        .wait_send(room, "Ann's message", |r| r.body["body"] == "😀 hi all")
        .await;
    assert_eq!(event.user_id.as_deref(), Some("@telegram_7:test"));
    assert_eq!(event.ts, Some(date * 1000));
    assert_eq!(event.body["formatted_body"], "😀 <strong>hi</strong> all");
    let avatars = h.hs.recorded_of("avatar_url");
    assert!(
        avatars
            .iter()
            .any(|a| a.user_id.as_deref() == Some("@telegram_7:test")),
        "{avatars:?}"
    );
    let displaynames = h.hs.recorded_of("displayname");
    assert!(
        displaynames
            .iter()
            .any(|d| d.body["displayname"] == "Ann Lee"),
        "{displaynames:?}"
    );

    // Matrix -> Telegram: the bot relays Alice with the template, HTML converted.
    let content = json!({"msgtype": "m.text", "body": "**yes**", "format": "org.matrix.custom.html",
        "formatted_body": "<strong>yes</strong> &amp; <em>welcome</em>",
        "m.relates_to": {"m.in_reply_to": {"event_id": event.event_id.clone().unwrap()}}});
    h.txn(vec![matrix_event(
        "m.room.message",
        "$alice1",
        room,
        content,
    )])
    .await;
    let relayed = h
        .wait_sent("Alice's message", |m| {
            m["text"]
                .as_str()
                .is_some_and(|t| t.ends_with("yes & welcome"))
        })
        .await;
    assert_eq!(relayed["text"], "@alice:test: yes & welcome");
    let kinds: Vec<&str> = relayed["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["bold", "bold", "italic"]);
    assert_eq!(
        relayed["reply_to_message"]["message_id"], hello_id,
        "the reply points at Ann's message"
    );
    let relayed_id = relayed["message_id"].as_i64().unwrap();

    // Telegram -> Matrix reply to the relayed message.
    h.fake
        .update(text_from_ann("thanks", json!({"reply_to_message": {"message_id": relayed_id, "date": 1, "chat": group(), "text": "x"}})))
        .await;
    let reply = h
        .wait_send(room, "Ann's reply", |r| r.body["body"] == "thanks")
        .await;
    assert_eq!(
        reply.body["m.relates_to"]["m.in_reply_to"]["event_id"],
        "$alice1"
    );

    // Edit, reaction, photo from Telegram.
    h.fake
        .update(json!({"edited_message": {"message_id": hello_id, "chat": group(), "from": ann(), "date": date,
            "edit_date": date + 60, "text": "hi everyone"}}))
        .await;
    let edit = h
        .wait_send(room, "the edit", |r| {
            r.body["m.new_content"]["body"] == "hi everyone"
        })
        .await;
    assert_eq!(edit.body["m.relates_to"]["rel_type"], "m.replace");
    assert_eq!(edit.ts, Some((date + 60) * 1000));
    h.fake
        .update(json!({"message_reaction": {"chat": group(), "message_id": hello_id, "user": ann(), "date": date + 70,
            "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "🔥"}]}}))
        .await;
    let reaction = wait_for("the reaction", || async {
        h.hs.recorded_of("send")
            .into_iter()
            .find(|r| r.event_type.as_deref() == Some("m.reaction"))
    })
    .await;
    assert_eq!(reaction.body["m.relates_to"]["key"], "🔥");
    let file = h
        .fake
        .post_raw_file(b"GIF89a\x02\x00\x02\x00", "photos", "p.gif")
        .await;
    h.fake
        .update(json!({"message": {"chat": group(), "from": ann(), "caption": "look",
            "photo": [{"file_id": file["file_id"], "file_unique_id": file["file_unique_id"], "width": 2, "height": 2}]}}))
        .await;
    let photo = h
        .wait_send(room, "the photo", |r| r.body["msgtype"] == "m.image")
        .await;
    assert_eq!(photo.body["url"], "mxc://test/uploaded");
    assert_eq!(photo.body["body"], "look");
    assert_eq!(photo.body["info"]["size"], 10);

    // Matrix -> Telegram files: a photo within the limits, and one past them.
    h.media.put(
        "cat",
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x05\0\0\0\x04",
        "image/png",
    );
    let image = json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://test/cat",
        "info": {"mimetype": "image/png", "size": 24}});
    h.txn(vec![matrix_event("m.room.message", "$image", room, image)])
        .await;
    let photo = h
        .wait_sent("the photo in Telegram", |m| m.get("photo").is_some())
        .await;
    assert_eq!(photo["caption"], "@alice:test: cat.png");
    assert_eq!(
        (
            photo["photo"][0]["width"].as_i64(),
            photo["photo"][0]["height"].as_i64()
        ),
        (Some(5), Some(4))
    );
    let huge = json!({"msgtype": "m.video", "body": "film.mkv", "url": "mxc://test/film",
        "info": {"mimetype": "video/x-matroska", "size": 60 * 1024 * 1024}});
    h.txn(vec![matrix_event("m.room.message", "$huge", room, huge)])
        .await;
    h.wait_sent("the note about the big file", |m| {
        m["text"]
            .as_str()
            .is_some_and(|t| t.contains("too large for Telegram"))
    })
    .await;
    h.wait_send(room, "the notice in Matrix", |r| {
        r.body["body"]
            .as_str()
            .is_some_and(|b| b.contains("at most 50 MB"))
    })
    .await;

    // Matrix -> Telegram reaction, edit and redaction of Alice's message.
    let on_hello = json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event.event_id.clone().unwrap(), "key": "👍"}});
    h.txn(vec![matrix_event("m.reaction", "$react", room, on_hello)])
        .await;
    let reactions = wait_for("the bot's reaction", || async {
        let r = h
            .fake
            .get(&format!("/_fake/reactions?chat_id={GROUP}"))
            .await;
        (!r.as_array().unwrap().is_empty()).then_some(r)
    })
    .await;
    assert_eq!(reactions[0]["message_id"], hello_id);
    assert_eq!(reactions[0]["reaction"][0]["emoji"], "👍");
    let edit = json!({"msgtype": "m.text", "body": "* yes!", "m.new_content": {"msgtype": "m.text", "body": "yes!"},
        "m.relates_to": {"rel_type": "m.replace", "event_id": "$alice1"}});
    h.txn(vec![matrix_event(
        "m.room.message",
        "$alice1edit",
        room,
        edit,
    )])
    .await;
    h.wait_sent("the edit in Telegram", |m| m["text"] == "@alice:test: yes!")
        .await;
    let redaction = json!({"type": "m.room.redaction", "event_id": "$redact", "room_id": room, "sender": "@alice:test",
        "origin_server_ts": 1, "redacts": "$alice1", "content": {"redacts": "$alice1"}});
    h.txn(vec![redaction]).await;
    let deleted = h.wait_sent("the deletion", |m| m["deleted"] == true).await;
    assert_eq!(deleted["message_id"], relayed_id);
    h.finish().await;
}

async fn matrix_typing_becomes_a_chat_action(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    h.fake.update(text_from_ann("hi", json!({}))).await;
    let typing = json!({"type": "m.typing", "room_id": portal.room_id, "content": {"user_ids": ["@alice:test"]}});
    h.ephemeral(vec![typing.clone()]).await;
    let actions = wait_for("the chat action", || async {
        let actions = h.fake.get(&format!("/_fake/actions?chat_id={GROUP}")).await;
        (actions != json!([])).then_some(actions)
    })
    .await;
    assert_eq!(actions, json!(["typing"]));
    // Telegram shows an action for about 5 s, so a second notification right away is not sent again.
    h.ephemeral(vec![typing]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.fake.get(&format!("/_fake/actions?chat_id={GROUP}")).await,
        json!(["typing"])
    );
    h.finish().await;
}

/// A message from `sender` (the harness's `matrix_event` is always Alice's).
fn said(sender: &str, id: &str, room: &str, body: &str) -> Value {
    json!({"type": "m.room.message", "event_id": id, "room_id": room, "sender": sender,
           "origin_server_ts": 1_700_000_000_000u64, "content": {"msgtype": "m.text", "body": body}})
}

fn dm_invite(sender: &str, room: &str) -> Value {
    json!({"type": "m.room.member", "event_id": format!("$dm{room}"), "room_id": room, "sender": sender,
        "state_key": "@telegrambot:test", "origin_server_ts": 1, "content": {"membership": "invite", "is_direct": true}})
}

async fn notice(h: &Harness, room: &str, what: &str, wanted: &str) {
    h.wait_send(room, what, |r| r.body["body"] == wanted).await;
}

async fn the_linker_or_an_admin_unlinks_from_matrix_and_admins_link_by_id(backend: &str) {
    let h = Harness::start(backend).await;
    // Ann asks for a code in her private chat with the bot; Alice redeems it with `bridge CODE`.
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
        .unwrap()[..8]
        .to_owned();
    h.txn(vec![
        dm_invite("@alice:test", "!alice:test"),
        dm_invite("@carol:test", "!carol:test"),
    ])
    .await;
    h.txn(vec![said(
        "@alice:test",
        "$redeem",
        "!alice:test",
        &format!("bridge {code}"),
    )])
    .await;
    let portal = wait_for("the private portal", || async {
        h.bridge.store().portal_by_remote_id("7").await.unwrap()
    })
    .await;
    notice(
        &h,
        "!alice:test",
        "the link answer",
        &format!(
            "Telegram chat Ann Lee (7) is now bridged to {}.",
            portal.room_id
        ),
    )
    .await;

    // Carol has `user` too, but did not link the chat; neither may Alice link a chat by id.
    h.txn(vec![said(
        "@carol:test",
        "$c-unlink",
        "!carol:test",
        "unlink 7",
    )])
    .await;
    notice(
        &h,
        "!carol:test",
        "Carol's refusal",
        "Only the Matrix user who linked this chat, or a bridge admin, can unlink it.",
    )
    .await;
    h.txn(vec![said(
        "@alice:test",
        "$a-link",
        "!alice:test",
        &format!("link {GROUP}"),
    )])
    .await;
    notice(&h, "!alice:test", "the refusal to link by id",
        "Linking a chat by id is for bridge admins: have a Telegram admin of the chat send /bridge there, \
         then send bridge CODE here.").await;
    assert!(
        h.bridge
            .store()
            .portal_by_remote_id("7")
            .await
            .unwrap()
            .is_some()
    );

    // Alice unlinks from her management room; both sides hear of it.
    h.txn(vec![said(
        "@alice:test",
        "$a-unlink",
        "!alice:test",
        "unlink 7",
    )])
    .await;
    notice(
        &h,
        "!alice:test",
        "the unlink answer",
        &format!(
            "Telegram chat 7 is no longer bridged to {}.",
            portal.room_id
        ),
    )
    .await;
    notice(
        &h,
        portal.room_id.as_str(),
        "the notice in the old portal",
        "This room is no longer bridged: @alice:test sent unlink.",
    )
    .await;
    wait_for("the unlink in Telegram", || async {
        h.fake
            .sent(7)
            .await
            .into_iter()
            .find(|m| m["text"] == "This chat is no longer bridged to Matrix.")
    })
    .await;
    assert!(
        h.bridge
            .store()
            .portal_by_remote_id("7")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        h.bridge
            .store()
            .kv_get("telegram_linked_by", "7")
            .await
            .unwrap(),
        None
    );

    // A bridge admin links the group by id in a room of theirs, which becomes the portal, and unlinks it there.
    h.fake.update(text_from_ann("hello", json!({}))).await;
    h.txn(vec![said(
        "@boss:test",
        "$b-link",
        "!boss-room:test",
        &format!("!bridge link {GROUP}"),
    )])
    .await;
    notice(
        &h,
        "!boss-room:test",
        "the admin's link answer",
        &format!("Telegram chat Causeway Group ({GROUP}) is now bridged to !boss-room:test."),
    )
    .await;
    h.wait_sent("the link in Telegram", |m| {
        m["text"] == "This chat is now bridged to Matrix (!boss-room:test)."
    })
    .await;
    assert_eq!(
        h.bridge
            .store()
            .kv_get("telegram_linked_by", &GROUP.to_string())
            .await
            .unwrap()
            .as_deref(),
        Some("@boss:test")
    );
    h.txn(vec![said(
        "@alice:test",
        "$a-unlink2",
        "!boss-room:test",
        "!bridge unlink",
    )])
    .await;
    notice(
        &h,
        "!boss-room:test",
        "Alice's refusal in the portal",
        "Only the Matrix user who linked this chat, or a bridge admin, can unlink it.",
    )
    .await;
    h.txn(vec![said(
        "@boss:test",
        "$b-unlink",
        "!boss-room:test",
        "!bridge unlink",
    )])
    .await;
    notice(
        &h,
        "!boss-room:test",
        "the admin's unlink answer",
        &format!("Telegram chat {GROUP} is no longer bridged to !boss-room:test."),
    )
    .await;
    h.finish().await;
}

async fn a_matrix_location_is_a_map_after_a_line_naming_the_sender(backend: &str) {
    let h = Harness::start(backend).await;
    let portal = h.portal().await;
    let room = portal.room_id.as_str();
    h.fake.update(text_from_ann("where?", json!({}))).await;
    h.txn(vec![matrix_event(
        "m.room.message",
        "$where",
        room,
        json!({"msgtype": "m.location", "body": "Eiffel Tower", "geo_uri": "geo:48.85837,2.294481;u=20"}),
    )])
    .await;
    let map = h
        .wait_sent("the map", |m| m.get("location").is_some())
        .await;
    assert_eq!(
        map["location"],
        json!({"latitude": 48.85837, "longitude": 2.294481})
    );
    assert_eq!(
        map["reply_to_message"]["text"],
        "@alice:test: 📍 Eiffel Tower"
    );
    let stored = h
        .bridge
        .store()
        .message_by_event_id("$where")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.remote_id,
        map["message_id"].to_string(),
        "the map is the bridged message"
    );
    h.txn(vec![matrix_event(
        "m.room.message",
        "$nowhere",
        room,
        json!({"msgtype": "m.location", "body": "Atlantis", "geo_uri": "geo:95,0"}),
    )])
    .await;
    h.wait_sent("the text fallback", |m| {
        m["text"] == "@alice:test: Atlantis (geo:95,0)"
    })
    .await;
    h.finish().await;
}

on_both_backends!(
    the_linker_or_an_admin_unlinks_from_matrix_and_admins_link_by_id,
    a_matrix_location_is_a_map_after_a_line_naming_the_sender,
    linking_with_a_code_creates_the_portal_room,
    telegram_and_matrix_users_talk_both_ways,
    matrix_typing_becomes_a_chat_action,
);
