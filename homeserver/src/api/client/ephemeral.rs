//! Typing, receipts, read markers and room tags.

use std::time::Duration;

use axum::{Json, Router, extract::State};
use ruma::api::client::{
    read_marker::set_read_marker::v3 as read_markers,
    receipt::create_receipt::v3 as receipt,
    tag::{create_tag::v3 as create_tag, delete_tag::v3 as delete_tag, get_tags::v3 as get_tags},
    typing::create_typing_event::v3 as typing,
};
use ruma::events::receipt::ReceiptThread;
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::Services,
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<typing::Request, _, _>(put_typing)
        .ruma::<receipt::Request, _, _>(post_receipt)
        .ruma::<read_markers::Request, _, _>(post_read_markers)
        .ruma::<get_tags::Request, _, _>(get_room_tags)
        .ruma::<create_tag::Request, _, _>(put_tag)
        .ruma::<delete_tag::Request, _, _>(delete_room_tag)
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/typing/{userId}`
async fn put_typing(State(s): State<Services>, req: Ruma<typing::Request>) -> Result<Json<Value>> {
    let who = req.requester();
    if req.body.user_id.as_str() != who.user_id {
        return Err(Error::forbidden("You may only set your own typing state"));
    }
    let (on, timeout) = match req.body.state {
        ruma::api::client::typing::create_typing_event::v3::Typing::Yes(t) => {
            (true, Some(t.timeout))
        }
        _ => (false, None::<Duration>),
    };
    s.set_typing(req.body.room_id.as_str(), &who.user_id, on, timeout)
        .await?;
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/receipt/{receiptType}/{eventId}`
async fn post_receipt(
    State(s): State<Services>,
    req: Ruma<receipt::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    let b = &req.body;
    let receipt_type = b.receipt_type.to_string();
    let thread = match &b.thread {
        ReceiptThread::Main => Some("main".to_owned()),
        ReceiptThread::Thread(id) => Some(id.to_string()),
        _ => None,
    };
    match receipt_type.as_str() {
        "m.read" | "m.read.private" => {
            s.set_receipt(
                b.room_id.as_str(),
                &who.user_id,
                &receipt_type,
                b.event_id.as_str(),
                thread.as_deref(),
            )
            .await?
        }
        "m.fully_read" => {
            s.set_fully_read(b.room_id.as_str(), &who.user_id, b.event_id.as_str())
                .await?
        }
        other => {
            return Err(Error::invalid_param(format!(
                "Unknown receipt type {other}"
            )));
        }
    }
    Ok(Json(json!({})))
}

/// `POST /_matrix/client/v3/rooms/{roomId}/read_markers`
async fn post_read_markers(
    State(s): State<Services>,
    req: Ruma<read_markers::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    let b = &req.body;
    let room_id = b.room_id.as_str();
    if let Some(e) = &b.fully_read {
        s.set_fully_read(room_id, &who.user_id, e.as_str()).await?;
    }
    if let Some(e) = &b.read_receipt {
        s.set_receipt(room_id, &who.user_id, "m.read", e.as_str(), None)
            .await?;
    }
    if let Some(e) = &b.private_read_receipt {
        s.set_receipt(room_id, &who.user_id, "m.read.private", e.as_str(), None)
            .await?;
    }
    Ok(Json(json!({})))
}

fn own(user_id: &str, who: &str) -> Result<()> {
    if user_id != who {
        return Err(Error::forbidden("Cannot access tags of other users"));
    }
    Ok(())
}

async fn tags_of(s: &Services, user_id: &str, room_id: &str) -> Result<Value> {
    let stored = s.store.account_data(user_id, room_id, "m.tag").await?;
    Ok(stored
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_else(|| json!({"tags": {}})))
}

/// `GET /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags`
async fn get_room_tags(
    State(s): State<Services>,
    req: Ruma<get_tags::Request>,
) -> Result<Json<Value>> {
    own(req.body.user_id.as_str(), &req.requester().user_id)?;
    Ok(Json(
        tags_of(&s, req.body.user_id.as_str(), req.body.room_id.as_str()).await?,
    ))
}

/// `PUT /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
async fn put_tag(State(s): State<Services>, req: Ruma<create_tag::Request>) -> Result<Json<Value>> {
    let b = &req.body;
    own(b.user_id.as_str(), &req.requester().user_id)?;
    let mut tags = tags_of(&s, b.user_id.as_str(), b.room_id.as_str()).await?;
    tags["tags"][&b.tag] = serde_json::to_value(&b.tag_info).map_err(Error::internal)?;
    s.set_account_data(
        b.user_id.as_str(),
        b.room_id.as_str(),
        "m.tag",
        &tags.to_string(),
    )
    .await?;
    Ok(Json(json!({})))
}

/// `DELETE /_matrix/client/v3/user/{userId}/rooms/{roomId}/tags/{tag}`
async fn delete_room_tag(
    State(s): State<Services>,
    req: Ruma<delete_tag::Request>,
) -> Result<Json<Value>> {
    let b = &req.body;
    own(b.user_id.as_str(), &req.requester().user_id)?;
    let mut tags = tags_of(&s, b.user_id.as_str(), b.room_id.as_str()).await?;
    if let Some(map) = tags["tags"].as_object_mut() {
        map.remove(&b.tag);
    }
    s.set_account_data(
        b.user_id.as_str(),
        b.room_id.as_str(),
        "m.tag",
        &tags.to_string(),
    )
    .await?;
    Ok(Json(json!({})))
}
