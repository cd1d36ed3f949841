//! Batch send for backfill: many historical events appended to a room in one request.
//!
//! `POST /_matrix/client/unstable/fi.causeway.batch_send/rooms/{roomId}/batch_send` with
//! `{"events": [{"type", "sender", "content", "origin_server_ts", "state_key"?}, ...]}` answers
//! `{"event_ids": [...]}` in the same order. It is the forward half of MSC2716 / beeper's
//! `batch_send`: events are appended at the end of the room's timeline (not inserted into the
//! past), each with its original `origin_server_ts`.
//!
//! Every sender must be the appservice's own user or in its user namespaces, and must already be
//! joined (the call does not join anyone: a bridge joins its ghosts first, so the member events
//! carry their profiles). Events are built and authorised one after another against a copy of
//! the room state under the room lock, then persisted in one database transaction with
//! multi-row statements ([`crate::store::Store::persist_events`]): either all land or none
//! does, and no other event interleaves.

use std::sync::Arc;

use ruma::{OwnedEventId, api::error::ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{
            EventSpec, RoomState,
            build::{authorise, relation_of},
            commit::PendingEvent,
        },
    },
};

/// Largest batch one request may carry.
pub const MAX_BATCH: usize = 10_000;

/// One event of a batch, as the appservice sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct BatchEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub sender: String,
    pub content: Value,
    pub origin_server_ts: i64,
    #[serde(default)]
    pub state_key: Option<String>,
}

/// An event built and authorised, waiting to be persisted with the rest of its batch.
struct Built {
    event_id: OwnedEventId,
    sender: String,
    event_type: String,
    state_key: Option<String>,
    depth: i64,
    origin_server_ts: i64,
    json: String,
    relation: Option<(String, String)>,
    membership: Option<String>,
    prev_events: Vec<String>,
}

impl Services {
    /// Appends `events` to `room_id` atomically and in order; answers their event ids.
    pub async fn batch_send(
        &self,
        as_id: &str,
        room_id: &str,
        events: Vec<BatchEvent>,
    ) -> Result<Vec<OwnedEventId>> {
        let reg = self
            .appservices
            .get(as_id)
            .ok_or_else(|| Error::unknown_token(false, "Unknown access token"))?;
        if events.len() > MAX_BATCH {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("At most {MAX_BATCH} events per batch"),
            ));
        }
        let server = &self.config.server_name;
        for (i, e) in events.iter().enumerate() {
            if !reg.is_user_ours(&e.sender, server) {
                return Err(Error::new(
                    ErrorKind::Exclusive,
                    format!("events[{i}].sender is not in the application service's namespaces"),
                ));
            }
            if !e.content.is_object() {
                return Err(Error::bad_json(format!(
                    "events[{i}].content must be an object"
                )));
            }
            if e.event_type.is_empty() || e.event_type.len() > 255 {
                return Err(Error::bad_json(format!(
                    "events[{i}].type must be 1 to 255 bytes"
                )));
            }
        }
        let Some(room) = self.rooms.get(&self.store, room_id).await? else {
            return Err(Error::not_found("Unknown room"));
        };
        let mut room = room.lock().await;
        let started = std::time::Instant::now();
        let mut scratch = copy_state(&room);
        let mut built = Vec::with_capacity(events.len());
        for (i, e) in events.into_iter().enumerate() {
            if scratch.membership(&e.sender).as_deref() != Some("join") {
                return Err(Error::forbidden(format!(
                    "events[{i}]: {} is not joined to {room_id}",
                    e.sender
                )));
            }
            built.push(self.build_one(&mut scratch, e, i)?);
        }
        let reservations: Vec<_> = built.iter().map(|_| self.stream.reserve()).collect();
        let pending: Vec<PendingEvent> = built
            .iter()
            .zip(&reservations)
            .map(|(b, r)| PendingEvent {
                stream_ordering: r.position,
                event_id: b.event_id.to_string(),
                room_id: room_id.to_owned(),
                sender: b.sender.clone(),
                event_type: b.event_type.clone(),
                state_key: b.state_key.clone(),
                depth: b.depth,
                origin_server_ts: b.origin_server_ts,
                json: b.json.clone(),
                relates_to: b.relation.as_ref().map(|(id, _)| id.clone()),
                rel_type: b.relation.as_ref().map(|(_, t)| t.clone()),
                txn: None,
                membership: b.membership.clone(),
                prev_events: b.prev_events.clone(),
            })
            .collect();
        let built_at = started.elapsed();
        // Behind any event of the room still being written; the room stays locked meanwhile.
        let epoch = room.epoch;
        if let Err(e) = self.committer.queue(pending, reservations).outcome().await {
            self.reload_room(&mut room, epoch).await;
            return Err(Error::internal(e.to_string()));
        }
        let persisted_at = started.elapsed();
        *room = scratch;
        tracing::info!(
            appservice = as_id,
            room_id,
            events = built.len(),
            build_ms = built_at.as_millis() as u64,
            persist_ms = (persisted_at - built_at).as_millis() as u64,
            "batch sent"
        );
        Ok(built.into_iter().map(|b| b.event_id).collect())
    }

    /// Builds and authorises one event on top of `room`, and advances `room` past it.
    fn build_one(&self, room: &mut RoomState, e: BatchEvent, i: usize) -> Result<Built> {
        let spec = EventSpec {
            event_type: e.event_type,
            state_key: e.state_key,
            content: e.content,
            ts: Some(e.origin_server_ts),
            txn: None,
        };
        let (mut obj, event_id, room_id) = self.build_event(room, &e.sender, &spec)?;
        let pdu = authorise(
            room,
            &spec,
            &mut obj,
            &event_id,
            &room_id,
            &format!("events[{i}]"),
        )?;
        let json = serde_json::to_string(&obj).map_err(Error::internal)?;
        let membership = (spec.event_type == "m.room.member")
            .then(|| pdu.content_str("membership"))
            .flatten();
        let prev_events = room
            .extremities
            .iter()
            .map(|(id, _)| id.to_string())
            .collect();
        room.depth = pdu.depth;
        room.extremities = vec![(event_id.clone(), pdu.content_hash.clone())];
        let depth = pdu.depth;
        if let Some(state_key) = &spec.state_key {
            room.state
                .insert((spec.event_type.clone(), state_key.clone()), Arc::new(pdu));
        }
        Ok(Built {
            event_id,
            sender: e.sender,
            relation: relation_of(&spec.content),
            event_type: spec.event_type,
            state_key: spec.state_key,
            depth,
            origin_server_ts: e.origin_server_ts,
            json,
            membership,
            prev_events,
        })
    }
}

/// A copy of a room's state to build a batch on; the original is replaced only once the batch
/// has been persisted.
fn copy_state(room: &RoomState) -> RoomState {
    RoomState {
        room_id: room.room_id.clone(),
        version: room.version.clone(),
        rules: room.rules.clone(),
        state: room.state.clone(),
        extremities: room.extremities.clone(),
        depth: room.depth,
        epoch: room.epoch,
    }
}
