//! `Ruma<T>`: parses any ruma request type from an axum request, authenticating the caller as the
//! endpoint's auth scheme asks; `RumaResponse<T>` sends any ruma response.

use std::net::{IpAddr, SocketAddr};

use axum::{
    body::Body,
    extract::{ConnectInfo, FromRequest, RawPathParams, Request},
    response::{IntoResponse, Response},
};
use bytes::{Bytes, BytesMut};
use http::{Method, request::Parts};
use http_body_util::{BodyExt, Limited};
use ruma::api::{
    IncomingRequest, IncomingRequestExt, OutgoingResponse, OutgoingResponseExt,
    auth_scheme::{
        AccessToken, AccessTokenOptional, AppserviceToken, AppserviceTokenOptional, NoAccessToken,
        NoAuthentication,
    },
    error::{DeserializationError, ErrorKind, FromHttpRequestError},
};

use crate::{
    error::Error,
    service::{Services, accounts::Requester},
};

/// Marks a route registered without its last path parameter (an empty state key).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EmptyLastArg;

/// A parsed, authenticated request.
pub(crate) struct Ruma<T> {
    pub(crate) body: T,
    pub(crate) requester: Option<Requester>,
    pub(crate) ip: String,
}

impl<T> Ruma<T> {
    /// The caller, for endpoints whose scheme requires a token.
    pub(crate) fn requester(&self) -> &Requester {
        self.requester
            .as_ref()
            .expect("the extractor authenticated this endpoint")
    }
}

/// Whether an endpoint needs an access token.
pub(crate) enum TokenNeed {
    None,
    Optional,
    Required,
}

/// Maps ruma's auth scheme types to what the extractor must do.
pub(crate) trait AuthNeed {
    const NEED: TokenNeed;
}
impl AuthNeed for NoAuthentication {
    const NEED: TokenNeed = TokenNeed::None;
}
impl AuthNeed for NoAccessToken {
    const NEED: TokenNeed = TokenNeed::None;
}
impl AuthNeed for AccessTokenOptional {
    const NEED: TokenNeed = TokenNeed::Optional;
}
impl AuthNeed for AccessToken {
    const NEED: TokenNeed = TokenNeed::Required;
}
impl AuthNeed for AppserviceToken {
    const NEED: TokenNeed = TokenNeed::Required;
}
impl AuthNeed for AppserviceTokenOptional {
    const NEED: TokenNeed = TokenNeed::Optional;
}

impl<T> FromRequest<Services> for Ruma<T>
where
    T: IncomingRequest + Send,
    T::Authentication: AuthNeed,
{
    type Rejection = Error;

    async fn from_request(req: Request, services: &Services) -> Result<Self, Error> {
        let (mut parts, body) = req.into_parts();
        let params = RawPathParams::from_request_parts(&mut parts, services)
            .await
            .map_err(|e| Error::invalid_param(format!("Bad path: {e}")))?;
        let ip = client_ip(&parts, services);
        let token = access_token(&parts)?;
        let requester = match (<T::Authentication as AuthNeed>::NEED, token) {
            (TokenNeed::None, _) | (TokenNeed::Optional, None) => None,
            (_, Some(token)) => {
                let requester = services.authenticate(&token).await?;
                if requester.appservice.is_none() {
                    services.device_seen(&requester.user_id, &requester.device_id, &ip);
                }
                match requester.appservice {
                    Some(_) => Some(masquerade(&parts, services, requester).await?),
                    None => Some(requester),
                }
            }
            (TokenNeed::Required, None) => {
                return Err(Error::new(ErrorKind::MissingToken, "Missing access token"));
            }
        };
        let bytes = read_body(body, services.config.max_request_body_size.0 as usize).await?;
        let bytes = json_body(&parts.method, bytes)?;
        let mut args: Vec<&str> = params.iter().map(|(_, v)| v).collect();
        if parts.extensions.get::<EmptyLastArg>().is_some() {
            args.push("");
        }
        let request = http::Request::from_parts(parts, &bytes[..]);
        let body = T::try_from_http_request(request, &args).map_err(parse_error)?;
        Ok(Ruma {
            body,
            requester,
            ip,
        })
    }
}

use axum::extract::FromRequestParts;

/// An appservice acting as one of its users: `?user_id=` and `?device_id=` (or MSC3202's
/// `org.matrix.msc3202.device_id`, which bridges still send).
async fn masquerade(
    parts: &Parts,
    services: &Services,
    requester: Requester,
) -> Result<Requester, Error> {
    let query = parts.uri.query().unwrap_or_default();
    let mut user_id = None;
    let mut device_id = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "user_id" => user_id = Some(v.into_owned()),
            "device_id" | "org.matrix.msc3202.device_id" => device_id = Some(v.into_owned()),
            _ => {}
        }
    }
    services
        .masquerade(requester, user_id.as_deref(), device_id.as_deref())
        .await
}

/// The Bearer header, else the `access_token` query parameter.
pub(crate) fn access_token(parts: &Parts) -> Result<Option<String>, Error> {
    if let Some(value) = parts.headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().unwrap_or_default();
        return match value.strip_prefix("Bearer ") {
            Some(token) => Ok(Some(token.trim().to_owned())),
            None => Err(Error::new(
                ErrorKind::MissingToken,
                "Invalid Authorization header: expected `Bearer <token>`",
            )),
        };
    }
    let query = parts.uri.query().unwrap_or_default();
    Ok(url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| v.into_owned()))
}

/// The peer address, or the first `X-Forwarded-For` hop when a listener says `x_forwarded`.
pub(crate) fn client_ip(parts: &Parts, services: &Services) -> String {
    let trust_forwarded = services.config.listeners.iter().any(|l| l.x_forwarded);
    if trust_forwarded
        && let Some(ip) = parts
            .headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok())
    {
        return ip.to_string();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Reads the body up to `limit` bytes; past it, `M_TOO_LARGE`.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Bytes, Error> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::new(
            ErrorKind::TooLarge,
            format!("Request body is larger than {limit} bytes"),
        )),
        Err(e) => Err(Error::bad_json(format!(
            "Could not read the request body: {e}"
        ))),
    }
}

/// An empty body on a method that carries one means `{}`; anything else must be JSON.
fn json_body(method: &Method, bytes: Bytes) -> Result<Bytes, Error> {
    if !matches!(*method, Method::POST | Method::PUT) {
        return Ok(bytes);
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Bytes::from_static(b"{}"));
    }
    match serde_json::from_slice::<serde::de::IgnoredAny>(&bytes) {
        Ok(_) => Ok(bytes),
        Err(e) => Err(Error::new(
            ErrorKind::NotJson,
            format!("Content not JSON: {e}"),
        )),
    }
}

fn parse_error(err: FromHttpRequestError) -> Error {
    match err {
        FromHttpRequestError::Deserialization(e) => {
            let text = e.to_string();
            match e {
                DeserializationError::Json(_) if text.contains("missing field") => {
                    Error::missing_param(text)
                }
                DeserializationError::Json(_) => Error::bad_json(text),
                DeserializationError::Query(_) if text.contains("missing field") => {
                    Error::missing_param(text)
                }
                _ => Error::invalid_param(text),
            }
        }
        FromHttpRequestError::MethodMismatch { .. } => Error::unrecognized("Unrecognized request"),
        other => Error::bad_json(other.to_string()),
    }
}

/// Any ruma response as an axum response.
pub(crate) struct RumaResponse<T>(pub(crate) T);

impl<T: OutgoingResponse> IntoResponse for RumaResponse<T> {
    fn into_response(self) -> Response {
        match self.0.try_into_http_response::<BytesMut>() {
            Ok(r) => r.map(|b| Body::from(b.freeze())).into_response(),
            Err(e) => Error::internal(format!("serializing a response: {e}")).into_response(),
        }
    }
}
