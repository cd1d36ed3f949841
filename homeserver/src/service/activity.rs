//! Where the streams last changed, so a waiting `/sync` can tell cheaply whether anything it
//! cares about happened: per room (events, receipts, typing) and per user (account data,
//! memberships, presence), and which streams a woken `/sync` can skip reading (receipts, account
//! data, presence). Bounded: the oldest entries are dropped; a position before the oldest one
//! kept reads as "changed", which only costs a wasted query.
//!
//! It also caches each user's memberships and forgotten rooms, dropped whenever they change.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, Ordering},
    },
};

use crate::store::MembershipRow;

const CAPACITY: usize = 200_000;

/// A user's latest membership in every room they had one in, and the rooms they forgot.
#[derive(Debug, Default)]
pub struct UserRooms {
    pub memberships: Vec<MembershipRow>,
    pub forgotten: HashSet<String>,
    /// The rooms of `memberships`, any membership.
    pub rooms: HashSet<String>,
}

#[derive(Default)]
pub struct Activity {
    /// The stream position when this process started: changes before it are not tracked here.
    started_at: AtomicI64,
    /// Position of the oldest change dropped from a full map: asking about anything older
    /// reads as "changed".
    forgotten_before: AtomicI64,
    rooms: Mutex<HashMap<String, i64>>,
    users: Mutex<HashMap<String, i64>>,
    /// Rooms whose receipts changed.
    receipts: Mutex<HashMap<String, i64>>,
    /// Users whose account data (global or per room) changed.
    account_data: Mutex<HashMap<String, i64>>,
    /// The last presence change of anyone.
    presence: AtomicI64,
    /// Memberships of each user, once loaded, with a generation that every change bumps so a
    /// load that raced with a change is not kept.
    user_rooms: Mutex<(u64, HashMap<String, Arc<UserRooms>>)>,
    /// Rooms whose typing set changed, with the ephemeral serial of the change.
    typing: Mutex<HashMap<String, i64>>,
    /// Rooms with a member whose devices or keys changed.
    device_lists: Mutex<HashMap<String, i64>>,
    /// The last change of anyone's devices or keys.
    device_lists_any: AtomicI64,
    /// Users a to-device message was queued for.
    to_device: Mutex<HashMap<String, i64>>,
    /// Rooms whose memberships changed.
    members: Mutex<HashMap<String, i64>>,
}

/// Records a change; returns the newest position dropped to make room, if any.
fn bump(map: &Mutex<HashMap<String, i64>>, key: &str, position: i64) -> Option<i64> {
    let mut m = map.lock().expect("activity lock poisoned");
    let mut dropped = None;
    if m.len() >= CAPACITY {
        // Keep the newest half; the caller remembers the newest dropped position.
        let mut entries: Vec<(String, i64)> = m.drain().collect();
        entries.sort_by_key(|(_, p)| std::cmp::Reverse(*p));
        dropped = entries.get(CAPACITY / 2).map(|(_, p)| *p);
        m.extend(entries.into_iter().take(CAPACITY / 2));
    }
    let entry = m.entry(key.to_owned()).or_insert(position);
    *entry = (*entry).max(position);
    dropped
}

impl Activity {
    pub fn new(started_at: i64) -> Self {
        let a = Self::default();
        a.started_at.store(started_at, Ordering::Relaxed);
        a
    }

    /// Whether this process cannot tell what changed after `after` (it predates the start, or
    /// changes that old were dropped).
    fn unknown(&self, after: i64) -> bool {
        after < self.started_at.load(Ordering::Relaxed)
            || after <= self.forgotten_before.load(Ordering::Relaxed)
    }

    fn bump(&self, map: &Mutex<HashMap<String, i64>>, key: &str, position: i64) {
        if let Some(dropped) = bump(map, key, position) {
            self.forgotten_before.fetch_max(dropped, Ordering::Relaxed);
        }
    }

    fn moved(&self, map: &Mutex<HashMap<String, i64>>, key: &str, after: i64) -> bool {
        self.unknown(after)
            || map
                .lock()
                .expect("activity lock poisoned")
                .get(key)
                .is_some_and(|p| *p > after)
    }

    /// Whether a room may have events or receipts after `after`; `true` when this process cannot
    /// tell (the position predates its start).
    pub fn room_may_have_changed(&self, room_id: &str, after: i64) -> bool {
        self.moved(&self.rooms, room_id, after)
    }

    /// Whether anyone's membership of a room may have changed after `after`.
    pub fn members_may_have_changed(&self, room_id: &str, after: i64) -> bool {
        self.moved(&self.members, room_id, after)
    }

    /// Whether a room's receipts may have changed after `after`.
    pub fn receipts_may_have_changed(&self, room_id: &str, after: i64) -> bool {
        self.moved(&self.receipts, room_id, after)
    }

    /// Whether a user's account data may have changed after `after`.
    pub fn account_data_may_have_changed(&self, user_id: &str, after: i64) -> bool {
        self.moved(&self.account_data, user_id, after)
    }

    /// Whether anyone's presence may have changed after `after`.
    pub fn presence_may_have_changed(&self, after: i64) -> bool {
        self.unknown(after) || self.presence.load(Ordering::Relaxed) > after
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
        self.bump(&self.rooms, room_id, position);
    }

    pub fn user_changed(&self, user_id: &str, position: i64) {
        self.bump(&self.users, user_id, position);
    }

    pub fn typing_changed(&self, room_id: &str, serial: i64) {
        // Typing counts ephemeral serials, not stream positions: a dropped entry only means a
        // typing change is not reported to a sync that slept through 100,000 others.
        bump(&self.typing, room_id, serial);
    }

    /// A receipt in `room_id` was stored at `position`.
    pub fn receipt_changed(&self, room_id: &str, position: i64) {
        self.bump(&self.receipts, room_id, position);
        self.room_changed(room_id, position);
    }

    /// Account data of `user_id` (in `room_id`, or global when empty) was stored at `position`.
    pub fn account_data_changed(&self, user_id: &str, room_id: &str, position: i64) {
        self.bump(&self.account_data, user_id, position);
        self.user_changed(user_id, position);
        if !room_id.is_empty() {
            self.room_changed(room_id, position);
        }
    }

    /// Presence of `user_id` was stored at `position`; `rooms` are theirs.
    pub fn presence_changed<'a>(
        &self,
        user_id: &str,
        rooms: impl IntoIterator<Item = &'a String>,
        position: i64,
    ) {
        self.presence.fetch_max(position, Ordering::Relaxed);
        self.user_changed(user_id, position);
        for room in rooms {
            self.room_changed(room, position);
        }
    }

    /// The devices or keys of `user_id` changed at `position`; `rooms` are theirs, so everyone
    /// sharing one hears of it.
    pub fn device_list_changed<'a>(
        &self,
        user_id: &str,
        rooms: impl IntoIterator<Item = &'a String>,
        position: i64,
    ) {
        self.device_lists_any.fetch_max(position, Ordering::Relaxed);
        self.user_changed(user_id, position);
        for room in rooms {
            self.bump(&self.device_lists, room, position);
        }
    }

    /// Whether anyone's devices or keys may have changed after `after`.
    pub fn device_lists_may_have_changed(&self, after: i64) -> bool {
        self.unknown(after) || self.device_lists_any.load(Ordering::Relaxed) > after
    }

    /// A to-device message for `user_id` was queued at `position`.
    pub fn to_device_queued(&self, user_id: &str, position: i64) {
        self.bump(&self.to_device, user_id, position);
        self.user_changed(user_id, position);
    }

    /// Whether a to-device message may have been queued for `user_id` after `after`.
    pub fn to_device_may_have_changed(&self, user_id: &str, after: i64) -> bool {
        self.moved(&self.to_device, user_id, after)
    }

    pub fn membership_changed(&self, room_id: &str, user_id: &str, position: i64) {
        self.bump(&self.members, room_id, position);
        self.user_changed(user_id, position);
        self.forget_user_rooms(user_id);
    }

    /// Drops the cached memberships of a user (they changed, or a room was forgotten).
    pub fn forget_user_rooms(&self, user_id: &str) {
        let mut m = self.user_rooms.lock().expect("activity lock poisoned");
        m.0 += 1;
        m.1.remove(user_id);
    }

    /// The cached memberships of a user, if loaded, and the generation to hand back to
    /// [`Activity::set_user_rooms`] after loading them.
    pub fn user_rooms(&self, user_id: &str) -> (Option<Arc<UserRooms>>, u64) {
        let m = self.user_rooms.lock().expect("activity lock poisoned");
        (m.1.get(user_id).cloned(), m.0)
    }

    /// Caches memberships loaded since [`Activity::user_rooms`] returned `generation`, unless
    /// some membership changed meanwhile.
    pub fn set_user_rooms(
        &self,
        user_id: &str,
        rooms: UserRooms,
        generation: u64,
    ) -> Arc<UserRooms> {
        let rooms = Arc::new(rooms);
        let mut m = self.user_rooms.lock().expect("activity lock poisoned");
        if m.0 != generation {
            return rooms;
        }
        if m.1.len() >= CAPACITY {
            m.1.clear();
        }
        m.1.insert(user_id.to_owned(), rooms.clone());
        rooms
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
        stream <= self.forgotten_before.load(Ordering::Relaxed)
            || moved(&self.users, user_id, stream)
            || rooms.iter().any(|r| {
                moved(&self.rooms, r, stream)
                    || moved(&self.device_lists, r, stream)
                    || moved(&self.typing, r, ephemeral)
            })
    }
}
