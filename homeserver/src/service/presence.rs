//! Presence, when `presence.enabled`: stored on the shared stream and sent to users who share a
//! room. Disabled, every entry point returns at once and nothing is stored.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::Services,
    store::{PresenceRow, now_ms},
};

const STATES: &[&str] = &["online", "offline", "unavailable"];
/// Most users whose state is remembered; past it the memory starts over.
const KNOWN_CAPACITY: usize = 100_000;

/// The presence state each user was last stored with, so a `/sync?set_presence=` that changes
/// nothing costs no query.
#[derive(Default)]
pub struct KnownStates(Mutex<HashMap<String, String>>);

impl KnownStates {
    fn is(&self, user_id: &str, state: &str) -> bool {
        self.0
            .lock()
            .expect("presence lock poisoned")
            .get(user_id)
            .is_some_and(|s| s == state)
    }

    fn set(&self, user_id: &str, state: &str) {
        let mut known = self.0.lock().expect("presence lock poisoned");
        if known.len() >= KNOWN_CAPACITY {
            known.clear();
        }
        known.insert(user_id.to_owned(), state.to_owned());
    }
}

impl Services {
    /// Sets presence explicitly (`PUT /presence/{userId}/status`).
    pub async fn set_presence(
        &self,
        user_id: &str,
        state: &str,
        status_msg: Option<&str>,
    ) -> Result<()> {
        if !self.config.presence.enabled {
            return Ok(());
        }
        if !STATES.contains(&state) {
            return Err(Error::invalid_param(format!(
                "Unknown presence state {state}"
            )));
        }
        let reservation = self.stream.reserve();
        self.store
            .set_presence(&PresenceRow {
                user_id: user_id.to_owned(),
                state: state.to_owned(),
                status_msg: status_msg.map(str::to_owned),
                last_active_ts: now_ms(),
                stream_ordering: reservation.position,
            })
            .await?;
        self.presence_states.set(user_id, state);
        let rooms = self.user_rooms(user_id).await?;
        self.activity
            .presence_changed(user_id, &rooms.rooms, reservation.position);
        Ok(())
    }

    /// `/sync?set_presence=`: records the state if it changed.
    pub async fn touch_presence(&self, user_id: &str, state: &str) -> Result<()> {
        if !self.config.presence.enabled || self.presence_states.is(user_id, state) {
            return Ok(());
        }
        let current = self.store.presence(user_id).await?;
        if current.as_ref().is_some_and(|p| p.state == state) {
            self.presence_states.set(user_id, state);
            return Ok(());
        }
        let msg = current.and_then(|p| p.status_msg);
        self.set_presence(user_id, state, msg.as_deref()).await
    }

    /// A user's presence for `GET /presence/{userId}/status`.
    pub async fn get_presence(&self, user_id: &str) -> Result<Value> {
        if !self.config.presence.enabled {
            return Ok(json!({"presence": "offline"}));
        }
        let Some(p) = self.store.presence(user_id).await? else {
            if self.store.user_exists(user_id).await? {
                return Ok(json!({"presence": "offline"}));
            }
            return Err(Error::not_found("Unknown user"));
        };
        let mut body =
            json!({"presence": p.state, "last_active_ago": (now_ms() - p.last_active_ts).max(0)});
        if p.state == "online" {
            body["currently_active"] = json!(true);
        }
        if let Some(msg) = p.status_msg {
            body["status_msg"] = json!(msg);
        }
        Ok(body)
    }

    /// `m.presence` events for `/sync`: users who share a room with `user_id`, changed since.
    pub(crate) async fn presence_events(
        &self,
        user_id: &str,
        since: Option<i64>,
        upto: i64,
    ) -> Result<Vec<Value>> {
        if !self.config.presence.enabled {
            return Ok(Vec::new());
        }
        if since.is_some_and(|s| !self.activity.presence_may_have_changed(s)) {
            return Ok(Vec::new());
        }
        let rows = self.store.presence_since(since.unwrap_or(0), upto).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut visible: HashSet<String> = HashSet::from([user_id.to_owned()]);
        for room in self.user_rooms(user_id).await?.rooms.iter() {
            if let Some(handle) = self.rooms.get(&self.store, room).await? {
                visible.extend(handle.lock().await.joined_members());
            }
        }
        Ok(rows
            .into_iter()
            .filter(|p| visible.contains(&p.user_id))
            .map(|p| presence_event(&p))
            .collect())
    }
}

/// An `m.presence` event as `/sync` and appservice transactions carry it.
pub(crate) fn presence_event(p: &PresenceRow) -> Value {
    let mut content =
        json!({"presence": p.state, "last_active_ago": (now_ms() - p.last_active_ts).max(0)});
    if let Some(msg) = &p.status_msg {
        content["status_msg"] = json!(msg);
    }
    json!({"type": "m.presence", "sender": p.user_id, "content": content})
}
