use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    edits_reactions_and_threads_are_related_and_bundled,
    context_surrounds_an_event,
    timestamp_to_event_finds_the_nearest_event,
    messages_and_sync_bundle_edits_and_threads,
);

async fn edits_reactions_and_threads_are_related_and_bundled(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let root = s.send_text(&token, &room, "original").await;
    let edit = json!({"msgtype": "m.text", "body": "* edited", "m.new_content": {"msgtype": "m.text", "body": "edited"},
                      "m.relates_to": {"rel_type": "m.replace", "event_id": root}});
    let (_, edit_id) = s.send_event(&token, &room, "m.room.message", edit).await;
    let reaction =
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "👍"}});
    s.send_event(&token, &room, "m.reaction", reaction).await;
    let reply = json!({"msgtype": "m.text", "body": "in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}});
    s.send_event(&token, &room, "m.room.message", reply).await;

    let (status, all) = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/relations/{root}"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["chunk"].as_array().unwrap().len(), 3);
    let (_, reactions) = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/relations/{root}/m.annotation/m.reaction"),
            Some(&token),
        )
        .await;
    assert_eq!(reactions["chunk"].as_array().unwrap().len(), 1);
    assert_eq!(
        reactions["chunk"][0]["content"]["m.relates_to"]["key"],
        "👍"
    );
    let (_, limited) = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/relations/{root}?limit=1"),
            Some(&token),
        )
        .await;
    assert!(limited["next_batch"].is_string());

    let (_, event) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{root}"),
            Some(&token),
        )
        .await;
    let bundle = &event["unsigned"]["m.relations"];
    assert_eq!(
        bundle["m.replace"]["event_id"], edit_id["event_id"],
        "{event}"
    );
    assert_eq!(bundle["m.thread"]["count"], 1);
    assert_eq!(
        bundle["m.thread"]["latest_event"]["content"]["body"],
        "in thread"
    );

    let (status, threads) = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/threads"),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(threads["chunk"][0]["event_id"], root.as_str());
    let r = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/relations/$nope"),
            Some(&token),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn context_surrounds_an_event(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let ids: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..7 {
            v.push(s.send_text(&token, &room, &format!("c{i}")).await);
        }
        v
    };
    let (status, ctx) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/context/{}?limit=4", ids[3]),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{ctx}");
    assert_eq!(ctx["event"]["content"]["body"], "c3");
    let before: Vec<&str> = ctx["events_before"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    let after: Vec<&str> = ctx["events_after"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["content"]["body"].as_str())
        .collect();
    assert_eq!(before, vec!["c2", "c1"]);
    assert_eq!(after, vec!["c4", "c5"]);
    assert!(
        ctx["state"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "m.room.create")
    );
    let (_, page) = s
        .get(
            &format!(
                "/_matrix/client/v3/rooms/{room}/messages?dir=f&limit=1&from={}",
                ctx["end"].as_str().unwrap()
            ),
            Some(&token),
        )
        .await;
    assert_eq!(page["chunk"][0]["content"]["body"], "c6");
}

async fn timestamp_to_event_finds_the_nearest_event(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let first = s.send_text(&token, &room, "early").await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let (_, ev) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/event/{first}"),
            Some(&token),
        )
        .await;
    let ts = ev["origin_server_ts"].as_i64().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let second = s.send_text(&token, &room, "late").await;
    let (status, found) = s
        .get(
            &format!(
                "/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={}&dir=f",
                ts + 1
            ),
            Some(&token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["event_id"], second.as_str());
    let (_, found) = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts={ts}&dir=b"),
            Some(&token),
        )
        .await;
    assert_eq!(found["event_id"], first.as_str());
    let r = s
        .get(
            &format!("/_matrix/client/v1/rooms/{room}/timestamp_to_event?ts=1&dir=b"),
            Some(&token),
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}

async fn messages_and_sync_bundle_edits_and_threads(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let root = s.send_text(&token, &room, "original").await;
    let edit = |body: &str| {
        json!({"msgtype": "m.text", "body": format!("* {body}"), "m.new_content": {"msgtype": "m.text", "body": body},
               "m.relates_to": {"rel_type": "m.replace", "event_id": root}})
    };
    s.send_event(&token, &room, "m.room.message", edit("first edit"))
        .await;
    let (_, last_edit) = s
        .send_event(&token, &room, "m.room.message", edit("second edit"))
        .await;
    // Bob's edit of Alice's message is not hers, so it is not bundled.
    s.send_event(&bob_token, &room, "m.room.message", edit("not bob's"))
        .await;
    let reply = json!({"msgtype": "m.text", "body": "bob in thread", "m.relates_to": {"rel_type": "m.thread", "event_id": root}});
    s.send_event(&bob_token, &room, "m.room.message", reply)
        .await;
    let check = |event: &serde_json::Value, what: &str| {
        let bundle = &event["unsigned"]["m.relations"];
        assert_eq!(
            bundle["m.replace"]["event_id"], last_edit["event_id"],
            "{what}: {event}"
        );
        assert_eq!(bundle["m.thread"]["count"], 1, "{what}");
        assert_eq!(
            bundle["m.thread"]["current_user_participated"], true,
            "{what}: bob replied"
        );
    };
    let find_root = |events: &serde_json::Value| {
        events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["event_id"] == root.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("the root is in {events}"))
    };
    let (status, page) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=20"),
            Some(&bob_token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    check(&find_root(&page["chunk"]), "/messages");
    let initial = s.sync(&bob_token, None, 0).await;
    check(
        &find_root(&initial["rooms"]["join"][&room]["timeline"]["events"]),
        "initial /sync",
    );
    // An incremental sync whose timeline starts at the root: bundled from the timeline itself.
    let root_pos = s
        .services
        .store
        .event(&root)
        .await
        .unwrap()
        .unwrap()
        .stream_ordering
        - 1;
    let incremental = s.sync(&bob_token, Some(&format!("s{root_pos}_0")), 0).await;
    check(
        &find_root(&incremental["rooms"]["join"][&room]["timeline"]["events"]),
        "incremental /sync",
    );
}
