//! Control routes under `/_fake/` (a contract, see DESIGN.md section 6 and the crate README).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::FakeBotApi;
use super::error::ApiError;
use super::params::{Param, Params};
use super::world::FailPlan;

/// `POST /_fake/updates`: an `Update` without `update_id`; answers `{"update_id": N}` (plus `message_id`
/// for message-like updates, filled in when absent).
pub(super) async fn inject_update(
    State(state): State<Arc<FakeBotApi>>,
    Json(update): Json<Value>,
) -> Response {
    let result = state.lock().inject(update);
    match result {
        Ok((update_id, message_id)) => {
            state.updates.notify_waiters();
            let mut body = json!({"update_id": update_id});
            if let Some(message_id) = message_id {
                body["message_id"] = message_id.into();
            }
            Json(body).into_response()
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct ChatQuery {
    chat_id: i64,
}

/// `GET /_fake/sent?chat_id=ID`: messages the bot sent, edited or deleted in the chat, oldest first.
pub(super) async fn sent(
    State(state): State<Arc<FakeBotApi>>,
    Query(q): Query<ChatQuery>,
) -> Json<Value> {
    let w = state.lock();
    let messages: Vec<Value> = w
        .chats
        .get(&q.chat_id)
        .into_iter()
        .flat_map(|c| c.messages.values())
        .filter(|m| m.by_bot || m.deleted_by_bot)
        .map(|m| {
            let mut message = m.message.clone();
            message["deleted"] = m.deleted_by_bot.into();
            message
        })
        .collect();
    Json(messages.into())
}

/// `GET /_fake/reactions?chat_id=ID`: the bot's `setMessageReaction` calls there, oldest first.
pub(super) async fn reactions(
    State(state): State<Arc<FakeBotApi>>,
    Query(q): Query<ChatQuery>,
) -> Json<Value> {
    let w = state.lock();
    let reactions = w
        .chats
        .get(&q.chat_id)
        .map(|c| c.reactions.clone())
        .unwrap_or_default();
    Json(reactions.into())
}

/// `GET /_fake/actions?chat_id=ID`: the bot's `sendChatAction` actions there, oldest first.
pub(super) async fn actions(
    State(state): State<Arc<FakeBotApi>>,
    Query(q): Query<ChatQuery>,
) -> Json<Value> {
    let w = state.lock();
    let actions = w
        .chats
        .get(&q.chat_id)
        .map(|c| c.actions.clone())
        .unwrap_or_default();
    Json(actions.into())
}

#[derive(Deserialize)]
pub(super) struct FailOrder {
    count: u32,
    error_code: u16,
    retry_after: Option<u64>,
    description: Option<String>,
    /// Only calls of this method fail (any case); all methods when absent.
    method: Option<String>,
}

/// `POST /_fake/fail`: `{"count": N, "error_code": 429, "retry_after": S}` fails the next N calls.
pub(super) async fn fail(
    State(state): State<Arc<FakeBotApi>>,
    Json(order): Json<FailOrder>,
) -> Json<Value> {
    let plan = FailPlan {
        count: order.count,
        method: order.method,
        error: ApiError::with_code(order.error_code, order.description, order.retry_after),
    };
    state.lock().fail.push(plan);
    Json(json!({"ok": true}))
}

/// `POST /_fake/files[?kind=photos&file_name=a.jpg&mime_type=image/jpeg]`: stores a file (a multipart
/// file part, or the raw body) and answers `{"file_id", "file_unique_id", "file_path", "file_size"}`.
pub(super) async fn upload_file(
    State(state): State<Arc<FakeBotApi>>,
    Query(q): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let is_multipart = request
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    let (bytes, file_name, mime_type) = if is_multipart {
        let params = match Params::from_request(request).await {
            Ok(params) => params,
            Err(e) => return e.into_response(),
        };
        let Some(upload) = params.0.into_values().find_map(|p| match p {
            Param::File(upload) => Some(upload),
            Param::Value(_) => None,
        }) else {
            return ApiError::bad_request("there is no file in the request").into_response();
        };
        (upload.bytes, upload.file_name, upload.content_type)
    } else {
        let mime = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        match axum::body::to_bytes(request.into_body(), usize::MAX).await {
            Ok(bytes) => (bytes, None, mime),
            Err(_) => return ApiError::too_large().into_response(),
        }
    };
    let kind = q.get("kind").map_or("documents", String::as_str);
    let file_name = q.get("file_name").cloned().or(file_name);
    let mime_type = q.get("mime_type").cloned().or(mime_type);
    let file = state.lock().store_file(kind, bytes, file_name, mime_type);
    Json(file.file_object()).into_response()
}

#[derive(Deserialize)]
pub(super) struct ProfilePhoto {
    user_id: i64,
    file_id: String,
}

/// `POST /_fake/profile_photo` `{"user_id", "file_id"}`: makes a stored file the user's newest profile photo.
pub(super) async fn profile_photo(
    State(state): State<Arc<FakeBotApi>>,
    Json(photo): Json<ProfilePhoto>,
) -> Response {
    let mut w = state.lock();
    if !w.files.contains_key(&photo.file_id) {
        return ApiError::bad_request("invalid file_id").into_response();
    }
    w.profile_photos
        .entry(photo.user_id)
        .or_default()
        .insert(0, photo.file_id);
    w.users
        .entry(photo.user_id)
        .or_insert_with(|| json!({"id": photo.user_id, "is_bot": false, "first_name": ""}));
    Json(json!({"ok": true})).into_response()
}
