//! `GET /_irc/media/{signed}/{filename}`: a signed link checked, then the file streamed from the
//! homeserver with the appservice token.
//!
//! | case | answer |
//! | --- | --- |
//! | changed, malformed or another key's link | 403, text |
//! | expired | 410, text |
//! | the homeserver has no such media | 404, text |
//! | the homeserver fails or is unreachable | 502, text (the cause logged) |
//! | the bridge has not started yet | 503, text |
//! | otherwise | 200, the bytes as they arrive, never the whole file in memory |
//!
//! A served file carries the homeserver's `Content-Type` and `Content-Length`, a
//! `Content-Disposition` from the signed file name (`inline` only for the types the spec lists
//! as safe to render, else `attachment`), `X-Content-Type-Options: nosniff` and a sandboxing
//! `Content-Security-Policy`, so nothing served can run script on the origin it is served from.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::link::{LinkError, PATH_PREFIX};
use super::{MediaProxy, unix_now};

/// The spec's recommended policy for served media (as Synapse sends it, `media-src 'self'` so
/// browsers play audio and video), without the obsolete `plugin-types`.
pub const CONTENT_SECURITY_POLICY: &str = "sandbox; default-src 'none'; script-src 'none'; \
     style-src 'unsafe-inline'; media-src 'self'; object-src 'self'";

/// Types served `inline`: the spec's list of types safe to render (client-server API, "Serving
/// inline content"). Everything else is an `attachment`.
const INLINE_TYPES: &[&str] = &[
    "text/css",
    "text/plain",
    "text/csv",
    "application/json",
    "application/ld+json",
    "image/jpeg",
    "image/gif",
    "image/png",
    "image/apng",
    "image/webp",
    "image/avif",
    "video/mp4",
    "video/webm",
    "video/ogg",
    "video/quicktime",
    "audio/mp4",
    "audio/webm",
    "audio/aac",
    "audio/mpeg",
    "audio/ogg",
    "audio/wave",
    "audio/wav",
    "audio/x-wav",
    "audio/x-pn-wav",
    "audio/flac",
    "audio/x-flac",
];

/// RFC 8187 `attr-char`s kept as they are in `filename*`.
const ATTR_CHAR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// Where media comes from: the homeserver and the appservice token.
#[derive(Debug, Clone)]
pub(crate) struct Upstream {
    pub(crate) base_url: String,
    pub(crate) as_token: String,
}

/// The HTTP client for the homeserver: no overall timeout (a big file takes its time), but one
/// for connecting and one for each read, so a stalled homeserver does not hold a download open.
pub(crate) fn upstream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client with timeouts builds")
}

impl MediaProxy {
    /// The route serving this proxy's links; merge it into the appservice router (the IRC
    /// network hands it to the SDK through `Network::routes`).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(
                &format!("{PATH_PREFIX}/{{signed}}/{{filename}}"),
                get(download),
            )
            .with_state(self.clone())
    }
}

/// `GET /_irc/media/{signed}/{filename}`
async fn download(
    State(proxy): State<Arc<MediaProxy>>,
    Path((signed, filename)): Path<(String, String)>,
) -> Response {
    let media = match proxy.key.verify(&signed, &filename, unix_now()) {
        Ok(media) => media,
        Err(LinkError::Expired) => {
            return text(
                StatusCode::GONE,
                "This link has expired. Ask in the channel for the file again.",
            );
        }
        Err(LinkError::Invalid) => {
            return text(
                StatusCode::FORBIDDEN,
                "This link is not valid: it was changed, or it was not made by this bridge.",
            );
        }
    };
    let Some(upstream) = proxy.upstream.get() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "The bridge is starting; try again in a moment.",
        );
    };
    let segment = |part: &str| utf8_percent_encode(part, NON_ALPHANUMERIC).to_string();
    let url = format!(
        "{}/_matrix/client/v1/media/download/{}/{}",
        upstream.base_url,
        segment(&media.server),
        segment(&media.media_id)
    );
    let answer = match proxy
        .http
        .get(&url)
        .bearer_auth(&upstream.as_token)
        .send()
        .await
    {
        Ok(answer) => answer,
        Err(e) => {
            tracing::warn!(error = %e, server = media.server, media_id = media.media_id, "cannot reach the homeserver for media");
            return text(
                StatusCode::BAD_GATEWAY,
                "The homeserver cannot be reached; try again later.",
            );
        }
    };
    match answer.status() {
        status if status.is_success() => {}
        reqwest::StatusCode::NOT_FOUND => {
            return text(
                StatusCode::NOT_FOUND,
                "This file is not on the homeserver (any more).",
            );
        }
        status => {
            tracing::warn!(%status, server = media.server, media_id = media.media_id, "the homeserver refused media");
            return text(
                StatusCode::BAD_GATEWAY,
                "The homeserver did not give this file; try again later.",
            );
        }
    }
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| HeaderValue::from_str(v).ok())
        .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"));
    let length = answer.content_length();
    let disposition = content_disposition(content_type.to_str().unwrap_or_default(), &filename);
    let mut response = Response::new(Body::from_stream(chunks(answer)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    if let Some(length) = length {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    security_headers(headers);
    response
}

/// The homeserver's body as a stream of chunks, as they arrive.
fn chunks(
    answer: reqwest::Response,
) -> impl futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> {
    futures::stream::unfold(Some(answer), |answer| async move {
        let mut answer = answer?;
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(answer))),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "media download broke off");
                Some((Err(e), None))
            }
        }
    })
}

/// `inline` for the spec's safe types, else `attachment`; the name in ASCII (`filename`) and in
/// full (`filename*`, RFC 6266 / 8187).
pub fn content_disposition(content_type: &str, filename: &str) -> String {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let kind = if INLINE_TYPES.contains(&essence.as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let ascii: String = filename
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    format!(
        "{kind}; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(filename, ATTR_CHAR)
    )
}

fn security_headers(headers: &mut axum::http::HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // The spec asks media to be embeddable from other origins.
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// A plain-text answer, with the same headers as a file.
fn text(status: StatusCode, message: &str) -> Response {
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response();
    security_headers(response.headers_mut());
    response
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::media_proxy::link::SigningKey;

    fn proxy(ttl: Option<Duration>) -> Arc<MediaProxy> {
        Arc::new(MediaProxy::new(
            SigningKey::new(vec![9; 32]),
            "https://media.example.org/",
            ttl,
        ))
    }

    async fn get(
        proxy: &Arc<MediaProxy>,
        url: &str,
    ) -> (StatusCode, axum::http::HeaderMap, String) {
        let path = url.strip_prefix("https://media.example.org").unwrap();
        let response = proxy
            .router()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), 1 << 16).await.unwrap();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_tampered_link_is_403_and_an_expired_one_410_with_a_text_body() {
        let proxy = proxy(Some(Duration::from_secs(3600)));
        let link = proxy.link("mxc://example.org/abc", "cat.png").unwrap();
        assert!(
            link.starts_with("https://media.example.org/_irc/media/"),
            "{link}"
        );
        let renamed = link.replace("/cat.png", "/cat.html");
        let (status, headers, body) = get(&proxy, &renamed).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("not valid"), "{body}");
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain; charset=utf-8");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");

        let other = MediaProxy::new(
            SigningKey::new(vec![1; 32]),
            "https://media.example.org",
            None,
        );
        let foreign = other.link("mxc://example.org/abc", "cat.png").unwrap();
        assert_eq!(get(&proxy, &foreign).await.0, StatusCode::FORBIDDEN);

        // A link that expired a second ago, signed by this proxy's key.
        let path = proxy
            .key
            .sign("example.org", "abc", Some(unix_now() - 1), "cat.png")
            .unwrap();
        let (status, _, body) = get(
            &proxy,
            &format!("https://media.example.org{PATH_PREFIX}/{path}"),
        )
        .await;
        assert_eq!(status, StatusCode::GONE);
        assert!(body.contains("expired"), "{body}");
    }

    #[tokio::test]
    async fn a_valid_link_before_the_bridge_started_is_503() {
        let proxy = proxy(None);
        let link = proxy.link("mxc://example.org/abc", "a b.txt").unwrap();
        assert!(link.ends_with("/a%20b.txt"), "{link}");
        assert_eq!(get(&proxy, &link).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn only_the_spec_safe_types_are_inline_and_names_are_quoted_safely() {
        assert_eq!(
            content_disposition("image/PNG; charset=x", "cat.png"),
            "inline; filename=\"cat.png\"; filename*=UTF-8''cat.png"
        );
        assert_eq!(
            content_disposition("text/html", "x\"y é.html"),
            "attachment; filename=\"x_y _.html\"; filename*=UTF-8''x%22y%20%C3%A9.html"
        );
        assert!(content_disposition("image/svg+xml", "a.svg").starts_with("attachment;"));
    }
}
