//! History visibility, applied on every read path: which events of a room a user may see.

use serde_json::Value;

use crate::{
    error::Result,
    service::Services,
    store::{EventRow, MembershipRow},
};

/// A user's membership history and the room's visibility history, enough to judge any event.
pub struct Viewer {
    memberships: Vec<MembershipRow>,
    visibility: Vec<(i64, String)>,
}

impl Viewer {
    fn latest<T>(rows: &[(i64, T)], at: i64) -> Option<&T> {
        rows.iter().rev().find(|(p, _)| *p <= at).map(|(_, v)| v)
    }

    /// The user's membership for judging the event at `at`. For the user's own membership event
    /// it is the more joined of before and after it, so a user sees their own join, and their
    /// own leave or kick from a room they were in or invited to.
    fn membership_at(&self, at: i64) -> Option<&str> {
        let mut older = self
            .memberships
            .iter()
            .rev()
            .skip_while(|m| m.stream_ordering > at);
        let latest = older.next()?;
        if latest.stream_ordering != at {
            return Some(&latest.membership);
        }
        let before = older.next().map(|m| m.membership.as_str());
        let own = latest.membership.as_str();
        if own == "leave" && matches!(before, Some("join" | "invite")) {
            return Some("join");
        }
        const PRIORITY: [&str; 5] = ["join", "invite", "knock", "leave", "ban"];
        let rank = |m: Option<&str>| {
            m.and_then(|m| PRIORITY.iter().position(|p| *p == m))
                .unwrap_or(PRIORITY.len())
        };
        Some(if rank(before) < rank(Some(own)) {
            before.unwrap_or(own)
        } else {
            own
        })
    }

    /// Whether the event at stream position `at` is visible.
    pub fn can_see(&self, at: i64) -> bool {
        let visibility = Self::latest(&self.visibility, at)
            .map(String::as_str)
            .unwrap_or("shared");
        if visibility == "world_readable" {
            return true;
        }
        match self.membership_at(at) {
            Some("join") => return true,
            Some("invite") if visibility == "invited" => return true,
            _ => {}
        }
        // `shared`: visible to anyone who joined at this point or later.
        visibility == "shared"
            && self
                .memberships
                .iter()
                .any(|m| m.membership == "join" && m.stream_ordering >= at)
    }

    /// The user's latest membership.
    pub fn current(&self) -> Option<&str> {
        self.memberships.last().map(|m| m.membership.as_str())
    }

    /// Whether the room is world-readable now.
    pub fn world_readable_now(&self) -> bool {
        self.visibility
            .last()
            .is_some_and(|(_, v)| v == "world_readable")
    }
}

impl Services {
    /// Loads what [`Viewer::can_see`] needs for `user_id` in `room_id`.
    pub async fn viewer(&self, room_id: &str, user_id: &str) -> Result<Viewer> {
        let memberships = self.store.membership_history(room_id, user_id).await?;
        let visibility = self
            .store
            .state_history(room_id, "m.room.history_visibility")
            .await?
            .into_iter()
            .map(|e| {
                let v: Value = serde_json::from_str(&e.json).unwrap_or_default();
                let hv = v["content"]["history_visibility"]
                    .as_str()
                    .unwrap_or("shared")
                    .to_owned();
                (e.stream_ordering, hv)
            })
            .collect();
        Ok(Viewer {
            memberships,
            visibility,
        })
    }

    /// Drops the events `user_id` may not see.
    pub async fn visible_events(
        &self,
        room_id: &str,
        user_id: &str,
        events: Vec<EventRow>,
    ) -> Result<Vec<EventRow>> {
        if events.is_empty() {
            return Ok(events);
        }
        let viewer = self.viewer(room_id, user_id).await?;
        Ok(events
            .into_iter()
            .filter(|e| viewer.can_see(e.stream_ordering))
            .collect())
    }
}
