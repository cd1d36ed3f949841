//! `/sync`: initial and incremental, long-polling until something the user can see changes.

pub mod lazy;
mod room;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use ruma::api::client::filter::FilterDefinition;
use serde_json::{Map, Value, json};

use crate::{
    error::{Error, Result},
    service::{Services, activity::UserRooms, stream::Positions},
};

/// A `/sync` or pagination token: `s<stream>_<ephemeral>`, or `s<stream>_<ephemeral>_<to_device>`
/// when a sync held back to-device messages. It names the point just after stream position
/// `stream`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Token {
    pub stream: i64,
    pub ephemeral: i64,
    /// The position up to which to-device messages were delivered, when that is short of
    /// `stream` (a sync returns at most [`MAX_TO_DEVICE`] of them).
    pub to_device: Option<i64>,
}

impl Token {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::invalid_param(format!("Invalid token {s:?}"));
        let rest = s.strip_prefix('s').ok_or_else(bad)?;
        let mut parts = rest.split('_');
        let stream = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let ephemeral = parts
            .next()
            .map(|p| p.parse().map_err(|_| bad()))
            .transpose()?
            .unwrap_or(0);
        let to_device = parts
            .next()
            .map(|p| p.parse().map_err(|_| bad()))
            .transpose()?;
        Ok(Token {
            stream,
            ephemeral,
            to_device,
        })
    }

    pub fn at(stream: i64) -> Self {
        Token {
            stream,
            ephemeral: 0,
            to_device: None,
        }
    }

    /// Where to-device delivery stands: up to `to_device` when held back, else up to `stream`.
    pub fn to_device_position(&self) -> i64 {
        self.to_device.unwrap_or(self.stream).min(self.stream)
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}_{}", self.stream, self.ephemeral)?;
        match self.to_device {
            Some(p) => write!(f, "_{p}"),
            None => Ok(()),
        }
    }
}

/// Most to-device messages one `/sync` returns; the rest follow in the next.
pub const MAX_TO_DEVICE: usize = 100;
/// Most timeline events one room returns in one `/sync`, whatever the filter asks.
pub const MAX_TIMELINE_LIMIT: usize = 500;
/// Timeline events per room when the filter sets no limit.
pub const DEFAULT_TIMELINE_LIMIT: usize = 10;
/// Longest long-poll we hold.
const MAX_TIMEOUT: Duration = Duration::from_secs(300);

/// A `/sync` request, parsed.
#[derive(Clone, Debug)]
pub struct SyncRequest {
    pub user_id: String,
    pub device_id: String,
    pub since: Option<Token>,
    pub full_state: bool,
    pub timeout: Duration,
    pub filter: FilterDefinition,
    pub set_presence: Option<String>,
}

impl Services {
    /// Answers a sync, waiting up to `timeout` for something to report.
    pub async fn sync(&self, req: SyncRequest) -> Result<Value> {
        let deadline = Instant::now() + req.timeout.min(MAX_TIMEOUT);
        if let Some(presence) = &req.set_presence {
            self.touch_presence(&req.user_id, presence).await?;
        }
        if req.since.is_none() || req.full_state {
            self.lazy_members.reset(&req.user_id, &req.device_id);
        }
        let mut changes = self.stream.subscribe();
        loop {
            let now = *changes.borrow_and_update();
            // A token that held back to-device messages is never "unchanged": the rest is due.
            let unchanged = req.since.is_some_and(|t| {
                t.stream >= now.stream && t.ephemeral == now.ephemeral && t.to_device.is_none()
            });
            if !unchanged || req.full_state {
                let (body, has_content) = self.sync_once(&req, now).await?;
                if has_content
                    || req.since.is_none()
                    || req.full_state
                    || Instant::now() >= deadline
                {
                    return Ok(body);
                }
            }
            // Wait for a change this user can see, or the deadline.
            let rooms = self.user_rooms(&req.user_id).await?;
            let since = req.since.unwrap_or_default();
            let _waiting = self.metrics.as_deref().map(|m| m.sync_waiting());
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    let latest = *changes.borrow();
                    let (body, _) = self.sync_once(&req, latest).await?;
                    return Ok(body);
                }
                match tokio::time::timeout(remaining, changes.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(Error::internal("stream closed")),
                    Err(_) => continue,
                }
                if self.activity.changed_since(
                    &req.user_id,
                    &rooms.rooms,
                    since.stream,
                    since.ephemeral,
                ) {
                    break;
                }
            }
        }
    }

    /// The user's latest membership in each room and the rooms they forgot, cached until one
    /// of them changes.
    pub(crate) async fn user_rooms(&self, user_id: &str) -> Result<Arc<UserRooms>> {
        let (cached, generation) = self.activity.user_rooms(user_id);
        if let Some(rooms) = cached {
            return Ok(rooms);
        }
        let memberships = self.store.memberships_of_user(user_id).await?;
        let forgotten = self
            .store
            .forgotten_rooms(user_id)
            .await?
            .into_iter()
            .collect();
        let rooms = memberships.iter().map(|m| m.room_id.clone()).collect();
        let loaded = UserRooms {
            memberships,
            forgotten,
            rooms,
        };
        Ok(self.activity.set_user_rooms(user_id, loaded, generation))
    }

    /// One pass: everything between `since` and `now`. Returns the body and whether it carries
    /// anything a client would act on.
    async fn sync_once(&self, req: &SyncRequest, now: Positions) -> Result<(Value, bool)> {
        let since = req.since;
        let mut join = Map::new();
        let mut invite = Map::new();
        let mut knock = Map::new();
        let mut leave = Map::new();
        let user_rooms = self.user_rooms(&req.user_id).await?;
        let forgotten = &user_rooms.forgotten;
        let room_filter = &req.filter.room;
        for m in &user_rooms.memberships {
            if room_filter
                .not_rooms
                .iter()
                .any(|r| r.as_str() == m.room_id)
                || room_filter
                    .rooms
                    .as_ref()
                    .is_some_and(|rs| !rs.iter().any(|r| r.as_str() == m.room_id))
            {
                continue;
            }
            let changed_membership = since.is_none_or(|s| m.stream_ordering > s.stream)
                && m.stream_ordering <= now.stream;
            match m.membership.as_str() {
                "join" => {
                    if let Some(room) = self.sync_joined_room(req, m, now).await? {
                        join.insert(m.room_id.clone(), room);
                    }
                }
                "invite" if changed_membership => {
                    invite.insert(m.room_id.clone(), json!({"invite_state": {"events": self.stripped_state(&m.room_id, &m.event_id).await?}}));
                }
                "knock" if changed_membership => {
                    knock.insert(m.room_id.clone(), json!({"knock_state": {"events": self.stripped_state(&m.room_id, &m.event_id).await?}}));
                }
                "leave" | "ban" if !forgotten.contains(&m.room_id) => {
                    let wanted = if since.is_some() {
                        changed_membership
                    } else {
                        room_filter.include_leave
                    };
                    if wanted {
                        leave.insert(m.room_id.clone(), self.sync_left_room(req, m).await?);
                    }
                }
                _ => {}
            }
        }
        let account_data = self
            .global_account_data(
                &req.user_id,
                since.map(|s| s.stream).unwrap_or(0),
                now.stream,
            )
            .await?;
        let presence = self
            .presence_events(&req.user_id, since.map(|s| s.stream), now.stream)
            .await?;
        let (to_device, to_device_upto) = self
            .to_device_for_sync(
                &req.user_id,
                &req.device_id,
                since.map(|s| s.to_device_position()),
                now.stream,
            )
            .await?;
        let (changed, left) = match since {
            Some(s) => {
                self.device_list_delta(&req.user_id, s.stream, now.stream)
                    .await?
            }
            None => (Vec::new(), Vec::new()),
        };
        let key_counts = self.device_key_counts(&req.user_id, &req.device_id).await?;
        let has_content = !to_device.is_empty()
            || !changed.is_empty()
            || !left.is_empty()
            || !join.is_empty()
            || !invite.is_empty()
            || !knock.is_empty()
            || !leave.is_empty()
            || !account_data.is_empty()
            || !presence.is_empty();
        let body = json!({
            "next_batch": Token { stream: now.stream, ephemeral: now.ephemeral, to_device: to_device_upto }.to_string(),
            "rooms": {"join": join, "invite": invite, "knock": knock, "leave": leave},
            "account_data": {"events": account_data},
            "presence": {"events": presence},
            "to_device": {"events": to_device},
            "device_lists": {"changed": changed, "left": left},
            "device_one_time_keys_count": key_counts.one_time,
            "device_unused_fallback_key_types": key_counts.unused_fallback,
        });
        Ok((body, has_content))
    }

    async fn global_account_data(
        &self,
        user_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<Value>> {
        if !self.activity.account_data_may_have_changed(user_id, after) {
            return Ok(Vec::new());
        }
        let rows = self.store.account_data_since(user_id, after).await?;
        Ok(rows
            .into_iter()
            .filter(|r| r.room_id.is_empty() && r.stream_id <= upto)
            .map(|r| json!({"type": r.data_type, "content": serde_json::from_str::<Value>(&r.content).unwrap_or_default()}))
            .collect())
    }
}
