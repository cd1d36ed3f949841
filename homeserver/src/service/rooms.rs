//! Rooms: the in-memory current state of each active room, and building, authorising and
//! persisting local events.

pub(crate) mod build;
pub mod commit;
pub mod create;
pub mod membership;
mod redact;
pub mod txns;
pub mod visibility;

use std::{collections::HashMap, sync::Arc};

use ruma::{OwnedEventId, OwnedRoomId, RoomVersionId, room_version_rules::RoomVersionRules};
use tokio::sync::Mutex as AsyncMutex;

use super::pdu::{Pdu, SharedPdu};
use crate::{
    error::{Error, Result},
    store::Store,
};

pub use build::EventSpec;

/// The state of one room as local events are built on top of it.
pub struct RoomState {
    pub room_id: OwnedRoomId,
    pub version: RoomVersionId,
    pub rules: RoomVersionRules,
    /// Current state by (type, state key).
    pub state: HashMap<(String, String), SharedPdu>,
    /// Forward extremities, with their content hashes (room versions 1 and 2 cite those).
    pub extremities: Vec<(OwnedEventId, Option<String>)>,
    pub depth: i64,
    /// Bumped each time the state is reloaded from the database because an event built on it
    /// was not written, so that the senders who learn of it reload once.
    pub epoch: u64,
}

impl RoomState {
    pub fn get(&self, event_type: &str, state_key: &str) -> Option<&SharedPdu> {
        self.state
            .get(&(event_type.to_owned(), state_key.to_owned()))
    }

    /// A user's current membership, if any.
    pub fn membership(&self, user_id: &str) -> Option<String> {
        self.get("m.room.member", user_id)
            .and_then(|p| p.content_str("membership"))
    }

    /// The join rule (`invite` when unset, as the spec says).
    pub fn join_rule(&self) -> String {
        self.get("m.room.join_rules", "")
            .and_then(|p| p.content_str("join_rule"))
            .unwrap_or_else(|| "invite".to_owned())
    }

    /// Local users currently joined.
    pub fn joined_members(&self) -> Vec<String> {
        self.state
            .iter()
            .filter(|((t, _), p)| {
                t == "m.room.member" && p.content_str("membership").as_deref() == Some("join")
            })
            .map(|((_, k), _)| k.clone())
            .collect()
    }
}

/// Bounded cache of room states, one async lock per room so events in a room are built in order.
pub struct Rooms {
    cache: std::sync::Mutex<HashMap<String, Arc<AsyncMutex<RoomState>>>>,
    capacity: usize,
}

impl Rooms {
    pub fn new(capacity: usize) -> Self {
        Self {
            cache: std::sync::Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The room's state handle, loading it from the store; `None` if the room is unknown here.
    pub async fn get(
        &self,
        store: &Store,
        room_id: &str,
    ) -> Result<Option<Arc<AsyncMutex<RoomState>>>> {
        if let Some(room) = self.cache.lock().expect("room cache poisoned").get(room_id) {
            return Ok(Some(room.clone()));
        }
        let Some(state) = load(store, room_id).await? else {
            return Ok(None);
        };
        Ok(Some(self.insert(state)))
    }

    /// Adds a room (a new one, or one just loaded), evicting idle rooms past capacity.
    pub fn insert(&self, state: RoomState) -> Arc<AsyncMutex<RoomState>> {
        let mut cache = self.cache.lock().expect("room cache poisoned");
        if let Some(existing) = cache.get(state.room_id.as_str()) {
            return existing.clone();
        }
        if cache.len() >= self.capacity {
            let idle: Vec<String> = cache
                .iter()
                .filter(|(_, r)| Arc::strong_count(r) == 1)
                .map(|(k, _)| k.clone())
                .take(cache.len() / 4 + 1)
                .collect();
            for k in idle {
                cache.remove(&k);
            }
        }
        let key = state.room_id.to_string();
        let room = Arc::new(AsyncMutex::new(state));
        cache.insert(key, room.clone());
        room
    }
}

pub(crate) async fn load(store: &Store, room_id: &str) -> Result<Option<RoomState>> {
    let Some(version) = store.room_version(room_id).await? else {
        return Ok(None);
    };
    let version = RoomVersionId::try_from(version.as_str()).map_err(Error::internal)?;
    let rules = version
        .rules()
        .ok_or_else(|| Error::internal(format!("unsupported room version {version}")))?;
    let mut state = HashMap::new();
    for row in store.current_state(room_id).await? {
        let pdu = Pdu::from_json(&row.event_id, &row.room_id, &row.json)?;
        state.insert(
            (row.event_type, row.state_key.unwrap_or_default()),
            Arc::new(pdu),
        );
    }
    let mut extremities = Vec::new();
    for id in store.forward_extremities(room_id).await? {
        let hash = match store.event(&id).await? {
            Some(row) => Pdu::from_json(&row.event_id, &row.room_id, &row.json)?.content_hash,
            None => None,
        };
        extremities.push((OwnedEventId::try_from(id).map_err(Error::internal)?, hash));
    }
    Ok(Some(RoomState {
        room_id: OwnedRoomId::try_from(room_id).map_err(Error::internal)?,
        version,
        rules,
        state,
        extremities,
        depth: store.max_depth(room_id).await?,
        epoch: 0,
    }))
}
