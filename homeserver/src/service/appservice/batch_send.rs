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
//! the room state under the room lock (as every local event is, by `Services::build_on`), then
//! handed to the database writer as one job, written in one transaction with multi-row
//! statements ([`crate::store::Store::persist_events`]): either all land or none does, and no
//! other event of the room interleaves.

use ruma::{OwnedEventId, api::error::ErrorKind};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    error::{Error, Result},
    service::{
        Services,
        rooms::{EventSpec, RoomState, commit::PendingEvent},
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
        let (event_ids, mut pending): (Vec<OwnedEventId>, Vec<PendingEvent>) =
            built.into_iter().unzip();
        let reservations: Vec<_> = pending.iter().map(|_| self.stream.reserve()).collect();
        for (p, r) in pending.iter_mut().zip(&reservations) {
            p.stream_ordering = r.position;
        }
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
            events = event_ids.len(),
            build_ms = built_at.as_millis() as u64,
            persist_ms = (persisted_at - built_at).as_millis() as u64,
            "batch sent"
        );
        Ok(event_ids)
    }

    /// Builds and authorises one event of a batch on top of `room`, and advances `room` past it.
    fn build_one(
        &self,
        room: &mut RoomState,
        e: BatchEvent,
        i: usize,
    ) -> Result<(OwnedEventId, PendingEvent)> {
        let spec = EventSpec {
            event_type: e.event_type,
            state_key: e.state_key,
            content: e.content,
            ts: Some(e.origin_server_ts),
            txn: None,
        };
        self.build_on(room, &e.sender, &spec, &format!("events[{i}]"))
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
