//! The newest events of the most recently active rooms, in memory, so a woken `/sync` reads the
//! few events it reports without a database round trip.
//!
//! A room's buffer is complete for every position after its `since`: the database writer adds
//! events in the room's stream order, after they commit and before their positions become visible
//! to readers, and a room whose stored events change (a redaction) is dropped. Bounded
//! per room and in rooms, so memory stays small whatever the traffic.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

use crate::store::{EventRow, NewEvent};

/// Events kept per room.
const PER_ROOM: usize = 32;
/// Rooms kept; the one idle longest makes way.
const ROOMS: usize = 256;

struct RoomEvents {
    /// Every event of the room after this position is in `events`.
    since: i64,
    events: VecDeque<EventRow>,
}

#[derive(Default)]
pub struct RecentEvents {
    rooms: Mutex<HashMap<String, RoomEvents>>,
}

impl RecentEvents {
    /// Adds just-committed events of one room, in stream order.
    pub fn add(&self, room_id: &str, new: &[NewEvent<'_>]) {
        let Some(first) = new.first() else {
            return;
        };
        let mut rooms = self.rooms.lock().expect("recent events lock poisoned");
        if !rooms.contains_key(room_id) && rooms.len() >= ROOMS {
            let idle = rooms
                .iter()
                .min_by_key(|(_, r)| r.events.back().map_or(r.since, |e| e.stream_ordering))
                .map(|(k, _)| k.clone());
            if let Some(idle) = idle {
                rooms.remove(&idle);
            }
        }
        let room = rooms
            .entry(room_id.to_owned())
            .or_insert_with(|| RoomEvents {
                since: first.stream_ordering - 1,
                events: VecDeque::with_capacity(PER_ROOM),
            });
        for e in new {
            let (txn_user, txn_device, txn_id) = match e.txn {
                Some((u, d, t)) => (Some(u.to_owned()), Some(d.to_owned()), Some(t.to_owned())),
                None => (None, None, None),
            };
            room.events.push_back(EventRow {
                stream_ordering: e.stream_ordering,
                event_id: e.event_id.to_owned(),
                room_id: e.room_id.to_owned(),
                sender: e.sender.to_owned(),
                event_type: e.event_type.to_owned(),
                state_key: e.state_key.map(str::to_owned),
                json: e.json.to_owned(),
                redacted_by: None,
                txn_user,
                txn_device,
                txn_id,
            });
            while room.events.len() > PER_ROOM {
                if let Some(old) = room.events.pop_front() {
                    room.since = old.stream_ordering;
                }
            }
        }
    }

    /// Drops a room whose stored events changed.
    pub fn forget_room(&self, room_id: &str) {
        self.rooms
            .lock()
            .expect("recent events lock poisoned")
            .remove(room_id);
    }

    /// The room's events in `(after, upto]`, oldest first, the newest `limit` of them; `None`
    /// when memory does not hold all of them.
    pub fn latest(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
        limit: usize,
    ) -> Option<Vec<EventRow>> {
        let rooms = self.rooms.lock().expect("recent events lock poisoned");
        let room = rooms.get(room_id)?;
        if after < room.since {
            return None;
        }
        let mut out: Vec<EventRow> = room
            .events
            .iter()
            .rev()
            .filter(|e| e.stream_ordering > after && e.stream_ordering <= upto)
            .take(limit)
            .cloned()
            .collect();
        out.reverse();
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(position: i64, id: &str) -> NewEvent<'_> {
        NewEvent {
            stream_ordering: position,
            event_id: id,
            room_id: "!r:x",
            sender: "@a:x",
            event_type: "m.room.message",
            state_key: None,
            depth: position,
            origin_server_ts: 0,
            json: "{}",
            relates_to: None,
            rel_type: None,
            txn: None,
            membership: None,
            prev_events: &[],
        }
    }

    fn ids(events: &[EventRow]) -> Vec<i64> {
        events.iter().map(|e| e.stream_ordering).collect()
    }

    #[test]
    fn answers_only_ranges_it_holds_completely() {
        let r = RecentEvents::default();
        r.add("!r:x", &[new(10, "$a"), new(12, "$b")]);
        r.add("!r:x", &[new(15, "$c")]);
        assert_eq!(ids(&r.latest("!r:x", 9, 15, 10).unwrap()), vec![10, 12, 15]);
        assert_eq!(ids(&r.latest("!r:x", 10, 14, 10).unwrap()), vec![12]);
        assert_eq!(ids(&r.latest("!r:x", 9, 15, 2).unwrap()), vec![12, 15]);
        assert!(
            r.latest("!r:x", 8, 15, 10).is_none(),
            "position 9 is not known"
        );
        assert!(r.latest("!other:x", 20, 30, 10).is_none());
        r.forget_room("!r:x");
        assert!(r.latest("!r:x", 12, 15, 10).is_none());
    }

    #[test]
    fn dropping_old_events_moves_the_known_range() {
        let r = RecentEvents::default();
        let ids_owned: Vec<String> = (0..PER_ROOM + 5).map(|i| format!("${i}")).collect();
        for (i, id) in ids_owned.iter().enumerate() {
            r.add("!r:x", &[new(i as i64 + 1, id)]);
        }
        assert!(r.latest("!r:x", 4, 100, 100).is_none());
        assert_eq!(r.latest("!r:x", 5, 100, 100).unwrap().len(), PER_ROOM);
    }
}
