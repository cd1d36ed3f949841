//! Sending and reading messages: `send`, `messages`.

use axum::{Json, Router, extract::State};
use ruma::api::{
    Direction as RumaDirection,
    client::message::{get_message_events::v3 as messages, send_message_event::v3 as send},
};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{
        Services,
        client_event::{Viewing, client_event},
        filter,
        relations::add_bundles,
        rooms::EventSpec,
        sync::Token,
    },
    store::Direction,
};

/// Most events one `/messages` page returns.
const MAX_PAGE: u64 = 1000;

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<send::Request, _, _>(put_send)
        .ruma::<messages::Request, _, _>(get_messages)
}

/// The JSON content of a request body, which must be an object.
pub(super) fn content_object(raw: &serde_json::value::RawValue) -> Result<Value> {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(Error::bad_json("Event content must be a JSON object")),
    }
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/send/{eventType}/{txnId}`
async fn put_send(State(s): State<Services>, req: Ruma<send::Request>) -> Result<Json<Value>> {
    let who = req.requester().clone();
    s.check_message_rate(&who)?;
    let body = req.body;
    let event_type = body.event_type.to_string();
    validate_type(&event_type)?;
    let mut spec = EventSpec::message(&event_type, content_object(body.body.json())?);
    spec.txn = Some((who.device_id.clone(), body.txn_id.to_string()));
    // `?ts=` is for appservices only (bridged history); from anyone else it is ignored, as Synapse does.
    spec.ts = body
        .timestamp
        .filter(|_| who.appservice.is_some())
        .map(|t| i64::from(t.0));
    let sent = s.send(body.room_id.as_str(), &who.user_id, spec).await?;
    Ok(Json(json!({"event_id": sent.event_id})))
}

/// Event types are non-empty and at most 255 bytes.
pub(super) fn validate_type(event_type: &str) -> Result<()> {
    if event_type.is_empty() || event_type.len() > 255 {
        return Err(Error::bad_json("Event type must be 1 to 255 bytes"));
    }
    Ok(())
}

/// `GET /_matrix/client/v3/rooms/{roomId}/messages`
async fn get_messages(
    State(s): State<Services>,
    req: Ruma<messages::Request>,
) -> Result<Json<Value>> {
    let who = req.requester().clone();
    let body = req.body;
    let room_id = body.room_id.as_str();
    let viewer = s.viewer(room_id, &who.user_id).await?;
    if viewer.current().is_none() && !viewer.world_readable_now() {
        return Err(Error::forbidden("You are not in this room"));
    }
    let dir = match body.dir {
        RumaDirection::Backward => Direction::Backward,
        RumaDirection::Forward => Direction::Forward,
    };
    let from = match &body.from {
        Some(t) => Token::parse(t)?.stream,
        None => match dir {
            Direction::Backward => s.stream.safe(),
            Direction::Forward => 0,
        },
    };
    let to = body
        .to
        .as_deref()
        .map(Token::parse)
        .transpose()?
        .map(|t| t.stream);
    let limit = u64::from(body.limit).clamp(1, MAX_PAGE) as i64;
    let rows = s
        .store
        .room_events_page(room_id, from, to, dir, limit)
        .await?;
    let end = match (dir, rows.last()) {
        (Direction::Backward, Some(last)) => Some(Token::at(last.stream_ordering - 1)),
        (Direction::Forward, Some(last)) => Some(Token::at(last.stream_ordering)),
        (_, None) => None,
    };
    let viewing = Viewing {
        user_id: &who.user_id,
        device_id: &who.device_id,
    };
    let lazy = !body.filter.lazy_load_options.is_disabled();
    let chunk_rows: Vec<_> = rows
        .into_iter()
        .filter(|e| viewer.can_see(e.stream_ordering) && filter::matches(&body.filter, e))
        .collect();
    let mut chunk: Vec<Value> = chunk_rows
        .iter()
        .map(|e| client_event(e, viewing))
        .collect();
    let bundles = s.bundles_for(&chunk_rows, &who.user_id).await?;
    add_bundles(&mut chunk, &chunk_rows, &bundles);
    let mut response = json!({
        "start": Token::at(from).to_string(),
        "chunk": chunk,
    });
    if let Some(end) = end {
        response["end"] = json!(end.to_string());
    }
    if lazy && !chunk_rows.is_empty() {
        let senders: std::collections::HashSet<&str> =
            chunk_rows.iter().map(|e| e.sender.as_str()).collect();
        let at = chunk_rows
            .iter()
            .map(|e| e.stream_ordering)
            .max()
            .unwrap_or(from);
        let state = s.store.state_at(room_id, at).await?;
        let members: Vec<Value> = state
            .iter()
            .filter(|e| {
                e.event_type == "m.room.member"
                    && e.state_key.as_deref().is_some_and(|k| senders.contains(k))
            })
            .map(|e| client_event(e, viewing))
            .collect();
        response["state"] = json!(members);
    }
    Ok(Json(response))
}
