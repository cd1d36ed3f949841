//! The content repository: uploads, downloads by both routes, async uploads, limits, headers.

mod preview;
mod thumbnails;

use axum::{Router, body::Body};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{Db, TestServer, assert_error};

/// A server whose media store is a temp dir of its own (kept alive by the returned guard).
pub(crate) async fn media_server(db: Db, extra: &str) -> (TestServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("media_store_path: \"{}\"\n{extra}", dir.path().display());
    (TestServer::with_config(db, &config).await, dir)
}

/// A raw exchange: status, headers and body bytes.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
    #[track_caller]
    pub(crate) fn assert_error(&self, status: StatusCode, errcode: &str) {
        assert_error(&(self.status, self.json()), status, errcode);
    }
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(app: &Router, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(Method::GET).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    send(app, req.body(Body::empty()).unwrap()).await
}

/// Uploads and returns the `mxc://` URI.
pub(crate) async fn upload(
    app: &Router,
    token: &str,
    content_type: &str,
    file_name: Option<&str>,
    bytes: Vec<u8>,
) -> String {
    let reply = upload_raw(app, token, content_type, file_name, bytes).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    reply.json()["content_uri"].as_str().unwrap().to_owned()
}

pub(crate) async fn upload_raw(
    app: &Router,
    token: &str,
    content_type: &str,
    file_name: Option<&str>,
    bytes: Vec<u8>,
) -> Reply {
    let path = match file_name {
        Some(name) => format!(
            "/_matrix/media/v3/upload?filename={}",
            url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>()
        ),
        None => "/_matrix/media/v3/upload".to_owned(),
    };
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(Body::from(bytes))
        .unwrap();
    send(app, req).await
}

/// `mxc://server/id` -> `server/id`.
pub(crate) fn mxc_path(mxc: &str) -> &str {
    mxc.strip_prefix("mxc://").unwrap()
}

on_both_backends!(
    an_upload_downloads_with_its_bytes_type_and_name,
    legacy_routes_serve_only_media_from_before_authenticated_media,
    identical_uploads_are_stored_once,
    uploads_over_max_upload_size_are_m_too_large_while_streaming,
    downloads_carry_the_security_headers_and_inline_only_safe_types,
    async_uploads_create_then_put_once_by_their_creator,
    remote_and_malformed_media_ids_are_not_found,
    the_media_config_reports_the_upload_limit,
);

async fn an_upload_downloads_with_its_bytes_type_and_name(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob, _) = s.register("bob", "pw").await;
    let bytes = b"hello, media".to_vec();
    let mxc = upload(
        &s.app,
        &token,
        "text/plain",
        Some("hello.txt"),
        bytes.clone(),
    )
    .await;
    assert!(mxc.starts_with("mxc://test.local/"), "{mxc}");

    let path = format!("/_matrix/client/v1/media/download/{}", mxc_path(&mxc));
    let reply = get(&s.app, &path, Some(&bob)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], &bytes[..]);
    assert_eq!(reply.header("content-type"), "text/plain");
    assert_eq!(reply.header("content-length"), bytes.len().to_string());
    assert_eq!(
        reply.header("content-disposition"),
        "inline; filename=\"hello.txt\""
    );

    // The file name in the path wins; a trailing slash (matrix-nio sends one) is the same file.
    let reply = get(&s.app, &format!("{path}/other%20name.txt"), Some(&bob)).await;
    assert_eq!(&reply.body[..], &bytes[..]);
    assert_eq!(
        reply.header("content-disposition"),
        "inline; filename=\"other name.txt\""
    );
    assert_eq!(
        get(&s.app, &format!("{path}/"), Some(&bob)).await.body,
        bytes
    );

    // The token may come in the query, as matrix-nio sends it.
    let reply = get(&s.app, &format!("{path}?access_token={bob}"), None).await;
    assert_eq!(reply.status, StatusCode::OK);

    get(&s.app, &path, None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
    get(&s.app, &path, Some("nonsense"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
    let reply = upload_raw(&s.app, "nonsense", "text/plain", None, b"x".to_vec()).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "M_UNKNOWN_TOKEN");
}

async fn legacy_routes_serve_only_media_from_before_authenticated_media(db: Db) {
    let (before, _media) = media_server(db, "enable_authenticated_media: false\n").await;
    let (_, token, _) = before.register("alice", "pw").await;
    let old = upload(
        &before.app,
        &token,
        "image/png",
        None,
        b"old bytes".to_vec(),
    )
    .await;
    let legacy = |mxc: &str| format!("/_matrix/media/v3/download/{}", mxc_path(mxc));
    let reply = get(&before.app, &legacy(&old), None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(&reply.body[..], b"old bytes");
    let r0 = format!("/_matrix/media/r0/download/{}", mxc_path(&old));
    assert_eq!(get(&before.app, &r0, None).await.status, StatusCode::OK);

    // The same database and store, now with authenticated media switched on.
    let text = before.config_text.replace(
        "enable_authenticated_media: false",
        "enable_authenticated_media: true",
    );
    let config = homeserver::Config::parse(&text, "test.yaml").unwrap();
    let after = homeserver::app(homeserver::services(config).await.unwrap());
    let new = upload(&after, &token, "image/png", None, b"new bytes".to_vec()).await;

    assert_eq!(
        get(&after, &legacy(&old), None).await.body,
        &b"old bytes"[..]
    );
    get(&after, &legacy(&new), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    let thumb = format!(
        "/_matrix/media/v3/thumbnail/{}?width=32&height=32",
        mxc_path(&new)
    );
    get(&after, &thumb, None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    for mxc in [&old, &new] {
        let path = format!("/_matrix/client/v1/media/download/{}", mxc_path(mxc));
        assert_eq!(
            get(&after, &path, Some(&token)).await.status,
            StatusCode::OK
        );
    }
}

async fn identical_uploads_are_stored_once(db: Db) {
    let (s, media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let bytes = vec![7u8; 10_000];
    let a = upload(
        &s.app,
        &token,
        "application/octet-stream",
        None,
        bytes.clone(),
    )
    .await;
    let b = upload(&s.app, &token, "text/plain", Some("b.txt"), bytes.clone()).await;
    assert_ne!(a, b, "each upload gets its own mxc URI");
    let files: Vec<_> = walk(&media.path().join("content"));
    assert_eq!(files.len(), 1, "one file on disk: {files:?}");
    // Each keeps its own metadata.
    let reply = get(
        &s.app,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(&b)),
        Some(&token),
    )
    .await;
    assert_eq!(reply.header("content-type"), "text/plain");
    assert_eq!(reply.body.len(), 10_000);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

async fn uploads_over_max_upload_size_are_m_too_large_while_streaming(db: Db) {
    let (s, media) = media_server(db, "max_upload_size: 1K\n").await;
    let (_, token, _) = s.register("alice", "pw").await;
    // Exactly the limit is fine.
    upload(&s.app, &token, "text/plain", None, vec![b'a'; 1024]).await;

    // No Content-Length: the stream is cut off as it passes the limit.
    let chunks: Vec<Result<Bytes, std::io::Error>> =
        (0..100).map(|_| Ok(Bytes::from(vec![b'b'; 100]))).collect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/_matrix/media/v3/upload")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    let reply = send(&s.app, req).await;
    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    // An announced length over the limit is refused before reading.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/_matrix/media/v3/upload")
        .header("authorization", format!("Bearer {token}"))
        .header("content-length", "5000")
        .body(Body::from(vec![b'c'; 5000]))
        .unwrap();
    send(&s.app, req)
        .await
        .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "M_TOO_LARGE");

    assert_eq!(walk(&media.path().join("content")).len(), 1);
    assert!(
        walk(&media.path().join("tmp")).is_empty(),
        "refused uploads leave nothing behind"
    );
}

const CSP: &str = "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
                   style-src 'unsafe-inline'; media-src 'self'; object-src 'self';";

async fn downloads_carry_the_security_headers_and_inline_only_safe_types(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let html = upload(
        &s.app,
        &token,
        "text/html",
        Some("page.html"),
        b"<script>alert(1)</script>".to_vec(),
    )
    .await;
    let svg = upload(&s.app, &token, "image/svg+xml", None, b"<svg/>".to_vec()).await;
    let png = upload(&s.app, &token, "image/png", Some("p.png"), b"png".to_vec()).await;

    let download = |mxc: &str| format!("/_matrix/client/v1/media/download/{}", mxc_path(mxc));
    let req = Request::builder()
        .uri(download(&html))
        .header("authorization", format!("Bearer {token}"))
        .header("origin", "https://app.element.io")
        .body(Body::empty())
        .unwrap();
    let reply = send(&s.app, req).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("content-security-policy"), CSP);
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.header("cross-origin-resource-policy"), "cross-origin");
    assert_eq!(reply.header("access-control-allow-origin"), "*");
    assert_eq!(
        reply.header("content-disposition"),
        "attachment; filename=\"page.html\""
    );
    assert_eq!(reply.header("content-type"), "text/html");

    let reply = get(&s.app, &download(&svg), Some(&token)).await;
    assert_eq!(reply.header("content-disposition"), "attachment");
    let reply = get(&s.app, &download(&png), Some(&token)).await;
    assert_eq!(
        reply.header("content-disposition"),
        "inline; filename=\"p.png\""
    );
    assert_eq!(reply.header("content-security-policy"), CSP);

    // Errors from the media routes carry the policy too.
    let reply = get(
        &s.app,
        "/_matrix/client/v1/media/download/test.local/missing",
        Some(&token),
    )
    .await;
    reply.assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    assert_eq!(reply.header("content-security-policy"), CSP);
}

async fn async_uploads_create_then_put_once_by_their_creator(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let (_, bob, _) = s.register("bob", "pw").await;
    let (status, body) = s
        .post(
            "/_matrix/media/v1/create",
            Some(&token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mxc = body["content_uri"].as_str().unwrap().to_owned();
    assert!(body["unused_expires_at"].as_u64().unwrap() > 0);
    let download = format!(
        "/_matrix/client/v1/media/download/{}?timeout_ms=100",
        mxc_path(&mxc)
    );
    get(&s.app, &download, Some(&token))
        .await
        .assert_error(StatusCode::GATEWAY_TIMEOUT, "M_NOT_YET_UPLOADED");

    let put = |who: &str, bytes: &'static [u8]| {
        Request::builder()
            .method(Method::PUT)
            .uri(format!(
                "/_matrix/media/v3/upload/{}?filename=late.txt",
                mxc_path(&mxc)
            ))
            .header("authorization", format!("Bearer {who}"))
            .header("content-type", "text/plain")
            .body(Body::from(bytes))
            .unwrap()
    };
    send(&s.app, put(&bob, b"mallory"))
        .await
        .assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");

    // A download that waits sees the bytes when they arrive.
    let app = s.app.clone();
    let waiting = tokio::spawn({
        let path = download.replace("timeout_ms=100", "timeout_ms=10000");
        let token = token.clone();
        async move { get(&app, &path, Some(&token)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let reply = send(&s.app, put(&token, b"late bytes")).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let waited = waiting.await.unwrap();
    assert_eq!(waited.status, StatusCode::OK);
    assert_eq!(&waited.body[..], b"late bytes");
    assert_eq!(
        waited.header("content-disposition"),
        "inline; filename=\"late.txt\""
    );

    send(&s.app, put(&token, b"again"))
        .await
        .assert_error(StatusCode::CONFLICT, "M_CANNOT_OVERWRITE_MEDIA");
    let unknown = Request::builder()
        .method(Method::PUT)
        .uri("/_matrix/media/v3/upload/test.local/NoSuchMedia")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from("x"))
        .unwrap();
    send(&s.app, unknown)
        .await
        .assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");

    // Pending uploads are limited per user.
    for _ in 0..5 {
        s.post(
            "/_matrix/media/v1/create",
            Some(&bob),
            serde_json::json!({}),
        )
        .await;
    }
    let r = s
        .post(
            "/_matrix/media/v1/create",
            Some(&bob),
            serde_json::json!({}),
        )
        .await;
    assert_error(&r, StatusCode::TOO_MANY_REQUESTS, "M_LIMIT_EXCEEDED");
}

async fn remote_and_malformed_media_ids_are_not_found(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    for path in [
        "/_matrix/client/v1/media/download/matrix.org/abcdef",
        "/_matrix/client/v1/media/download/test.local/..%2F..%2Fetc%2Fpasswd",
        "/_matrix/client/v1/media/download/test.local/a.b",
        "/_matrix/client/v1/media/thumbnail/matrix.org/abcdef?width=32&height=32",
        "/_matrix/media/v3/download/matrix.org/abcdef",
    ] {
        get(&s.app, path, Some(&token))
            .await
            .assert_error(StatusCode::NOT_FOUND, "M_NOT_FOUND");
    }
}

async fn the_media_config_reports_the_upload_limit(db: Db) {
    let (s, _media) = media_server(db, "max_upload_size: 10M\n").await;
    let (_, token, _) = s.register("alice", "pw").await;
    for path in [
        "/_matrix/client/v1/media/config",
        "/_matrix/media/v3/config",
    ] {
        let (status, body) = s.get(path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["m.upload.size"], 10 * 1024 * 1024);
    }
    assert_error(
        &s.get("/_matrix/client/v1/media/config", None).await,
        StatusCode::UNAUTHORIZED,
        "M_MISSING_TOKEN",
    );
}
