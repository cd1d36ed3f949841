//! `Pdu`: a room event as stored and authorised, and its client-facing form.

use std::sync::Arc;

use ruma::{
    MilliSecondsSinceUnixEpoch, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UInt, UserId,
    events::TimelineEventType,
};
use serde::Deserialize;
use serde_json::{Value, value::RawValue};

use crate::error::{Error, Result};

/// A persisted room event, parsed enough for auth rules and clients.
#[derive(Debug)]
pub struct Pdu {
    pub event_id: OwnedEventId,
    pub room_id: OwnedRoomId,
    pub sender: OwnedUserId,
    pub origin_server_ts: MilliSecondsSinceUnixEpoch,
    pub kind: TimelineEventType,
    pub content: Box<RawValue>,
    pub state_key: Option<String>,
    pub prev_events: Vec<OwnedEventId>,
    pub auth_events: Vec<OwnedEventId>,
    pub redacts: Option<OwnedEventId>,
    pub depth: i64,
    /// `hashes.sha256`, needed to reference this event in room versions 1 and 2.
    pub content_hash: Option<String>,
}

#[derive(Deserialize)]
struct Wire {
    sender: OwnedUserId,
    origin_server_ts: UInt,
    #[serde(rename = "type")]
    kind: TimelineEventType,
    content: Box<RawValue>,
    state_key: Option<String>,
    #[serde(default)]
    prev_events: Vec<Value>,
    #[serde(default)]
    auth_events: Vec<Value>,
    redacts: Option<OwnedEventId>,
    #[serde(default)]
    depth: i64,
    hashes: Option<Hashes>,
}

#[derive(Deserialize)]
struct Hashes {
    sha256: Option<String>,
}

#[derive(Deserialize)]
struct RedactsInContent {
    redacts: Option<OwnedEventId>,
}

/// An event reference: a bare id (room v3+) or `[id, {hashes}]` (v1, v2).
fn reference_id(v: &Value) -> Option<OwnedEventId> {
    let id = match v {
        Value::String(s) => s.as_str(),
        Value::Array(a) => a.first()?.as_str()?,
        _ => return None,
    };
    OwnedEventId::try_from(id).ok()
}

impl Pdu {
    /// Parses stored PDU JSON. `event_id` and `room_id` are passed in because newer room versions
    /// do not carry them inside the event.
    pub fn from_json(event_id: &str, room_id: &str, json: &str) -> Result<Self> {
        let wire: Wire = serde_json::from_str(json)
            .map_err(|e| Error::internal(format!("stored event {event_id}: {e}")))?;
        let redacts = match wire.redacts {
            Some(r) => Some(r),
            None if wire.kind == TimelineEventType::RoomRedaction => {
                serde_json::from_str::<RedactsInContent>(wire.content.get())
                    .ok()
                    .and_then(|c| c.redacts)
            }
            None => None,
        };
        Ok(Pdu {
            event_id: OwnedEventId::try_from(event_id).map_err(Error::internal)?,
            room_id: OwnedRoomId::try_from(room_id).map_err(Error::internal)?,
            sender: wire.sender,
            origin_server_ts: MilliSecondsSinceUnixEpoch(wire.origin_server_ts),
            kind: wire.kind,
            content: wire.content,
            state_key: wire.state_key,
            prev_events: wire.prev_events.iter().filter_map(reference_id).collect(),
            auth_events: wire.auth_events.iter().filter_map(reference_id).collect(),
            redacts,
            depth: wire.depth,
            content_hash: wire.hashes.and_then(|h| h.sha256),
        })
    }

    /// The content as a JSON value.
    pub fn content_value(&self) -> Value {
        serde_json::from_str(self.content.get()).unwrap_or(Value::Null)
    }

    /// A string field of the content.
    pub fn content_str(&self, field: &str) -> Option<String> {
        self.content_value()
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    }
}

impl ruma::state_res::Event for Pdu {
    type Id = OwnedEventId;

    fn event_id(&self) -> &Self::Id {
        &self.event_id
    }
    fn room_id(&self) -> Option<&RoomId> {
        Some(&self.room_id)
    }
    fn sender(&self) -> &UserId {
        &self.sender
    }
    fn origin_server_ts(&self) -> MilliSecondsSinceUnixEpoch {
        self.origin_server_ts
    }
    fn event_type(&self) -> &TimelineEventType {
        &self.kind
    }
    fn content(&self) -> &RawValue {
        &self.content
    }
    fn state_key(&self) -> Option<&str> {
        self.state_key.as_deref()
    }
    fn prev_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.prev_events.iter())
    }
    fn auth_events(&self) -> Box<dyn DoubleEndedIterator<Item = &Self::Id> + '_> {
        Box::new(self.auth_events.iter())
    }
    fn redacts(&self) -> Option<&Self::Id> {
        self.redacts.as_ref()
    }
    fn rejected(&self) -> bool {
        false
    }
}

/// A shared, immutable event.
pub type SharedPdu = Arc<Pdu>;
