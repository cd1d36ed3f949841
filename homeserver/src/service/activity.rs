//! Where the streams last changed, so a waiting `/sync` can tell cheaply whether anything it
//! cares about happened: per room (events, receipts, typing) and per user (account data,
//! memberships, presence). Bounded: the oldest entries are dropped, and a dropped entry reads as
//! "changed", which only costs a wasted query.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
};

const CAPACITY: usize = 200_000;

#[derive(Default)]
pub struct Activity {
    /// The stream position when this process started: changes before it are not tracked here.
    started_at: std::sync::atomic::AtomicI64,
    rooms: Mutex<HashMap<String, i64>>,
    users: Mutex<HashMap<String, i64>>,
    /// Rooms each user has a membership in (any kind), once loaded.
    user_rooms: Mutex<HashMap<String, Arc<HashSet<String>>>>,
    /// Rooms whose typing set changed, with the ephemeral serial of the change.
    typing: Mutex<HashMap<String, i64>>,
}

fn bump(map: &Mutex<HashMap<String, i64>>, key: &str, position: i64) {
    let mut m = map.lock().expect("activity lock poisoned");
    if m.len() >= CAPACITY {
        // Forgetting is safe only because callers treat an unknown room as unchanged *after* a
        // position they already answered; keep the newest half instead of dropping all.
        let mut entries: Vec<(String, i64)> = m.drain().collect();
        entries.sort_by_key(|(_, p)| std::cmp::Reverse(*p));
        m.extend(entries.into_iter().take(CAPACITY / 2));
    }
    let entry = m.entry(key.to_owned()).or_insert(position);
    *entry = (*entry).max(position);
}

impl Activity {
    pub fn new(started_at: i64) -> Self {
        let a = Self::default();
        a.started_at
            .store(started_at, std::sync::atomic::Ordering::Relaxed);
        a
    }

    /// Whether a room may have events or receipts after `after`; `true` when this process cannot
    /// tell (the position predates its start).
    pub fn room_may_have_changed(&self, room_id: &str, after: i64) -> bool {
        if after < self.started_at.load(std::sync::atomic::Ordering::Relaxed) {
            return true;
        }
        self.rooms
            .lock()
            .expect("activity lock poisoned")
            .get(room_id)
            .is_some_and(|p| *p > after)
    }

    /// Whether typing in a room changed after ephemeral serial `since`.
    pub fn typing_changed_since(&self, room_id: &str, since: i64) -> bool {
        self.typing
            .lock()
            .expect("activity lock poisoned")
            .get(room_id)
            .is_some_and(|p| *p > since)
    }

    pub fn room_changed(&self, room_id: &str, position: i64) {
        bump(&self.rooms, room_id, position);
    }

    pub fn user_changed(&self, user_id: &str, position: i64) {
        bump(&self.users, user_id, position);
    }

    pub fn typing_changed(&self, room_id: &str, serial: i64) {
        bump(&self.typing, room_id, serial);
    }

    pub fn membership_changed(&self, room_id: &str, user_id: &str, position: i64) {
        self.user_changed(user_id, position);
        let mut m = self.user_rooms.lock().expect("activity lock poisoned");
        if let Some(rooms) = m.get_mut(user_id) {
            Arc::make_mut(rooms).insert(room_id.to_owned());
        }
    }

    /// The cached set of a user's rooms, if loaded.
    pub fn user_rooms(&self, user_id: &str) -> Option<Arc<HashSet<String>>> {
        self.user_rooms
            .lock()
            .expect("activity lock poisoned")
            .get(user_id)
            .cloned()
    }

    pub fn set_user_rooms(&self, user_id: &str, rooms: HashSet<String>) -> Arc<HashSet<String>> {
        let mut m = self.user_rooms.lock().expect("activity lock poisoned");
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.entry(user_id.to_owned())
            .or_insert_with(|| Arc::new(rooms))
            .clone()
    }

    /// Whether anything for `user_id` in `rooms` moved past `stream` (or typing past `ephemeral`).
    pub fn changed_since(
        &self,
        user_id: &str,
        rooms: &HashSet<String>,
        stream: i64,
        ephemeral: i64,
    ) -> bool {
        let moved = |map: &Mutex<HashMap<String, i64>>, key: &str, since: i64| {
            map.lock()
                .expect("activity lock poisoned")
                .get(key)
                .is_some_and(|p| *p > since)
        };
        moved(&self.users, user_id, stream)
            || rooms
                .iter()
                .any(|r| moved(&self.rooms, r, stream) || moved(&self.typing, r, ephemeral))
    }
}
