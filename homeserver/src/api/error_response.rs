//! `Error` as an HTTP response: the Matrix error body, `Retry-After` for rate limits.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use ruma::api::error::{ErrorKind, LimitExceededErrorData, RetryAfter, StandardErrorBody};

use crate::error::Error;

/// An error with a status other than its kind's usual one (405 for a wrong method).
pub(crate) struct WithStatus(Error, StatusCode);

impl Error {
    pub(crate) fn with_status(self, status: StatusCode) -> WithStatus {
        WithStatus(self, status)
    }
}

impl IntoResponse for WithStatus {
    fn into_response(self) -> Response {
        let mut r = self.0.into_response();
        *r.status_mut() = self.1;
        r
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let (body, retry) = match self {
            Error::Matrix { kind, message } => {
                let retry = match &kind {
                    ErrorKind::LimitExceeded(LimitExceededErrorData {
                        retry_after: Some(RetryAfter::Delay(d)),
                        ..
                    }) => Some(d.as_secs().max(1)),
                    _ => None,
                };
                let soft_logout = match &kind {
                    ErrorKind::UnknownToken(data) => Some(data.soft_logout),
                    _ => None,
                };
                let mut value = serde_json::to_value(StandardErrorBody::new(kind, message))
                    .unwrap_or_else(
                        |_| serde_json::json!({"errcode": "M_UNKNOWN", "error": "Internal error"}),
                    );
                // ruma omits `soft_logout: false`; clients (and Synapse) expect it spelled out.
                if let Some(soft) = soft_logout {
                    value["soft_logout"] = soft.into();
                }
                let body = value.to_string().into_bytes();
                (body, retry)
            }
            Error::Uiaa(value) => (value.to_string().into_bytes(), None),
            Error::Conflict(message) => (
                serde_json::json!({"errcode": "M_UNKNOWN", "error": message})
                    .to_string()
                    .into_bytes(),
                None,
            ),
            Error::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    br#"{"errcode":"M_UNKNOWN","error":"Internal server error"}"#.to_vec(),
                    None,
                )
            }
        };
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
