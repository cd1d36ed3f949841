//! The homeserver's error: a Matrix `ErrorKind` and a message. One table maps kinds to HTTP status.

use std::time::Duration;

use http::StatusCode;
use ruma::api::error::{ErrorKind, LimitExceededErrorData, RetryAfter, UnknownTokenErrorData};

use crate::store::StoreError;

/// An error that reaches the client as a Matrix error body.
#[derive(Debug)]
pub enum Error {
    /// A Matrix error with its errcode.
    Matrix { kind: ErrorKind, message: String },
    /// User-interactive auth must continue: 401 with the flows body.
    Uiaa(serde_json::Value),
    /// The resource exists already (409, `M_UNKNOWN`), e.g. a taken room alias.
    Conflict(String),
    /// Something broke inside; logged, and answered as `M_UNKNOWN` with nothing internal.
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error::Matrix {
            kind,
            message: message.into(),
        }
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, message)
    }
    pub fn bad_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadJson, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    pub fn invalid_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParam, message)
    }
    pub fn missing_param(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingParam, message)
    }
    pub fn unrecognized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unrecognized, message)
    }
    pub fn unknown_token(soft_logout: bool, message: impl Into<String>) -> Self {
        let mut data = UnknownTokenErrorData::new();
        data.soft_logout = soft_logout;
        Self::new(ErrorKind::UnknownToken(data), message)
    }
    pub fn limit_exceeded(retry_after: Duration) -> Self {
        let mut data = LimitExceededErrorData::new();
        data.retry_after = Some(RetryAfter::Delay(retry_after));
        Self::new(ErrorKind::LimitExceeded(data), "Too many requests")
    }
    pub fn internal(message: impl std::fmt::Display) -> Self {
        Error::Internal(message.to_string())
    }

    /// The HTTP status for this error: the one table.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Matrix { kind, .. } => status_for(kind),
            Error::Uiaa(_) => StatusCode::UNAUTHORIZED,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

fn status_for(kind: &ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::Forbidden
        | ErrorKind::UserDeactivated
        | ErrorKind::GuestAccessForbidden
        | ErrorKind::ThreepidDenied
        | ErrorKind::ThreepidAuthFailed => StatusCode::FORBIDDEN,
        ErrorKind::MissingToken | ErrorKind::UnknownToken(_) | ErrorKind::Unauthorized => {
            StatusCode::UNAUTHORIZED
        }
        ErrorKind::NotFound | ErrorKind::Unrecognized => StatusCode::NOT_FOUND,
        ErrorKind::LimitExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::CannotOverwriteMedia => StatusCode::CONFLICT,
        ErrorKind::NotYetUploaded => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::ConnectionFailed | ErrorKind::BadStatus(_) => StatusCode::BAD_GATEWAY,
        ErrorKind::ConnectionTimeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::UrlNotSet => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_REQUEST,
    }
}

impl From<StoreError> for Error {
    fn from(err: StoreError) -> Self {
        Error::Internal(err.to_string())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Matrix { kind, message } => write!(f, "{}: {message}", kind.errcode()),
            Error::Uiaa(_) => f.write_str("user-interactive auth required"),
            Error::Conflict(m) => write!(f, "conflict: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}
