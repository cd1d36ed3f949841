//! Bot API error responses: `{"ok":false,"error_code":..,"description":..,"parameters":{..}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error answered the way the Bot API does; the HTTP status equals `error_code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub error_code: u16,
    pub description: String,
    pub retry_after: Option<u64>,
    pub migrate_to_chat_id: Option<i64>,
}

impl ApiError {
    fn new(error_code: u16, description: impl Into<String>) -> Self {
        Self {
            error_code,
            description: description.into(),
            retry_after: None,
            migrate_to_chat_id: None,
        }
    }

    /// 400 `Bad Request: <what>`.
    pub fn bad_request(what: impl std::fmt::Display) -> Self {
        Self::new(400, format!("Bad Request: {what}"))
    }

    /// 403 `Forbidden: <what>`.
    pub fn forbidden(what: impl std::fmt::Display) -> Self {
        Self::new(403, format!("Forbidden: {what}"))
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized")
    }

    pub fn not_found() -> Self {
        Self::new(404, "Not Found")
    }

    pub fn conflict(what: impl std::fmt::Display) -> Self {
        Self::new(409, format!("Conflict: {what}"))
    }

    pub fn too_large() -> Self {
        Self::new(413, "Request Entity Too Large")
    }

    /// 429 with `parameters.retry_after`, as Telegram's flood control answers.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(429, format!("Too Many Requests: retry after {retry_after}"))
        }
    }

    /// Any code, with Telegram's usual wording for it unless `description` is given.
    pub fn with_code(
        error_code: u16,
        description: Option<String>,
        retry_after: Option<u64>,
    ) -> Self {
        if error_code == 429 && description.is_none() {
            return Self::too_many_requests(retry_after.unwrap_or(1));
        }
        let description = description.unwrap_or_else(|| {
            match error_code {
                400 => "Bad Request",
                401 => "Unauthorized",
                403 => "Forbidden",
                404 => "Not Found",
                409 => "Conflict",
                429 => "Too Many Requests",
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                504 => "Gateway Timeout",
                _ => "Internal Server Error",
            }
            .to_owned()
        });
        Self {
            retry_after,
            ..Self::new(error_code, description)
        }
    }

    /// The JSON body Telegram sends.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "ok": false,
            "error_code": self.error_code,
            "description": self.description,
        });
        let mut parameters = serde_json::Map::new();
        if let Some(retry_after) = self.retry_after {
            parameters.insert("retry_after".to_owned(), retry_after.into());
        }
        if let Some(chat_id) = self.migrate_to_chat_id {
            parameters.insert("migrate_to_chat_id".to_owned(), chat_id.into());
        }
        if !parameters.is_empty() {
            body["parameters"] = Value::Object(parameters);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.error_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.body())).into_response()
    }
}

/// The success envelope `{"ok":true,"result":...}`.
pub fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}
