//! Method parameters, read the four ways the Bot API accepts them: URL query, `application/json`,
//! `application/x-www-form-urlencoded` and `multipart/form-data` (with uploaded files).

use std::collections::BTreeMap;

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde_json::Value;

use super::error::ApiError;

/// A file part of a multipart request.
#[derive(Debug, Clone)]
pub struct Upload {
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

#[derive(Debug, Clone)]
pub enum Param {
    /// A JSON value; from a query, a form or a multipart text field it is always a string.
    Value(Value),
    File(Upload),
}

/// All parameters of one call, by name.
#[derive(Debug, Clone, Default)]
pub struct Params(pub BTreeMap<String, Param>);

/// A `chat_id` parameter: a number or `@username`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatRef {
    Id(i64),
    Username(String),
}

impl Params {
    /// Reads the query string and the body of `request`.
    pub async fn from_request(request: Request) -> Result<Self, ApiError> {
        let mut params = Self::default();
        if let Some(query) = request.uri().query() {
            for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
                params.insert_text(k.into_owned(), v.into_owned());
            }
        }
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiError::bad_request(format!("can't parse multipart: {e}")))?;
            while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
                let name = field.name().unwrap_or_default().to_owned();
                let file_name = field.file_name().map(str::to_owned);
                let content_type = field.content_type().map(str::to_owned);
                let bytes = field.bytes().await.map_err(multipart_error)?;
                if file_name.is_some() {
                    let upload = Upload {
                        file_name,
                        content_type,
                        bytes,
                    };
                    params.0.insert(name, Param::File(upload));
                } else {
                    params.insert_text(name, String::from_utf8_lossy(&bytes).into_owned());
                }
            }
            return Ok(params);
        }
        let body = axum::body::to_bytes(request.into_body(), usize::MAX)
            .await
            .map_err(|_| ApiError::too_large())?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(params);
        }
        if content_type.starts_with("application/json") {
            let Value::Object(map) = serde_json::from_slice(&body)
                .map_err(|_| ApiError::bad_request("can't parse JSON object"))?
            else {
                return Err(ApiError::bad_request("can't parse JSON object"));
            };
            for (k, v) in map {
                params.0.insert(k, Param::Value(v));
            }
        } else {
            for (k, v) in url::form_urlencoded::parse(&body) {
                params.insert_text(k.into_owned(), v.into_owned());
            }
        }
        Ok(params)
    }

    fn insert_text(&mut self, name: String, value: String) {
        self.0.insert(name, Param::Value(Value::String(value)));
    }

    /// True when the parameter is given with a non-empty value.
    pub fn has(&self, name: &str) -> bool {
        match self.0.get(name) {
            None | Some(Param::Value(Value::Null)) => false,
            Some(Param::Value(Value::String(s))) => !s.is_empty(),
            Some(_) => true,
        }
    }

    pub fn string(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Param::Value(Value::String(s)) => Some(s.clone()),
            Param::Value(Value::Null) | Param::File(_) => None,
            Param::Value(other) => Some(other.to_string()),
        }
    }

    /// An Integer parameter; numbers and numeric strings are accepted as Telegram does.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(Param::Value(value)) = self.0.get(name) else {
            return Ok(None);
        };
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| invalid(name)),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => s.trim().parse().map(Some).map_err(|_| invalid(name)),
            _ => Err(invalid(name)),
        }
    }

    /// A Float parameter; numbers and numeric strings are accepted as Telegram does.
    pub fn float(&self, name: &str) -> Result<Option<f64>, ApiError> {
        let Some(Param::Value(value)) = self.0.get(name) else {
            return Ok(None);
        };
        match value {
            Value::Null => Ok(None),
            Value::Number(n) => n.as_f64().map(Some).ok_or_else(|| invalid(name)),
            Value::String(s) if s.is_empty() => Ok(None),
            Value::String(s) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(invalid(name)),
            },
            _ => Err(invalid(name)),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, ApiError> {
        match self.0.get(name) {
            None | Some(Param::Value(Value::Null)) => Ok(false),
            Some(Param::Value(Value::Bool(b))) => Ok(*b),
            Some(Param::Value(Value::String(s))) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(invalid(name)),
            },
            Some(_) => Err(invalid(name)),
        }
    }

    /// A JSON-serialized parameter (object or array): given as JSON, or as a string holding JSON.
    pub fn json(&self, name: &str) -> Result<Option<Value>, ApiError> {
        match self.0.get(name) {
            None | Some(Param::Value(Value::Null)) => Ok(None),
            Some(Param::Value(Value::String(s))) if s.is_empty() => Ok(None),
            Some(Param::Value(Value::String(s))) => serde_json::from_str(s)
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("can't parse {name} JSON object"))),
            Some(Param::Value(v)) => Ok(Some(v.clone())),
            Some(Param::File(_)) => Err(invalid(name)),
        }
    }

    /// `chat_id`-like parameters: an integer or `@username`.
    pub fn chat(&self, name: &str) -> Result<Option<ChatRef>, ApiError> {
        if let Some(s) = self.string(name)
            && let Some(username) = s.strip_prefix('@')
        {
            return Ok(Some(ChatRef::Username(username.to_owned())));
        }
        Ok(self.int(name)?.map(ChatRef::Id))
    }

    /// An InputFile-or-String parameter: an upload (direct, or `attach://<part>`) or a file id / URL.
    pub fn file(&self, name: &str) -> Option<FileParam> {
        match self.0.get(name)? {
            Param::File(upload) => Some(FileParam::Upload(upload.clone())),
            Param::Value(Value::String(s)) => match s.strip_prefix("attach://") {
                Some(part) => match self.0.get(part) {
                    Some(Param::File(upload)) => Some(FileParam::Upload(upload.clone())),
                    _ => None,
                },
                None if s.is_empty() => None,
                None => Some(FileParam::Reference(s.clone())),
            },
            Param::Value(_) => None,
        }
    }
}

/// What a media parameter refers to.
#[derive(Debug, Clone)]
pub enum FileParam {
    Upload(Upload),
    /// A file_id already on the server, or an HTTP URL.
    Reference(String),
}

fn invalid(name: &str) -> ApiError {
    ApiError::bad_request(format!("invalid {name} specified"))
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::too_large();
    }
    ApiError::bad_request(format!("can't parse multipart: {e}"))
}
