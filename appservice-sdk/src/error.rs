//! The SDK's error type.

use std::time::Duration;

/// Everything that can go wrong inside the SDK.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file (config, registration) failed.
    #[error("{path}: {error}")]
    Io {
        /// The file concerned.
        path: String,
        /// The underlying error (in the message, not chained as a source, so it reads once).
        error: std::io::Error,
    },
    /// A config or registration file could not be parsed.
    #[error("{path}: {message}")]
    Config {
        /// The file concerned.
        path: String,
        /// What was wrong, naming the key where known.
        message: String,
    },
    /// The database refused a query or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// The homeserver answered with a Matrix error.
    #[error("homeserver answered {status} {errcode}: {message}")]
    Matrix {
        /// HTTP status.
        status: u16,
        /// The Matrix `errcode`, e.g. `M_FORBIDDEN`.
        errcode: String,
        /// The `error` message.
        message: String,
        /// `retry_after_ms` on `M_LIMIT_EXCEEDED`.
        retry_after: Option<Duration>,
    },
    /// The homeserver could not be reached or the transport failed.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// A request could not be built or a response not understood.
    #[error("protocol: {0}")]
    Protocol(String),
    /// A JSON document could not be (de)serialized.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The bridge's network implementation reported a failure.
    #[error("network: {0}")]
    Network(String),
    /// Something the caller asked for does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

impl Error {
    /// The Matrix errcode, if this is a Matrix error.
    ///
    /// ```
    /// use appservice_sdk::Error;
    /// let err = Error::Matrix {
    ///     status: 403,
    ///     errcode: "M_FORBIDDEN".to_owned(),
    ///     message: "no".to_owned(),
    ///     retry_after: None,
    /// };
    /// assert_eq!(err.errcode(), Some("M_FORBIDDEN"));
    /// ```
    pub fn errcode(&self) -> Option<&str> {
        match self {
            Self::Matrix { errcode, .. } => Some(errcode),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: the database or the homeserver could not be
    /// reached, or the homeserver answered 429 or 5xx. The bridge returns such errors to the
    /// homeserver (which redelivers the transaction) instead of dropping the event; a network
    /// can use it the same way for its own retries.
    ///
    /// ```
    /// use appservice_sdk::Error;
    /// let busy = Error::Matrix {
    ///     status: 429,
    ///     errcode: "M_LIMIT_EXCEEDED".to_owned(),
    ///     message: "slow down".to_owned(),
    ///     retry_after: None,
    /// };
    /// assert!(busy.is_transient());
    /// assert!(!Error::NotFound("event".to_owned()).is_transient());
    /// ```
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(_) | Self::Http(_) => true,
            Self::Matrix { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Shorthand for results carrying the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
