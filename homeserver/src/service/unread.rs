//! Unread notification counts for `/sync` under the default push rules: messages from others
//! since the user's read receipt or their own last message; highlighted when they mention the
//! user. Counts are kept per (room, user) at the stream position they were counted to, so an
//! incremental sync adds the events it is about to return instead of counting again.

use std::{collections::HashMap, sync::Mutex};

use serde_json::Value;

use crate::{error::Result, service::Services, store::EventRow};

/// Event types that notify under the default push rules.
const COUNTED: &[&str] = &[
    "m.room.message",
    "m.room.encrypted",
    "m.sticker",
    "m.call.invite",
    "m.poll.start",
];
/// Most notifications counted per room (a badge shows "999+" long before).
const NOTIFICATION_CAP: usize = 1000;
/// Unread events whose content is read for highlights when counting from the database.
const HIGHLIGHT_SCAN: i64 = 100;
/// Most rooms remembered; past it the cache starts over.
const CAPACITY: usize = 50_000;

/// Counts as of a stream position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub notifications: usize,
    pub highlights: usize,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    upto: i64,
    counts: Counts,
}

/// Remembered counts by room, then user.
#[derive(Default)]
pub struct Unread {
    rooms: Mutex<HashMap<String, HashMap<String, Entry>>>,
}

impl Unread {
    /// Forgets a user's counts in a room (their read receipt moved).
    pub fn forget(&self, room_id: &str, user_id: &str) {
        if let Some(users) = self
            .rooms
            .lock()
            .expect("unread lock poisoned")
            .get_mut(room_id)
        {
            users.remove(user_id);
        }
    }

    /// The room had no events in `(after, upto]`: counts valid at `after` or later still hold.
    pub fn advance(&self, room_id: &str, user_id: &str, after: i64, upto: i64) {
        let mut rooms = self.rooms.lock().expect("unread lock poisoned");
        if let Some(entry) = rooms.get_mut(room_id).and_then(|u| u.get_mut(user_id))
            && entry.upto >= after
        {
            entry.upto = entry.upto.max(upto);
        }
    }

    fn get(&self, room_id: &str, user_id: &str) -> Option<Entry> {
        self.rooms
            .lock()
            .expect("unread lock poisoned")
            .get(room_id)
            .and_then(|u| u.get(user_id))
            .copied()
    }

    fn set(&self, room_id: &str, user_id: &str, entry: Entry) {
        let mut rooms = self.rooms.lock().expect("unread lock poisoned");
        if rooms.len() >= CAPACITY && !rooms.contains_key(room_id) {
            rooms.clear();
        }
        rooms
            .entry(room_id.to_owned())
            .or_default()
            .insert(user_id.to_owned(), entry);
    }
}

/// Every event of a room in `(after, upto]`, oldest first: what an incremental sync returns
/// when its timeline was not limited.
pub struct NewEvents<'a> {
    pub after: i64,
    pub upto: i64,
    pub events: &'a [EventRow],
}

impl Services {
    /// The user's counts in a room as of `upto`. With `new`, counts remembered at a position
    /// inside `[new.after, new.upto]` are carried forward over the later `new.events`;
    /// otherwise they are counted from the database.
    pub(crate) async fn unread_counts(
        &self,
        room_id: &str,
        user_id: &str,
        upto: i64,
        new: Option<NewEvents<'_>>,
    ) -> Result<Counts> {
        if let Some(new) = new
            && let Some(entry) = self.unread.get(room_id, user_id)
            && (new.after..=new.upto).contains(&entry.upto)
        {
            let mut counts = entry.counts;
            for event in new.events.iter().filter(|e| e.stream_ordering > entry.upto) {
                add_event(&mut counts, event, user_id);
            }
            self.unread.set(
                room_id,
                user_id,
                Entry {
                    upto: new.upto,
                    counts,
                },
            );
            return Ok(counts);
        }
        let counts = self.count_unread_from_store(room_id, user_id).await?;
        self.unread.set(room_id, user_id, Entry { upto, counts });
        Ok(counts)
    }

    async fn count_unread_from_store(&self, room_id: &str, user_id: &str) -> Result<Counts> {
        let read_up_to = self.store.read_up_to(room_id, user_id).await?;
        let own = self.store.last_sent_by(room_id, user_id).await?;
        let after = read_up_to.max(own);
        let notifications = self
            .store
            .count_unread(room_id, after, user_id, COUNTED, NOTIFICATION_CAP as i64)
            .await?;
        if notifications == 0 {
            return Ok(Counts::default());
        }
        // Highlights need the content; the newest unread are enough for a badge.
        let events = self
            .store
            .unread_contents(room_id, after, user_id, COUNTED, HIGHLIGHT_SCAN)
            .await?;
        let highlights = events
            .iter()
            .filter(|json| {
                let v: Value = serde_json::from_str(json).unwrap_or_default();
                mentions(&v["content"], user_id)
            })
            .count();
        Ok(Counts {
            notifications,
            highlights,
        })
    }
}

/// Carries counts over one more event: the user's own message reads everything before it.
fn add_event(counts: &mut Counts, event: &EventRow, user_id: &str) {
    if event.sender == user_id {
        *counts = Counts::default();
        return;
    }
    if !COUNTED.contains(&event.event_type.as_str()) || counts.notifications >= NOTIFICATION_CAP {
        return;
    }
    counts.notifications += 1;
    let v: Value = serde_json::from_str(&event.json).unwrap_or_default();
    if mentions(&v["content"], user_id) {
        counts.highlights += 1;
    }
}

/// Whether content mentions the user: `m.mentions` when present, else the localpart in the body.
fn mentions(content: &Value, user_id: &str) -> bool {
    match content.get("m.mentions") {
        Some(mentions) => {
            mentions["user_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|i| i == user_id))
                || mentions["room"] == true
        }
        None => {
            let localpart = user_id
                .trim_start_matches('@')
                .split(':')
                .next()
                .unwrap_or_default()
                .to_lowercase();
            content["body"]
                .as_str()
                .is_some_and(|b| b.to_lowercase().contains(&localpart))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(sender: &str, event_type: &str, content: Value) -> EventRow {
        EventRow {
            stream_ordering: 1,
            event_id: "$e".into(),
            room_id: "!r:x".into(),
            sender: sender.into(),
            event_type: event_type.into(),
            state_key: None,
            json: json!({"content": content}).to_string(),
            redacted_by: None,
            txn_user: None,
            txn_device: None,
            txn_id: None,
        }
    }

    #[test]
    fn counts_others_messages_and_resets_on_own() {
        let me = "@alice:x";
        let mut c = Counts::default();
        add_event(
            &mut c,
            &event("@bob:x", "m.room.message", json!({"body": "hi"})),
            me,
        );
        add_event(
            &mut c,
            &event("@bob:x", "m.room.message", json!({"body": "hey Alice"})),
            me,
        );
        add_event(&mut c, &event("@bob:x", "m.reaction", json!({})), me);
        assert_eq!(
            c,
            Counts {
                notifications: 2,
                highlights: 1
            }
        );
        add_event(
            &mut c,
            &event(me, "m.room.message", json!({"body": "yo"})),
            me,
        );
        assert_eq!(c, Counts::default());
    }

    #[test]
    fn explicit_mentions_win_over_the_body() {
        let me = "@alice:x";
        assert!(!mentions(&json!({"body": "alice", "m.mentions": {}}), me));
        assert!(mentions(
            &json!({"body": "x", "m.mentions": {"user_ids": [me]}}),
            me
        ));
        assert!(mentions(
            &json!({"body": "x", "m.mentions": {"room": true}}),
            me
        ));
    }
}
