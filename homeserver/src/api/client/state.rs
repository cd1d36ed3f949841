//! Room state: read all, read one, set one.

use axum::{Json, Router, extract::State};
use ruma::api::client::state::{
    get_state_event_for_key::v3 as get_one, get_state_events::v3 as get_all,
    send_state_event::v3 as put_one,
};
use serde_json::{Value, json};

use super::message::{content_object, validate_type};
use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{
        Services,
        client_event::{Viewing, client_event},
        rooms::EventSpec,
    },
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_all::Request, _, _>(get_state)
        .ruma::<get_one::Request, _, _>(get_state_event)
        .ruma::<put_one::Request, _, _>(put_state_event)
}

/// The state a user may read: current state if joined (or the room is world-readable), else the
/// state when they left.
async fn readable_state(
    s: &Services,
    room_id: &str,
    user_id: &str,
) -> Result<Vec<crate::store::EventRow>> {
    let viewer = s.viewer(room_id, user_id).await?;
    match viewer.current() {
        Some("join") => Ok(s.store.current_state(room_id).await?),
        _ if viewer.world_readable_now() => Ok(s.store.current_state(room_id).await?),
        Some("leave" | "ban") => {
            let left = s
                .store
                .membership_history(room_id, user_id)
                .await?
                .last()
                .map(|m| m.stream_ordering)
                .unwrap_or(0);
            Ok(s.store.state_at(room_id, left).await?)
        }
        _ => Err(Error::forbidden("You are not in this room")),
    }
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state`
async fn get_state(State(s): State<Services>, req: Ruma<get_all::Request>) -> Result<Json<Value>> {
    let who = req.requester();
    let state = readable_state(&s, req.body.room_id.as_str(), &who.user_id).await?;
    let viewing = Viewing {
        user_id: &who.user_id,
        device_id: &who.device_id,
    };
    Ok(Json(Value::Array(
        state.iter().map(|e| client_event(e, viewing)).collect(),
    )))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
async fn get_state_event(
    State(s): State<Services>,
    req: Ruma<get_one::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    let state = readable_state(&s, req.body.room_id.as_str(), &who.user_id).await?;
    let event_type = req.body.event_type.to_string();
    let found = state.iter().find(|e| {
        e.event_type == event_type && e.state_key.as_deref() == Some(req.body.state_key.as_str())
    });
    let found = found.ok_or_else(|| Error::not_found("Event not found"))?;
    let event = client_event(
        found,
        Viewing {
            user_id: &who.user_id,
            device_id: &who.device_id,
        },
    );
    if req.body.format
        == ruma::api::client::state::get_state_event_for_key::v3::StateEventFormat::Event
    {
        return Ok(Json(event));
    }
    Ok(Json(event["content"].clone()))
}

/// `PUT /_matrix/client/v3/rooms/{roomId}/state/{eventType}/{stateKey}`
async fn put_state_event(
    State(s): State<Services>,
    req: Ruma<put_one::Request>,
) -> Result<Json<Value>> {
    let who = req.requester().clone();
    s.check_message_rate(&who)?;
    let body = req.body;
    let event_type = body.event_type.to_string();
    validate_type(&event_type)?;
    if body.state_key.len() > 255 {
        return Err(Error::bad_json("State key must be at most 255 bytes"));
    }
    let content = content_object(body.body.json())?;
    let room_id = body.room_id.as_str();
    if event_type == "m.room.canonical_alias" {
        s.check_canonical_alias(room_id, &content).await?;
    }
    let mut spec = EventSpec::state(&event_type, &body.state_key, content);
    // `?ts=` is for appservices only (bridged history); from anyone else it is ignored, as Synapse does.
    spec.ts = body
        .timestamp
        .filter(|_| who.appservice.is_some())
        .map(|t| i64::from(t.0));
    let sent = s.send(room_id, &who.user_id, spec).await?;
    Ok(Json(json!({"event_id": sent.event_id})))
}
