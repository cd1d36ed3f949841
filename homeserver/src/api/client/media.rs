//! The content repository: upload, download, thumbnails, config, URL previews.
//!
//! Uploads and downloads do not go through `Ruma<T>`, which reads a whole JSON body: here bodies
//! are streamed both ways, so a 100 MB file never sits in memory. Every response of these routes,
//! errors included, carries the spec's security headers (see [`security_headers`]).

#![allow(deprecated)] // the legacy `/_matrix/media/v3` routes are deprecated, and still served

use std::{collections::HashMap, time::Duration};

use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Request, State},
    middleware::map_response,
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use http::{HeaderValue, StatusCode, header, request::Parts};
use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedMxcUri, UInt,
    api::{
        client::{
            authenticated_media::{
                get_media_config::v1 as auth_config, get_media_preview::v1 as auth_preview,
            },
            media::{
                create_mxc_uri::v1 as create_mxc_uri, get_media_config::v3 as legacy_config,
                get_media_preview::v3 as legacy_preview,
            },
        },
        error::ErrorKind,
    },
};
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::{
    api::{RouteExt, Ruma, RumaResponse, ruma_extract::access_token},
    error::{Error, Result},
    service::{
        Services,
        accounts::Requester,
        media::{Access, Content, Method, ThumbnailRequest, UploadInfo},
    },
};

pub(super) fn router() -> Router<Services> {
    let download = |access: Access| {
        move |state: State<Services>, path: Path<Vec<(String, String)>>, req: Request| {
            download(state, path, req, access)
        }
    };
    let thumbnail = |access: Access| {
        move |state: State<Services>, path: Path<Vec<(String, String)>>, req: Request| {
            thumbnail(state, path, req, access)
        }
    };
    let mut router = Router::new()
        .ruma::<create_mxc_uri::Request, _, _>(create)
        .ruma::<auth_config::Request, _, _>(config_authenticated)
        .ruma::<legacy_config::Request, _, _>(config_legacy)
        .ruma::<auth_preview::Request, _, _>(preview_authenticated)
        .ruma::<legacy_preview::Request, _, _>(preview_legacy);
    for version in ["r0", "v3"] {
        router = router
            .route(&format!("/_matrix/media/{version}/upload"), post(upload))
            .route(
                &format!("/_matrix/media/{version}/upload/{{server_name}}/{{media_id}}"),
                put(upload_async),
            );
        for suffix in ["", "/", "/{file_name}"] {
            router = router.route(
                &format!("/_matrix/media/{version}/download/{{server_name}}/{{media_id}}{suffix}"),
                get(download(Access::Legacy)),
            );
        }
        router = router.route(
            &format!("/_matrix/media/{version}/thumbnail/{{server_name}}/{{media_id}}"),
            get(thumbnail(Access::Legacy)),
        );
    }
    for suffix in ["", "/", "/{file_name}"] {
        router = router.route(
            &format!("/_matrix/client/v1/media/download/{{server_name}}/{{media_id}}{suffix}"),
            get(download(Access::Authenticated)),
        );
    }
    router
        .route(
            "/_matrix/client/v1/media/thumbnail/{server_name}/{media_id}",
            get(thumbnail(Access::Authenticated)),
        )
        .layer(map_response(security_headers))
}

/// The spec's Content-Security-Policy (plus `media-src 'self'` so a sandboxed video can play),
/// `nosniff` so browsers believe our Content-Type, and CORP so web clients can embed media.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; \
             style-src 'unsafe-inline'; media-src 'self'; object-src 'self';",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("cross-origin"),
    );
    response
}

/// The caller of a streaming route, which cannot use `Ruma<T>`.
async fn authenticate(parts: &Parts, s: &Services) -> Result<Requester> {
    match access_token(parts)? {
        Some(token) => s.authenticate(&token).await,
        None => Err(Error::new(ErrorKind::MissingToken, "Missing access token")),
    }
}

fn query(parts: &Parts) -> HashMap<String, String> {
    url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn upload_info<'a>(parts: &'a Parts, file_name: Option<&'a str>) -> UploadInfo<'a> {
    UploadInfo {
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty()),
        file_name: file_name.filter(|n| !n.is_empty()),
        declared_length: parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok()),
    }
}

/// `POST /_matrix/media/v3/upload`
async fn upload(State(s): State<Services>, req: Request) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let user = authenticate(&parts, &s).await?;
    let q = query(&parts);
    let info = upload_info(&parts, q.get("filename").map(String::as_str));
    let mxc = s
        .upload_media(&user.user_id, info, body.into_data_stream())
        .await?;
    Ok(Json(json!({ "content_uri": mxc })).into_response())
}

/// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`
async fn upload_async(
    State(s): State<Services>,
    Path((server_name, media_id)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let (parts, body) = req.into_parts();
    let user = authenticate(&parts, &s).await?;
    let q = query(&parts);
    let info = upload_info(&parts, q.get("filename").map(String::as_str));
    s.upload_pending_media(
        &user.user_id,
        &server_name,
        &media_id,
        info,
        body.into_data_stream(),
    )
    .await?;
    Ok(Json(json!({})).into_response())
}

/// `POST /_matrix/media/v1/create`
async fn create(
    State(s): State<Services>,
    req: Ruma<create_mxc_uri::Request>,
) -> Result<RumaResponse<create_mxc_uri::Response>> {
    let (mxc, expires) = s.create_pending_media(&req.requester().user_id).await?;
    let mut response = create_mxc_uri::Response::new(OwnedMxcUri::from(mxc));
    response.unused_expires_at = UInt::new(expires as u64).map(MilliSecondsSinceUnixEpoch);
    Ok(RumaResponse(response))
}

fn upload_size(s: &Services) -> UInt {
    UInt::new(s.config.max_upload_size.0).unwrap_or(UInt::MAX)
}

/// `GET /_matrix/client/v1/media/config`
async fn config_authenticated(
    State(s): State<Services>,
    _req: Ruma<auth_config::Request>,
) -> RumaResponse<auth_config::Response> {
    RumaResponse(auth_config::Response::new(upload_size(&s)))
}

/// `GET /_matrix/media/v3/config`
async fn config_legacy(
    State(s): State<Services>,
    _req: Ruma<legacy_config::Request>,
) -> RumaResponse<legacy_config::Response> {
    RumaResponse(legacy_config::Response::new(upload_size(&s)))
}

/// `GET /_matrix/client/v1/media/preview_url`
async fn preview_authenticated(
    State(s): State<Services>,
    req: Ruma<auth_preview::Request>,
) -> Result<RumaResponse<auth_preview::Response>> {
    let og = s
        .preview_url(&req.requester().user_id, &req.body.url)
        .await?;
    auth_preview::Response::from_serialize(&og)
        .map(RumaResponse)
        .map_err(Error::internal)
}

/// `GET /_matrix/media/v3/preview_url` (deprecated, still authenticated)
async fn preview_legacy(
    State(s): State<Services>,
    req: Ruma<legacy_preview::Request>,
) -> Result<RumaResponse<legacy_preview::Response>> {
    let og = s
        .preview_url(&req.requester().user_id, &req.body.url)
        .await?;
    legacy_preview::Response::from_serialize(&og)
        .map(RumaResponse)
        .map_err(Error::internal)
}

/// `server_name`, `media_id` and the optional `file_name` from the path.
fn media_path(params: &[(String, String)]) -> (String, String, Option<String>) {
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    (
        get("server_name").unwrap_or_default(),
        get("media_id").unwrap_or_default(),
        get("file_name"),
    )
}

/// `timeout_ms`: how long to wait for an async upload's bytes. Default 20 s, as the spec says.
fn wait(q: &HashMap<String, String>) -> Result<Duration> {
    match q.get("timeout_ms") {
        None => Ok(Duration::from_secs(20)),
        Some(v) => v
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| Error::invalid_param("timeout_ms must be a number of milliseconds")),
    }
}

/// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}[/{fileName}]`, and the legacy
/// `GET /_matrix/media/v3/download/...` without authentication.
async fn download(
    State(s): State<Services>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request,
    access: Access,
) -> Result<Response> {
    let (parts, _) = req.into_parts();
    if access == Access::Authenticated {
        authenticate(&parts, &s).await?;
    }
    let (server_name, media_id, file_name) = media_path(&params);
    let content = s
        .media_content(&server_name, &media_id, access, wait(&query(&parts))?)
        .await?;
    Ok(content_response(content, file_name))
}

/// `GET /_matrix/client/v1/media/thumbnail/{serverName}/{mediaId}`, and the legacy
/// `GET /_matrix/media/v3/thumbnail/...` without authentication.
async fn thumbnail(
    State(s): State<Services>,
    Path(params): Path<Vec<(String, String)>>,
    req: Request,
    access: Access,
) -> Result<Response> {
    let (parts, _) = req.into_parts();
    if access == Access::Authenticated {
        authenticate(&parts, &s).await?;
    }
    let (server_name, media_id, _) = media_path(&params);
    let q = query(&parts);
    let dimension = |key: &str| -> Result<u32> {
        q.get(key)
            .ok_or_else(|| Error::missing_param(format!("Missing `{key}` query parameter")))?
            .parse::<u32>()
            .map_err(|_| Error::invalid_param(format!("`{key}` must be a positive integer")))
    };
    let method = match q.get("method").map(String::as_str) {
        None | Some("scale") => Method::Scale,
        Some("crop") => Method::Crop,
        Some(_) => return Err(Error::invalid_param("`method` must be `crop` or `scale`")),
    };
    let request = ThumbnailRequest {
        width: dimension("width")?,
        height: dimension("height")?,
        method,
    };
    let content = s
        .media_thumbnail(&server_name, &media_id, request, access, wait(&q)?)
        .await?;
    Ok(content_response(content, None))
}

/// Content types a browser may show inline: the spec's list, none of which can run script.
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

fn is_inline(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    INLINE_TYPES.contains(&essence.as_str())
}

/// `inline` only for the allow-listed types, else `attachment`; the file name as RFC 6266 wants
/// it (`filename*=utf-8''…` when it is not plain ASCII).
fn content_disposition(content_type: &str, file_name: Option<&str>) -> String {
    let kind = if is_inline(content_type) {
        "inline"
    } else {
        "attachment"
    };
    let Some(name) = file_name.filter(|n| !n.is_empty()) else {
        return kind.to_owned();
    };
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b';' | b'%') || b == b' ');
    if plain {
        format!("{kind}; filename=\"{name}\"")
    } else {
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes())
            .collect::<String>()
            .replace('+', "%20");
        format!("{kind}; filename*=utf-8''{encoded}")
    }
}

fn content_response(content: Content, file_name: Option<String>) -> Response {
    let content_type = HeaderValue::from_str(&content.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let name = file_name.or(content.file_name);
    let disposition =
        content_disposition(content_type.to_str().unwrap_or_default(), name.as_deref());
    let mut response = Response::new(Body::from_stream(ReaderStream::with_capacity(
        content.file,
        64 * 1024,
    )));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(content.size));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    // Content never changes under an mxc URI.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400, immutable"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_harmless_types_are_inline() {
        assert_eq!(content_disposition("image/png", None), "inline");
        assert_eq!(
            content_disposition("text/plain; charset=utf-8", Some("a b.txt")),
            "inline; filename=\"a b.txt\""
        );
        assert_eq!(
            content_disposition("text/html", Some("x.html")),
            "attachment; filename=\"x.html\""
        );
        assert_eq!(
            content_disposition("image/svg+xml", None),
            "attachment",
            "SVG can carry script"
        );
        assert_eq!(
            content_disposition("application/pdf", Some("résumé \"1\".pdf")),
            "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%221%22.pdf"
        );
    }
}
