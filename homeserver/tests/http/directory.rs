use http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    aliases_are_created_resolved_and_deleted,
    the_public_directory_pages_and_filters,
    user_search_finds_users_who_share_a_room,
    user_search_finds_everyone_when_configured,
    presence_is_stored_and_synced_when_enabled,
    presence_costs_nothing_when_disabled,
);

async fn aliases_are_created_resolved_and_deleted(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    let path = "/_matrix/client/v3/directory/room/%23team:test.local";
    assert_eq!(
        s.put(path, Some(&token), json!({"room_id": room})).await.0,
        StatusCode::OK
    );
    let r = s.put(path, Some(&token), json!({"room_id": room})).await;
    assert_eq!(r.0, StatusCode::CONFLICT, "{}", r.1);
    let (_, found) = s.get(path, None).await;
    assert_eq!(found["room_id"], room.as_str());
    assert_eq!(found["servers"], json!(["test.local"]));
    let (_, aliases) = s
        .get(
            &format!("/_matrix/client/v3/rooms/{room}/aliases"),
            Some(&token),
        )
        .await;
    assert_eq!(aliases["aliases"], json!(["#team:test.local"]));
    let (status, _) = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias"),
            Some(&token),
            json!({"alias": "#team:test.local"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let r = s
        .put(
            &format!("/_matrix/client/v3/rooms/{room}/state/m.room.canonical_alias"),
            Some(&token),
            json!({"alias": "#other:test.local"}),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "M_BAD_ALIAS");
    let r = s.call(Method::DELETE, path, Some(&bob_token), None).await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    assert_eq!(
        s.call(Method::DELETE, path, Some(&token), None).await.0,
        StatusCode::OK
    );
    let r = s.get(path, None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let (status, joined) = s
        .post(
            "/_matrix/client/v3/join/%23team:test.local",
            Some(&bob_token),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{joined}");
}

async fn the_public_directory_pages_and_filters(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    for name in ["Rust", "Python", "Go"] {
        s.create_room(
            &token,
            json!({"name": name, "visibility": "public", "preset": "public_chat"}),
        )
        .await;
    }
    let private = s.create_room(&token, json!({"name": "Secret"})).await;
    let (_, all) = s.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(all["chunk"].as_array().unwrap().len(), 3);
    assert_eq!(all["total_room_count_estimate"], 3);
    let (_, page) = s.get("/_matrix/client/v3/publicRooms?limit=2", None).await;
    assert_eq!(page["chunk"].as_array().unwrap().len(), 2);
    let next = page["next_batch"].as_str().unwrap();
    let (_, rest) = s
        .get(
            &format!("/_matrix/client/v3/publicRooms?limit=2&since={next}"),
            None,
        )
        .await;
    assert_eq!(rest["chunk"].as_array().unwrap().len(), 1);
    let (_, filtered) = s
        .post(
            "/_matrix/client/v3/publicRooms",
            Some(&token),
            json!({"filter": {"generic_search_term": "pyth"}}),
        )
        .await;
    assert_eq!(filtered["chunk"][0]["name"], "Python");
    assert_eq!(filtered["chunk"].as_array().unwrap().len(), 1);

    let (_, vis) = s
        .get(
            &format!("/_matrix/client/v3/directory/list/room/{private}"),
            None,
        )
        .await;
    assert_eq!(vis["visibility"], "private");
    assert_eq!(
        s.put(
            &format!("/_matrix/client/v3/directory/list/room/{private}"),
            Some(&token),
            json!({"visibility": "public"})
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, vis) = s
        .get(
            &format!("/_matrix/client/v3/directory/list/room/{private}"),
            None,
        )
        .await;
    assert_eq!(vis["visibility"], "public");
    let (_, all) = s.get("/_matrix/client/v3/publicRooms", None).await;
    assert_eq!(all["chunk"].as_array().unwrap().len(), 4);
}

async fn user_search_finds_users_who_share_a_room(db: Db) {
    let s = TestServer::start(db).await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (bob, bob_token, _) = s.register("bob", "pw").await;
    s.register("bobby", "pw").await;
    let room = s.create_room(&token, json!({})).await;
    s.invite(&token, &room, &bob).await;
    s.join(&bob_token, &room).await;
    let (status, found) = s
        .post(
            "/_matrix/client/v3/user_directory/search",
            Some(&token),
            json!({"search_term": "bob"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![bob.as_str()], "bobby shares no room with alice");
}

async fn user_search_finds_everyone_when_configured(db: Db) {
    let s = TestServer::with_config(db, "user_directory:\n  search_all_users: true\n").await;
    let (_, token, _) = s.register("alice", "pw").await;
    s.register("bobby", "pw").await;
    let (_, found) = s
        .post(
            "/_matrix/client/v3/user_directory/search",
            Some(&token),
            json!({"search_term": "bobby"}),
        )
        .await;
    assert_eq!(found["results"][0]["user_id"], "@bobby:test.local");
    assert_eq!(found["results"][0]["display_name"], "bobby");
}

async fn presence_is_stored_and_synced_when_enabled(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;
    let room = s
        .create_room(&token, json!({"preset": "public_chat"}))
        .await;
    s.join(&bob_token, &room).await;
    let since = s.sync(&bob_token, None, 0).await["next_batch"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/_matrix/client/v3/presence/{alice}/status");
    assert_eq!(
        s.put(
            &path,
            Some(&token),
            json!({"presence": "unavailable", "status_msg": "lunch"})
        )
        .await
        .0,
        StatusCode::OK
    );
    let (_, status) = s.get(&path, Some(&bob_token)).await;
    assert_eq!(status["presence"], "unavailable");
    assert_eq!(status["status_msg"], "lunch");
    let sync = s.sync(&bob_token, Some(&since), 1000).await;
    let events = sync["presence"]["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["sender"] == alice.as_str() && e["content"]["presence"] == "unavailable"),
        "{sync}"
    );
}

async fn presence_costs_nothing_when_disabled(db: Db) {
    let s = TestServer::with_config(db, "presence:\n  enabled: false\n").await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let path = format!("/_matrix/client/v3/presence/{alice}/status");
    assert_eq!(
        s.put(&path, Some(&token), json!({"presence": "online"}))
            .await
            .0,
        StatusCode::OK
    );
    assert!(
        s.services.store.presence(&alice).await.unwrap().is_none(),
        "nothing stored"
    );
    let sync = s.sync(&token, None, 0).await;
    assert_eq!(sync["presence"]["events"], json!([]));
}
