//! Single events and their surroundings: `event/{eventId}`, `context/{eventId}`.

use crate::service::relations::add_bundles;
use axum::{Json, Router, extract::State};
use ruma::api::client::{
    context::get_context::v3 as context, room::get_room_event::v3 as get_event,
};
use serde_json::{Value, json};

use crate::{
    api::{RouteExt, Ruma},
    error::{Error, Result},
    service::{
        Services,
        client_event::{Viewing, client_event},
        filter,
        sync::Token,
    },
    store::{Direction, EventRow},
};

pub(super) fn router() -> Router<Services> {
    Router::new()
        .ruma::<get_event::Request, _, _>(get_room_event)
        .ruma::<context::Request, _, _>(get_context)
}

/// An event the user may see, else `M_NOT_FOUND` (not telling whether it exists).
async fn visible_event(
    s: &Services,
    room_id: &str,
    event_id: &str,
    user_id: &str,
) -> Result<EventRow> {
    let row = s
        .store
        .event(event_id)
        .await?
        .filter(|e| e.room_id == room_id);
    let row = row.ok_or_else(|| Error::not_found("Event not found"))?;
    let viewer = s.viewer(room_id, user_id).await?;
    if !viewer.can_see(row.stream_ordering) {
        return Err(Error::not_found("Event not found"));
    }
    Ok(row)
}

/// `GET /_matrix/client/v3/rooms/{roomId}/event/{eventId}`
async fn get_room_event(
    State(s): State<Services>,
    req: Ruma<get_event::Request>,
) -> Result<Json<Value>> {
    let who = req.requester();
    let row = visible_event(
        &s,
        req.body.room_id.as_str(),
        req.body.event_id.as_str(),
        &who.user_id,
    )
    .await?;
    let mut event = client_event(
        &row,
        Viewing {
            user_id: &who.user_id,
            device_id: &who.device_id,
        },
    );
    s.bundle_relations(&mut event, &row, &who.user_id).await?;
    Ok(Json(event))
}

/// `GET /_matrix/client/v3/rooms/{roomId}/context/{eventId}`
async fn get_context(
    State(s): State<Services>,
    req: Ruma<context::Request>,
) -> Result<Json<Value>> {
    let who = req.requester().clone();
    let body = req.body;
    let room_id = body.room_id.as_str();
    let row = visible_event(&s, room_id, body.event_id.as_str(), &who.user_id).await?;
    let limit = u64::from(body.limit).min(100) as i64;
    let before_n = limit / 2;
    let after_n = limit - before_n;
    let viewer = s.viewer(room_id, &who.user_id).await?;
    let keep = |e: &EventRow| viewer.can_see(e.stream_ordering) && filter::matches(&body.filter, e);
    let before: Vec<EventRow> = s
        .store
        .room_events_page(
            room_id,
            row.stream_ordering - 1,
            None,
            Direction::Backward,
            before_n,
        )
        .await?
        .into_iter()
        .filter(keep)
        .collect();
    let after: Vec<EventRow> = s
        .store
        .room_events_page(
            room_id,
            row.stream_ordering,
            None,
            Direction::Forward,
            after_n,
        )
        .await?
        .into_iter()
        .filter(keep)
        .collect();
    let viewing = Viewing {
        user_id: &who.user_id,
        device_id: &who.device_id,
    };
    let start = before
        .last()
        .map(|e| e.stream_ordering - 1)
        .unwrap_or(row.stream_ordering - 1);
    let end = after
        .last()
        .map(|e| e.stream_ordering)
        .unwrap_or(row.stream_ordering);
    let state = s.store.state_at(room_id, end).await?;
    let mut event = client_event(&row, viewing);
    s.bundle_relations(&mut event, &row, &who.user_id).await?;
    let mut events_before: Vec<Value> = before.iter().map(|e| client_event(e, viewing)).collect();
    let mut events_after: Vec<Value> = after.iter().map(|e| client_event(e, viewing)).collect();
    let around: Vec<EventRow> = before.iter().chain(&after).cloned().collect();
    let bundles = s.bundles_for(&around, &who.user_id).await?;
    add_bundles(&mut events_before, &before, &bundles);
    add_bundles(&mut events_after, &after, &bundles);
    Ok(Json(json!({
        "event": event,
        "events_before": events_before,
        "events_after": events_after,
        "start": Token::at(start).to_string(),
        "end": Token::at(end).to_string(),
        "state": state.iter().map(|e| client_event(e, viewing)).collect::<Vec<_>>(),
    })))
}
