//! Building a local event on top of a room's current state: fill in the DAG fields, hash and
//! sign, authorise with ruma's state-res auth rules, persist, and advance the room.

use std::sync::Arc;

use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedEventId, OwnedRoomId,
    events::{StateEventType, TimelineEventType},
    room_version_rules::{EventIdFormatVersion, EventsReferenceFormatVersion, RoomIdFormatVersion},
    signatures::{hash_and_sign_event, reference_hash},
    state_res,
};
use serde_json::{Value, json, value::RawValue};

use super::RoomState;
use crate::{
    error::{Error, Result},
    service::{
        Services,
        pdu::Pdu,
        rooms::commit::{CommitError, PendingEvent, Queued},
        secrets::random_string,
    },
    store::{StoreError, now_ms},
};
use ruma::api::error::ErrorKind;

/// Largest event the spec allows, in bytes of canonical JSON.
pub(crate) const MAX_PDU_BYTES: usize = 65_536;

/// What a local event should be.
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub event_type: String,
    pub state_key: Option<String>,
    pub content: Value,
    /// Origin timestamp override (appservices' `?ts=`).
    pub ts: Option<i64>,
    /// `(device, txn id)` of a client send, for idempotency.
    pub txn: Option<(String, String)>,
}

impl EventSpec {
    pub fn message(event_type: &str, content: Value) -> Self {
        Self {
            event_type: event_type.to_owned(),
            state_key: None,
            content,
            ts: None,
            txn: None,
        }
    }
    pub fn state(event_type: &str, state_key: &str, content: Value) -> Self {
        Self {
            event_type: event_type.to_owned(),
            state_key: Some(state_key.to_owned()),
            content,
            ts: None,
            txn: None,
        }
    }
}

/// A sent event: its id and stream position.
#[derive(Clone, Debug)]
pub struct Sent {
    pub event_id: OwnedEventId,
    pub stream_ordering: i64,
}

/// How many times a send is built again after an earlier event of its room failed to commit (a
/// repeated transaction id that only the database caught, say).
const SEND_ATTEMPTS: usize = 8;

/// An event handed to the writer; its room's in-memory state already includes it.
pub(crate) struct QueuedEvent {
    sent: Sent,
    /// The room's epoch it was built in (see [`RoomState::epoch`]).
    epoch: u64,
    queued: Queued,
}

impl QueuedEvent {
    /// Waits until the writer has written the event (or failed to).
    pub(crate) async fn written(self) -> (Sent, u64, Result<(), CommitError>) {
        (self.sent, self.epoch, self.queued.outcome().await)
    }
}

impl Services {
    /// Builds, authorises and persists an event from `sender` in the (locked) room.
    pub(crate) async fn build_and_send(
        &self,
        room: &mut RoomState,
        sender: &str,
        spec: EventSpec,
    ) -> Result<Sent> {
        for attempt in 1.. {
            if let Some(sent) = self.repeated_txn(sender, &spec) {
                return Ok(sent);
            }
            let (sent, epoch, written) = self.queue_event(room, sender, &spec)?.written().await;
            match written {
                Ok(()) => return Ok(self.remember_txn(sender, &spec, sent)),
                Err(e) => {
                    self.reload_room(room, epoch).await;
                    if let Some(answer) = self.after_failed_send(e, sender, &spec, attempt).await {
                        return answer;
                    }
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Builds and authorises an event from `sender` in the (locked) room, applies it to the
    /// room's in-memory state and queues it for the database. The lock may go once it is queued:
    /// the writer keeps the room's order. [`QueuedEvent::written`] says how it went.
    pub(crate) fn queue_event(
        &self,
        room: &mut RoomState,
        sender: &str,
        spec: &EventSpec,
    ) -> Result<QueuedEvent> {
        let (event_id, mut pending) = self.build_on(room, sender, spec, "Event")?;
        let reservation = self.stream.reserve();
        pending.stream_ordering = reservation.position;
        let sent = Sent {
            event_id,
            stream_ordering: reservation.position,
        };
        tracing::debug!(room_id = %room.room_id, event_id = %sent.event_id, sender, event_type = spec.event_type, "event queued");
        Ok(QueuedEvent {
            sent,
            epoch: room.epoch,
            queued: self.committer.queue(vec![pending], vec![reservation]),
        })
    }

    /// Builds and authorises an event from `sender` on top of `room` and advances `room` past
    /// it. Its stream position is left for the caller to reserve; `what` names it in errors
    /// ("Event", "events[3]").
    pub(crate) fn build_on(
        &self,
        room: &mut RoomState,
        sender: &str,
        spec: &EventSpec,
        what: &str,
    ) -> Result<(OwnedEventId, PendingEvent)> {
        let (mut obj, event_id, room_id) = self.build_event(room, sender, spec)?;
        let pdu = authorise(room, spec, &mut obj, &event_id, &room_id, what)?;
        let relation = relation_of(&spec.content);
        let pending = PendingEvent {
            stream_ordering: 0,
            event_id: event_id.to_string(),
            room_id: room_id.to_string(),
            sender: sender.to_owned(),
            event_type: spec.event_type.clone(),
            state_key: spec.state_key.clone(),
            depth: pdu.depth,
            origin_server_ts: i64::from(pdu.origin_server_ts.0),
            json: serde_json::to_string(&obj).map_err(Error::internal)?,
            relates_to: relation.as_ref().map(|(id, _)| id.clone()),
            rel_type: relation.map(|(_, t)| t),
            txn: spec
                .txn
                .as_ref()
                .map(|(d, t)| (sender.to_owned(), d.clone(), t.clone())),
            membership: (spec.event_type == "m.room.member")
                .then(|| pdu.content_str("membership"))
                .flatten(),
            prev_events: room
                .extremities
                .iter()
                .map(|(id, _)| id.to_string())
                .collect(),
        };
        room.depth = pdu.depth;
        room.extremities = vec![(event_id.clone(), pdu.content_hash.clone())];
        if let Some(state_key) = &spec.state_key {
            room.state
                .insert((spec.event_type.clone(), state_key.clone()), Arc::new(pdu));
        }
        Ok((event_id, pending))
    }

    /// Remembers a written event under its transaction id (if it has one), and hands it back.
    pub(crate) fn remember_txn(&self, sender: &str, spec: &EventSpec, sent: Sent) -> Sent {
        if let Some((device, txn)) = &spec.txn {
            self.txns.insert((sender, device, txn), sent.clone());
        }
        sent
    }

    /// The event this process already sent under the request's transaction id, if any.
    pub(crate) fn repeated_txn(&self, sender: &str, spec: &EventSpec) -> Option<Sent> {
        let (device, txn) = spec.txn.as_ref()?;
        self.txns.get((sender, device, txn))
    }

    /// After a queued event of the room failed to commit, its in-memory state is ahead of the
    /// database: reloads it, unless that was already done since `epoch`.
    pub(crate) async fn reload_room(&self, room: &mut RoomState, epoch: u64) {
        if room.epoch != epoch {
            return;
        }
        match super::load(&self.store, room.room_id.as_str()).await {
            Ok(Some(mut fresh)) => {
                fresh.epoch = epoch + 1;
                *room = fresh;
            }
            // Not stored yet (its create event failed): nothing to go back to.
            Ok(None) => {}
            Err(e) => {
                tracing::error!(room_id = %room.room_id, error = %e, "cannot reload a room's state")
            }
        }
    }

    /// What a send answers when its event was not written (the room has been reloaded): `None`
    /// to build it again.
    pub(crate) async fn after_failed_send(
        &self,
        error: CommitError,
        sender: &str,
        spec: &EventSpec,
        attempt: usize,
    ) -> Option<Result<Sent>> {
        match error {
            CommitError::Superseded if attempt < SEND_ATTEMPTS => None,
            // The same transaction was sent before (or raced in from another request): answer
            // with its event.
            CommitError::Store(StoreError::Conflict) if spec.txn.is_some() => {
                Some(match self.sent_in_txn(sender, spec).await {
                    // Repeats of it queued meanwhile are answered from memory when they are
                    // built again.
                    Ok(Some(sent)) => Ok(self.remember_txn(sender, spec, sent)),
                    Ok(None) => Err(Error::internal("transaction conflict without an event")),
                    Err(e) => Err(e),
                })
            }
            e => Some(Err(Error::internal(e.to_string()))),
        }
    }

    /// Fills in the PDU fields, hashes and signs. Returns the object, its event id and room id.
    pub(crate) fn build_event(
        &self,
        room: &RoomState,
        sender: &str,
        spec: &EventSpec,
    ) -> Result<(CanonicalJsonObject, OwnedEventId, OwnedRoomId)> {
        let rules = &room.rules;
        let kind = TimelineEventType::from(spec.event_type.as_str());
        let content_raw =
            RawValue::from_string(spec.content.to_string()).map_err(Error::internal)?;
        let sender_id = ruma::UserId::parse(sender).map_err(Error::internal)?;
        let auth_types = state_res::auth_types_for_event(
            &kind,
            &sender_id,
            spec.state_key.as_deref(),
            &content_raw,
            &rules.authorization,
        )
        .map_err(Error::bad_json)?;
        let cite = |id: &OwnedEventId, hash: &Option<String>| -> Value {
            match rules.events_reference_format {
                EventsReferenceFormatVersion::V1 => {
                    json!([id, {"sha256": hash.clone().unwrap_or_default()}])
                }
                _ => json!(id),
            }
        };
        let mut auth_events = Vec::new();
        for (t, k) in &auth_types {
            if let Some(p) = room.state.get(&(t.to_string(), k.clone())) {
                // Room version 12 does not cite the create event: the room id derives from it.
                if *t == StateEventType::RoomCreate
                    && rules.room_id_format == RoomIdFormatVersion::V2
                {
                    continue;
                }
                auth_events.push(cite(&p.event_id, &p.content_hash));
            }
        }
        let prev_events: Vec<Value> = room.extremities.iter().map(|(id, h)| cite(id, h)).collect();
        let is_v12_create = kind == TimelineEventType::RoomCreate
            && rules.room_id_format == RoomIdFormatVersion::V2;
        let mut event = json!({
            "type": spec.event_type,
            "sender": sender,
            "content": spec.content,
            "origin_server_ts": spec.ts.unwrap_or_else(now_ms),
            "depth": room.depth + 1,
            "prev_events": prev_events,
            "auth_events": auth_events,
        });
        if !is_v12_create {
            event["room_id"] = json!(room.room_id);
        }
        if let Some(state_key) = &spec.state_key {
            event["state_key"] = json!(state_key);
        }
        if kind == TimelineEventType::RoomRedaction
            && !rules.redaction.keep_room_redaction_redacts
            && let Some(redacts) = spec.content.get("redacts")
        {
            event["redacts"] = redacts.clone();
        }
        let server = &self.config.server_name;
        if rules.event_id_format == EventIdFormatVersion::V1 {
            event["event_id"] = json!(format!("${}:{server}", random_string(18)));
        }
        // Signatures and hashes add about 200 bytes; refuse what cannot fit before signing.
        if event.to_string().len() + 200 > MAX_PDU_BYTES {
            return Err(Error::new(
                ErrorKind::TooLarge,
                "Event is larger than 64 KiB",
            ));
        }
        let mut obj: CanonicalJsonObject =
            serde_json::from_value(event).map_err(|e| Error::bad_json(e.to_string()))?;
        hash_and_sign_event(server, &*self.signing_key, &mut obj, &rules.redaction)
            .map_err(Error::internal)?;
        let event_id = match rules.event_id_format {
            EventIdFormatVersion::V1 => match obj.get("event_id") {
                Some(CanonicalJsonValue::String(id)) => id.clone(),
                _ => return Err(Error::internal("v1 event without event_id")),
            },
            _ => format!(
                "${}",
                reference_hash(&obj, rules)
                    .map_err(|_| Error::new(ErrorKind::TooLarge, "Event too large"))?
            ),
        };
        let room_id = if is_v12_create {
            OwnedRoomId::try_from(format!("!{}", &event_id[1..])).map_err(Error::internal)?
        } else {
            room.room_id.clone()
        };
        Ok((
            obj,
            OwnedEventId::try_from(event_id).map_err(Error::internal)?,
            room_id,
        ))
    }
}

/// Checks a built event's size and ruma's auth rules against the room's current state, then notes
/// in `unsigned` (outside hashes and signatures) which state event it replaces. `what` names the
/// event in errors ("Event", "events[3]").
pub(crate) fn authorise(
    room: &RoomState,
    spec: &EventSpec,
    obj: &mut CanonicalJsonObject,
    event_id: &OwnedEventId,
    room_id: &OwnedRoomId,
    what: &str,
) -> Result<Pdu> {
    let json = serde_json::to_string(&*obj).map_err(Error::internal)?;
    if json.len() > MAX_PDU_BYTES {
        return Err(Error::new(
            ErrorKind::TooLarge,
            format!("{what} is larger than 64 KiB"),
        ));
    }
    let pdu = Pdu::from_json(event_id.as_str(), room_id.as_str(), &json)?;
    state_res::check_state_dependent_auth_rules(
        &room.rules.authorization,
        &pdu,
        |t: &StateEventType, k: &str| room.state.get(&(t.to_string(), k.to_owned())).cloned(),
    )
    .map_err(|reason| Error::forbidden(format!("{what} not allowed: {reason}")))?;
    if let Some(state_key) = &spec.state_key
        && let Some(prev) = room.get(&spec.event_type, state_key)
    {
        let unsigned = json!({
            "replaces_state": prev.event_id,
            "prev_content": prev.content_value(),
            "prev_sender": prev.sender,
        });
        obj.insert(
            "unsigned".to_owned(),
            serde_json::from_value(unsigned).map_err(Error::internal)?,
        );
    }
    Ok(pdu)
}

/// `m.relates_to`'s target and relation type, for relations, threads and aggregations.
pub(crate) fn relation_of(content: &Value) -> Option<(String, String)> {
    let rel = content.get("m.relates_to")?;
    let target = rel.get("event_id")?.as_str()?.to_owned();
    let rel_type = rel
        .get("rel_type")
        .and_then(Value::as_str)
        .unwrap_or("m.in_reply_to")
        .to_owned();
    Some((target, rel_type))
}
