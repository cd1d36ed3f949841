use http::StatusCode;
use serde_json::json;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(profiles_are_read_by_anyone_and_written_by_their_owner);

async fn profiles_are_read_by_anyone_and_written_by_their_owner(db: Db) {
    let s = TestServer::start(db).await;
    let (alice, token, _) = s.register("alice", "pw").await;
    let (_, bob_token, _) = s.register("bob", "pw").await;

    let (status, body) = s
        .get(
            &format!("/_matrix/client/v3/profile/{alice}/displayname"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["displayname"], "alice",
        "the localpart is the initial displayname"
    );

    let path = format!("/_matrix/client/v3/profile/{alice}/displayname");
    assert_eq!(
        s.put(&path, Some(&token), json!({"displayname": "Alice A."}))
            .await
            .0,
        StatusCode::OK
    );
    let avatar = format!("/_matrix/client/v3/profile/{alice}/avatar_url");
    assert_eq!(
        s.put(
            &avatar,
            Some(&token),
            json!({"avatar_url": "mxc://test.local/abc"})
        )
        .await
        .0,
        StatusCode::OK
    );

    let (status, whole) = s
        .get(&format!("/_matrix/client/v3/profile/{alice}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        whole,
        json!({"displayname": "Alice A.", "avatar_url": "mxc://test.local/abc"})
    );
    assert_eq!(
        s.get(&avatar, None).await.1["avatar_url"],
        "mxc://test.local/abc"
    );

    let r = s
        .put(&path, Some(&bob_token), json!({"displayname": "Mallory"}))
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "M_FORBIDDEN");
    let r = s
        .get("/_matrix/client/v3/profile/@nobody:test.local", None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
}
