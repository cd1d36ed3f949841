use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;

use crate::support::{Db, TestServer, assert_error};

on_both_backends!(
    versions_and_capabilities_describe_the_server,
    well_known_files_follow_the_config,
    browsers_get_cors_headers,
);

async fn versions_and_capabilities_describe_the_server(db: Db) {
    let s = TestServer::start(db).await;
    let (status, body) = s.get("/_matrix/client/versions", None).await;
    assert_eq!(status, StatusCode::OK);
    let versions = body["versions"].as_array().unwrap();
    assert!(versions.contains(&json!("v1.1")) && versions.contains(&json!("r0.6.1")));

    let r = s.get("/_matrix/client/v3/capabilities", None).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    let (_, token, _) = s.register("alice", "pw").await;
    let (status, caps) = s.get("/_matrix/client/v3/capabilities", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    let rooms = &caps["capabilities"]["m.room_versions"];
    assert_eq!(rooms["default"], "11");
    for v in 1..=12 {
        assert_eq!(
            rooms["available"][v.to_string()],
            "stable",
            "room version {v}"
        );
    }
    // Absent means the spec's default, enabled.
    assert_ne!(caps["capabilities"]["m.change_password"]["enabled"], false);
    assert_eq!(caps["capabilities"]["m.3pid_changes"]["enabled"], false);
}

async fn well_known_files_follow_the_config(db: Db) {
    let s = TestServer::start(db).await;
    let r = s.get("/.well-known/matrix/client", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let r = s.get("/.well-known/matrix/server", None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "M_NOT_FOUND");

    let s = TestServer::with_config(
        db,
        "public_baseurl: https://matrix.test.local/\nserve_server_wellknown: true\n",
    )
    .await;
    let (status, body) = s.get("/.well-known/matrix/client", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"m.homeserver": {"base_url": "https://matrix.test.local/"}})
    );
    let (status, body) = s.get("/.well-known/matrix/server", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"m.server": "matrix.test.local:443"}));
}

async fn browsers_get_cors_headers(db: Db) {
    let s = TestServer::start(db).await;
    let request = Request::builder()
        .method("OPTIONS")
        .uri("/_matrix/client/v3/login")
        .header("origin", "https://app.element.io")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .body(Body::empty())
        .unwrap();
    let response = s.app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success());
    let h = response.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(h.contains_key("access-control-allow-headers"));
}
