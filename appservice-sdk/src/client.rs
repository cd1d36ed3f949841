//! The HTTP client the bridge uses to talk to the homeserver as the appservice: ruma's typed
//! client-server requests, the `as_token`, `?user_id=` masquerading, and retries on 429 and 5xx.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ruma::UserId;
use ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma::api::path_builder::{PathBuilder, SinglePath, VersionHistory};
use ruma::api::{AppserviceUserIdentity, SupportedVersions};
use ruma::api::{IncomingResponseExt, OutgoingRequest, OutgoingRequestAppserviceExt};
use serde::Deserialize;

use crate::error::{Error, Result};

/// How often and how patiently a request is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Wait before the first retry of a 5xx or a transport error; doubled each time.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// What `/versions` said.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Versions {
    /// Spec versions, e.g. `v1.11`.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Unstable features and whether they are on.
    #[serde(default)]
    pub unstable_features: BTreeMap<String, bool>,
}

impl Versions {
    /// Whether an unstable feature is advertised and on.
    pub fn has_feature(&self, name: &str) -> bool {
        self.unstable_features.get(name).copied().unwrap_or(false)
    }
}

/// Client-server API access as the appservice; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    as_token: String,
    retry: RetryPolicy,
    versions: Arc<RwLock<(Versions, SupportedVersions)>>,
}

/// Picks the input a ruma path builder needs from the homeserver's supported versions.
pub trait PathInput: PathBuilder {
    /// The input for this path builder.
    fn input(versions: &SupportedVersions) -> Self::Input<'_>;
}

impl PathInput for SinglePath {
    fn input(_: &SupportedVersions) -> Self::Input<'_> {}
}

impl PathInput for VersionHistory {
    fn input(versions: &SupportedVersions) -> Self::Input<'_> {
        Cow::Borrowed(versions)
    }
}

/// Media downloaded with [`Client::download_mxc`].
#[derive(Debug, Clone)]
pub struct DownloadedMedia {
    /// The bytes.
    pub data: bytes::Bytes,
    /// The `Content-Type` the homeserver gave, if any.
    pub content_type: Option<String>,
}

#[derive(Deserialize)]
struct MatrixErrorBody {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    error: String,
    retry_after_ms: Option<u64>,
}

impl Client {
    /// A client for the homeserver at `base_url` (e.g. `http://127.0.0.1:8008`) using the
    /// registration's `as_token`. Until [`Client::discover_versions`] runs, the homeserver is
    /// assumed to speak spec v1.11.
    pub fn new(base_url: &str, as_token: &str) -> Self {
        let versions = Versions {
            versions: vec!["v1.11".to_owned()],
            ..Versions::default()
        };
        let supported =
            SupportedVersions::from_parts(&versions.versions, &versions.unstable_features);
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .expect("a default reqwest client builds"),
            base_url: base_url.trim_end_matches('/').to_owned(),
            as_token: as_token.to_owned(),
            retry: RetryPolicy::default(),
            versions: Arc::new(RwLock::new((versions, supported))),
        }
    }

    /// Replaces the retry policy.
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The homeserver's base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Asks the homeserver what it supports, and remembers it.
    ///
    /// `GET /_matrix/client/versions`
    pub async fn discover_versions(&self) -> Result<Versions> {
        let request = ruma::api::client::discovery::get_supported_versions::Request::new();
        let response = self.send(request, None).await?;
        let versions = Versions {
            versions: response.versions,
            unstable_features: response.unstable_features,
        };
        let supported =
            SupportedVersions::from_parts(&versions.versions, &versions.unstable_features);
        *self.versions.write().expect("versions lock") = (versions.clone(), supported);
        Ok(versions)
    }

    /// What the last [`Client::discover_versions`] found.
    pub fn versions(&self) -> Versions {
        self.versions.read().expect("versions lock").0.clone()
    }

    /// Sends a typed ruma request, as `user_id` if given (masquerading), retrying on 429/5xx.
    pub async fn send<R>(&self, request: R, user_id: Option<&UserId>) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        self.send_with_query(request, user_id, &[]).await
    }

    /// Like [`Client::send`], adding query parameters ruma does not model for the endpoint
    /// (e.g. `ts` on a redaction, which the spec allows on any appservice request).
    pub async fn send_with_query<R>(
        &self,
        request: R,
        user_id: Option<&UserId>,
        query: &[(&str, String)],
    ) -> Result<R::IncomingResponse>
    where
        R: OutgoingRequest,
        R::PathBuilder: PathInput,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
    {
        let identity = match user_id {
            Some(user_id) => AppserviceUserIdentity::new(user_id),
            None => AppserviceUserIdentity::default(),
        };
        let http_request = {
            let guard = self.versions.read().expect("versions lock");
            request
                .try_into_http_request_with_identity::<Vec<u8>>(
                    &self.base_url,
                    SendAccessToken::Always(&self.as_token),
                    identity,
                    R::PathBuilder::input(&guard.1),
                )
                .map_err(|e| Error::Protocol(format!("building request: {e}")))?
        };
        let (parts, body) = http_request.into_parts();
        let mut url = url::Url::parse(&parts.uri.to_string())
            .map_err(|e| Error::Protocol(format!("bad url: {e}")))?;
        for (key, value) in query {
            url.query_pairs_mut().append_pair(key, value);
        }
        let (status, headers, bytes) = self
            .execute(|| {
                let mut builder = self.http.request(parts.method.clone(), url.clone());
                for (name, value) in &parts.headers {
                    builder = builder.header(name, value);
                }
                builder.body(body.clone())
            })
            .await?;
        let mut response = http::Response::builder().status(status);
        if let Some(h) = response.headers_mut() {
            *h = headers;
        }
        let response = response
            .body(bytes.as_ref())
            .map_err(|e| Error::Protocol(format!("response: {e}")))?;
        R::IncomingResponse::try_from_http_response(response)
            .map_err(|e| Error::Protocol(format!("unexpected response: {e}")))
    }

    /// Sends a JSON request to a path not modelled by ruma (e.g. an unstable endpoint), as
    /// `user_id` if given, retrying on 429/5xx; returns the JSON answer.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        user_id: Option<&UserId>,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value> {
        let mut url = url::Url::parse(&format!("{}{path}", self.base_url))
            .map_err(|e| Error::Protocol(format!("bad url: {e}")))?;
        if let Some(user_id) = user_id {
            url.query_pairs_mut()
                .append_pair("user_id", user_id.as_str());
        }
        let (_, _, bytes) = self
            .execute(|| {
                let builder = self
                    .http
                    .request(method.clone(), url.clone())
                    .bearer_auth(&self.as_token);
                match body {
                    Some(body) => builder.json(body),
                    None => builder,
                }
            })
            .await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Object(Default::default()));
        }
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Downloads the media behind `mxc://server/media_id` (e.g. a file a Matrix user sent, to
    /// re-upload it to the remote network), retrying on 429/5xx like every request.
    ///
    /// `GET /_matrix/client/v1/media/download/{serverName}/{mediaId}` (authenticated media), and
    /// the legacy `GET /_matrix/media/v3/download/{serverName}/{mediaId}` when the homeserver
    /// does not know the former (an older Synapse or Dendrite answers 404 or 400).
    ///
    /// ```no_run
    /// # async fn demo(client: appservice_sdk::client::Client) -> appservice_sdk::Result<()> {
    /// let media = client.download_mxc("mxc://example.org/abc").await?;
    /// println!("{} bytes of {:?}", media.data.len(), media.content_type);
    /// # Ok(()) }
    /// ```
    pub async fn download_mxc(&self, mxc: &str) -> Result<DownloadedMedia> {
        let Some((server, media_id)) = mxc
            .strip_prefix("mxc://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(server, id)| !server.is_empty() && !id.is_empty() && !id.contains('/'))
        else {
            return Err(Error::Protocol(format!("not an mxc URI: {mxc}")));
        };
        let encode =
            |part: &str| url::form_urlencoded::byte_serialize(part.as_bytes()).collect::<String>();
        let tail = format!("{}/{}", encode(server), encode(media_id));
        let mut last = None;
        for prefix in [
            "/_matrix/client/v1/media/download",
            "/_matrix/media/v3/download",
        ] {
            let url = format!("{}{prefix}/{tail}", self.base_url);
            let outcome = self
                .execute(|| self.http.get(&url).bearer_auth(&self.as_token))
                .await;
            match outcome {
                Ok((_, headers, data)) => {
                    let content_type = headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    return Ok(DownloadedMedia { data, content_type });
                }
                Err(
                    e @ Error::Matrix {
                        status: 400 | 404 | 405,
                        ..
                    },
                ) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound(mxc.to_owned())))
    }

    /// Runs a request with the retry policy; returns status, headers and body of a success.
    async fn execute<F>(&self, build: F) -> Result<(u16, http::HeaderMap, bytes::Bytes)>
    where
        F: Fn() -> reqwest::RequestBuilder,
    {
        let mut backoff = self.retry.initial_backoff;
        let mut attempt = 1;
        loop {
            let outcome: Result<()> = match build().send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let bytes = response.bytes().await?;
                    if status < 400 {
                        return Ok((status, headers, bytes));
                    }
                    Err(matrix_error(status, &bytes))
                }
                Err(e) => Err(Error::Http(e)),
            };
            let err = outcome.expect_err("successes returned above");
            let wait = match &err {
                Error::Matrix {
                    status: 429,
                    retry_after,
                    ..
                } => Some(retry_after.unwrap_or(backoff)),
                Error::Matrix { status, .. } if *status >= 500 => Some(backoff),
                Error::Http(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    Some(backoff)
                }
                _ => None,
            };
            match wait {
                Some(wait) if attempt < self.retry.max_attempts => {
                    tracing::debug!(attempt, ?wait, error = %err, "retrying homeserver request");
                    tokio::time::sleep(wait.min(self.retry.max_backoff)).await;
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                    attempt += 1;
                }
                _ => return Err(err),
            }
        }
    }
}

fn matrix_error(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<MatrixErrorBody>(body) {
        Ok(b) => Error::Matrix {
            status,
            errcode: b.errcode,
            message: b.error,
            retry_after: b.retry_after_ms.map(Duration::from_millis),
        },
        Err(_) => Error::Matrix {
            status,
            errcode: "M_UNKNOWN".to_owned(),
            message: String::from_utf8_lossy(body).chars().take(200).collect(),
            retry_after: None,
        },
    }
}
