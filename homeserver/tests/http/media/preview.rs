//! URL previews of a page this test serves on 127.0.0.1: refused by the default blacklist,
//! allowed when it is emptied, and every redirect checked again.

use std::net::SocketAddr;

use axum::{Router, response::IntoResponse, routing::get as route_get};
use http::{StatusCode, header};

use super::{get, media_server, mxc_path};
use crate::support::Db;

on_both_backends!(
    a_page_on_loopback_is_refused_by_the_default_blacklist,
    with_an_empty_blacklist_the_page_is_previewed_and_its_image_stored,
    redirects_into_a_blacklisted_range_are_refused,
    previews_are_unrecognized_when_disabled,
);

const PAGE: &str = r#"<!doctype html><html><head>
<title>Causeway &amp; friends</title>
<meta property="og:description" content="A homeserver in Rust">
<meta property="og:image" content="/logo.png">
<meta property="og:type" content="website">
</head><body><p>Hello</p></body></html>"#;

fn logo() -> Vec<u8> {
    let image = image::RgbImage::from_pixel(48, 32, image::Rgb([0, 128, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A tiny web site on 127.0.0.1; `/away` redirects to the same port on 127.0.0.2.
async fn site() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/page",
            route_get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE) }),
        )
        .route(
            "/logo.png",
            route_get(|| async { ([(header::CONTENT_TYPE, "image/png")], logo()) }),
        )
        .route(
            "/hop",
            route_get(|| async { axum::response::Redirect::temporary("/page").into_response() }),
        )
        .route(
            "/away",
            route_get(move || async move {
                axum::response::Redirect::temporary(&format!(
                    "http://127.0.0.2:{}/page",
                    addr.port()
                ))
                .into_response()
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn preview_path(url: &str) -> String {
    format!(
        "/_matrix/client/v1/media/preview_url?url={}",
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    )
}

async fn a_page_on_loopback_is_refused_by_the_default_blacklist(db: Db) {
    let (s, _media) = media_server(db, "url_preview_enabled: true\n").await;
    let (_, token, _) = s.register("alice", "pw").await;
    let addr = site().await;
    // An IP literal, and a name that resolves to loopback (the resolver's filter).
    for url in [
        format!("http://{addr}/page"),
        format!("http://localhost:{}/page", addr.port()),
        format!("http://[::ffff:127.0.0.1]:{}/page", addr.port()),
    ] {
        let reply = get(&s.app, &preview_path(&url), Some(&token)).await;
        reply.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("url_preview_ip_range_blacklist"),
            "{url}: {:?}",
            reply.json()
        );
    }
}

async fn with_an_empty_blacklist_the_page_is_previewed_and_its_image_stored(db: Db) {
    let (s, _media) = media_server(
        db,
        "url_preview_enabled: true\nurl_preview_ip_range_blacklist: []\n",
    )
    .await;
    let (_, token, _) = s.register("alice", "pw").await;
    let addr = site().await;
    // Through one redirect, which is followed.
    let reply = get(
        &s.app,
        &preview_path(&format!("http://{addr}/hop")),
        Some(&token),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json());
    let og = reply.json();
    assert_eq!(og["og:title"], "Causeway & friends");
    assert_eq!(og["og:description"], "A homeserver in Rust");
    assert_eq!(og["og:type"], "website");
    assert_eq!(og["og:image:type"], "image/png");
    assert_eq!(og["og:image:width"], 48);
    assert_eq!(og["og:image:height"], 32);
    let logo = logo();
    assert_eq!(og["matrix:image:size"], logo.len());
    let mxc = og["og:image"].as_str().unwrap();
    let image = get(
        &s.app,
        &format!("/_matrix/client/v1/media/download/{}", mxc_path(mxc)),
        Some(&token),
    )
    .await;
    assert_eq!(image.body, logo, "the image is in our media store");

    // The legacy path answers too, from the cache.
    let again = get(
        &s.app,
        &format!(
            "/_matrix/media/v3/preview_url?url={}",
            url::form_urlencoded::byte_serialize(format!("http://{addr}/hop").as_bytes())
                .collect::<String>()
        ),
        Some(&token),
    )
    .await;
    assert_eq!(again.json(), og, "cached");

    get(&s.app, &preview_path("ftp://example.org/"), Some(&token))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "M_INVALID_PARAM");
    get(&s.app, &preview_path(&format!("http://{addr}/page")), None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "M_MISSING_TOKEN");
}

async fn redirects_into_a_blacklisted_range_are_refused(db: Db) {
    let (s, _media) = media_server(
        db,
        "url_preview_enabled: true\nurl_preview_ip_range_blacklist: ['127.0.0.2/32']\n",
    )
    .await;
    let (_, token, _) = s.register("alice", "pw").await;
    let addr = site().await;
    let ok = get(
        &s.app,
        &preview_path(&format!("http://{addr}/page")),
        Some(&token),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.json());
    let reply = get(
        &s.app,
        &preview_path(&format!("http://{addr}/away")),
        Some(&token),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, "M_FORBIDDEN");
}

async fn previews_are_unrecognized_when_disabled(db: Db) {
    let (s, _media) = media_server(db, "").await;
    let (_, token, _) = s.register("alice", "pw").await;
    get(&s.app, &preview_path("https://example.org/"), Some(&token))
        .await
        .assert_error(StatusCode::NOT_FOUND, "M_UNRECOGNIZED");
}
