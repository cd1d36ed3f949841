//! One room's part of a `/sync` response.

use std::collections::{BTreeMap, HashSet};

use ruma::api::client::filter::LazyLoadOptions;
use serde_json::{Map, Value, json};

use super::{DEFAULT_TIMELINE_LIMIT, MAX_TIMELINE_LIMIT, SyncRequest, Token};
use crate::{
    error::Result,
    service::{
        Services,
        client_event::{Viewing, client_event, stripped_event},
        filter,
        relations::{add_bundles, bundles_from},
        stream::Positions,
        unread::NewEvents,
    },
    store::{EventRow, MembershipRow},
};

/// State types shown to invitees and knockers.
const STRIPPED_TYPES: &[&str] = &[
    "m.room.create",
    "m.room.join_rules",
    "m.room.name",
    "m.room.avatar",
    "m.room.canonical_alias",
    "m.room.encryption",
    "m.room.topic",
];

impl Services {
    pub(super) async fn sync_joined_room(
        &self,
        req: &SyncRequest,
        m: &MembershipRow,
        now: Positions,
    ) -> Result<Option<Value>> {
        let room_id = m.room_id.as_str();
        let since = req.since;
        let full = req.full_state || since.is_none_or(|s| m.stream_ordering > s.stream);
        let after = if full {
            0
        } else {
            since.map(|s| s.stream).unwrap_or(0)
        };
        let typing_changed =
            full || since.is_some_and(|s| self.activity.typing_changed_since(room_id, s.ephemeral));
        if !full && !typing_changed && !self.activity.room_may_have_changed(room_id, after) {
            self.unread
                .advance(room_id, &req.user_id, after, now.stream);
            return Ok(None);
        }
        let room_filter = &req.filter.room;
        let limit = room_filter
            .timeline
            .limit
            .map(|l| u64::from(l) as usize)
            .unwrap_or(DEFAULT_TIMELINE_LIMIT)
            .clamp(1, MAX_TIMELINE_LIMIT);
        let (timeline, limited) = self
            .timeline(
                room_id,
                &req.user_id,
                after,
                now.stream,
                limit,
                m.stream_ordering,
            )
            .await?;
        let unread_new = (!full && !limited).then_some(NewEvents {
            after,
            upto: now.stream,
            events: &timeline,
        });
        let counts = self
            .unread_counts(room_id, &req.user_id, now.stream, unread_new)
            .await?;
        // Unlimited, the timeline holds every event after its first, so every relation to one of
        // its events that exists yet: the bundles need no query.
        let bundles = (!limited).then(|| bundles_from(&timeline, &timeline, &req.user_id));
        let timeline: Vec<EventRow> = timeline
            .into_iter()
            .filter(|e| filter::matches(&room_filter.timeline, e))
            .collect();
        let first = timeline
            .first()
            .map(|e| e.stream_ordering - 1)
            .unwrap_or(now.stream);
        let mut state = if full {
            self.store.state_at(room_id, first).await?
        } else if limited {
            self.store.state_changes(room_id, after, first).await?
        } else {
            Vec::new()
        };
        state.retain(|e| filter::matches(&room_filter.state, e));
        if let LazyLoadOptions::Enabled {
            include_redundant_members,
        } = room_filter.state.lazy_load_options
        {
            self.lazy_members(
                req,
                room_id,
                &timeline,
                &mut state,
                !full && !limited,
                include_redundant_members,
            )
            .await?;
        }
        let viewing = Viewing {
            user_id: &req.user_id,
            device_id: &req.device_id,
        };
        let mut ephemeral = Vec::new();
        if typing_changed {
            let typing = self.typing.typing_in(room_id);
            if full && typing.is_empty() {
            } else {
                ephemeral.push(json!({"type": "m.typing", "content": {"user_ids": typing}}));
            }
        }
        if self.activity.receipts_may_have_changed(room_id, after)
            && let Some(r) = self
                .receipts_event(room_id, &req.user_id, after, now.stream)
                .await?
        {
            ephemeral.push(r);
        }
        let account_data: Vec<Value> = if self
            .activity
            .account_data_may_have_changed(&req.user_id, after)
        {
            self.store
                    .account_data_since(&req.user_id, after)
                    .await?
                    .into_iter()
                    .filter(|r| r.room_id == room_id && r.stream_id <= now.stream)
                    .map(|r| json!({"type": r.data_type, "content": serde_json::from_str::<Value>(&r.content).unwrap_or_default()}))
                    .collect()
        } else {
            Vec::new()
        };
        if !full
            && timeline.is_empty()
            && state.is_empty()
            && ephemeral.is_empty()
            && account_data.is_empty()
        {
            return Ok(None);
        }
        let bundles = match bundles {
            Some(b) => b,
            None => self.bundles_for(&timeline, &req.user_id).await?,
        };
        let mut events: Vec<Value> = timeline.iter().map(|e| client_event(e, viewing)).collect();
        add_bundles(&mut events, &timeline, &bundles);
        let mut room = json!({
            "timeline": {
                "events": events,
                "limited": limited,
                "prev_batch": Token::at(first).to_string(),
            },
            "state": {"events": state.iter().map(|e| client_event(e, viewing)).collect::<Vec<_>>()},
            "ephemeral": {"events": ephemeral},
            "account_data": {"events": account_data},
            "unread_notifications": {"notification_count": counts.notifications, "highlight_count": counts.highlights},
        });
        if full {
            room["summary"] = self.room_summary(room_id, &req.user_id).await?;
        }
        Ok(Some(room))
    }

    /// Lazy-loading: keeps only the member events of the timeline's senders (and the user), adds
    /// those an incremental unlimited timeline needs (its state is otherwise empty), and unless
    /// `redundant`, drops the ones this device already has.
    async fn lazy_members(
        &self,
        req: &SyncRequest,
        room_id: &str,
        timeline: &[EventRow],
        state: &mut Vec<EventRow>,
        incremental: bool,
        redundant: bool,
    ) -> Result<()> {
        let (user, device) = (req.user_id.as_str(), req.device_id.as_str());
        let senders: HashSet<&str> = timeline
            .iter()
            .map(|e| e.sender.as_str())
            .chain([user])
            .collect();
        state.retain(|e| {
            e.event_type != "m.room.member"
                || e.state_key.as_deref().is_some_and(|k| senders.contains(k))
        });
        if incremental {
            let in_timeline: HashSet<&str> = timeline
                .iter()
                .filter(|e| e.event_type == "m.room.member")
                .filter_map(|e| e.state_key.as_deref())
                .collect();
            let current: Vec<(String, String)> = match self.rooms.get(&self.store, room_id).await? {
                Some(handle) => {
                    let room = handle.lock().await;
                    senders
                        .iter()
                        .filter(|s| !in_timeline.contains(**s))
                        .filter_map(|s| {
                            room.get("m.room.member", s)
                                .map(|p| (s.to_string(), p.event_id.to_string()))
                        })
                        .collect()
                }
                None => Vec::new(),
            };
            let wanted = current.iter().map(|(m, e)| (m.as_str(), e.as_str()));
            let needed: Vec<&(String, String)> = if redundant {
                current.iter().collect()
            } else {
                let missing = self.lazy_members.missing(user, device, room_id, wanted);
                current
                    .iter()
                    .filter(|(m, _)| missing.contains(m.as_str()))
                    .collect()
            };
            for (_, event_id) in needed {
                if let Some(row) = self.store.event(event_id).await? {
                    state.push(row);
                }
            }
        } else if !redundant {
            let members: Vec<(&str, &str)> = state
                .iter()
                .filter(|e| e.event_type == "m.room.member")
                .filter_map(|e| Some((e.state_key.as_deref()?, e.event_id.as_str())))
                .collect();
            let missing = self.lazy_members.missing(user, device, room_id, members);
            let missing: HashSet<String> = missing.into_iter().map(str::to_owned).collect();
            state.retain(|e| {
                e.event_type != "m.room.member"
                    || e.state_key.as_deref().is_some_and(|k| missing.contains(k))
            });
        }
        self.lazy_members
            .record(user, device, room_id, state.iter().chain(timeline));
        Ok(())
    }

    /// The newest `limit` visible events in `(after, upto]`, and whether more were left out.
    async fn timeline(
        &self,
        room_id: &str,
        user_id: &str,
        after: i64,
        upto: i64,
        limit: usize,
        joined_at: i64,
    ) -> Result<(Vec<EventRow>, bool)> {
        let mut events = match self.recent.latest(room_id, after, upto, limit + 1) {
            Some(events) => events,
            None => {
                self.store
                    .room_events_latest(room_id, after, upto, limit as i64 + 1)
                    .await?
            }
        };
        // Events after the user's current join are visible by membership; older ones are judged.
        if events
            .first()
            .is_some_and(|e| e.stream_ordering < joined_at)
        {
            events = self.visible_events(room_id, user_id, events).await?;
        }
        let limited = events.len() > limit;
        if limited {
            events.drain(..events.len() - limit);
        }
        Ok((events, limited))
    }

    pub(super) async fn sync_left_room(
        &self,
        req: &SyncRequest,
        m: &MembershipRow,
    ) -> Result<Value> {
        let after = req.since.map(|s| s.stream).unwrap_or(0);
        let limit = req
            .filter
            .room
            .timeline
            .limit
            .map(|l| u64::from(l) as usize)
            .unwrap_or(DEFAULT_TIMELINE_LIMIT)
            .clamp(1, MAX_TIMELINE_LIMIT);
        let events = self
            .store
            .room_events_latest(&m.room_id, after, m.stream_ordering, limit as i64 + 1)
            .await?;
        let mut events = self
            .visible_events(&m.room_id, &req.user_id, events)
            .await?;
        let limited = events.len() > limit;
        if limited {
            events.drain(..events.len() - limit);
        }
        let first = events
            .first()
            .map(|e| e.stream_ordering - 1)
            .unwrap_or(m.stream_ordering);
        let state = if req.since.is_none() || limited {
            self.store.state_at(&m.room_id, first).await?
        } else {
            Vec::new()
        };
        let viewing = Viewing {
            user_id: &req.user_id,
            device_id: &req.device_id,
        };
        Ok(json!({
            "timeline": {
                "events": events.iter().map(|e| client_event(e, viewing)).collect::<Vec<_>>(),
                "limited": limited,
                "prev_batch": Token::at(first).to_string(),
            },
            "state": {"events": state.iter().map(|e| client_event(e, viewing)).collect::<Vec<_>>()},
            "account_data": {"events": []},
        }))
    }

    /// Stripped state for an invite or knock, with the membership event itself.
    pub(super) async fn stripped_state(
        &self,
        room_id: &str,
        membership_event: &str,
    ) -> Result<Vec<Value>> {
        let state = self.store.current_state(room_id).await?;
        let mut out: Vec<Value> = state
            .iter()
            .filter(|e| STRIPPED_TYPES.contains(&e.event_type.as_str()))
            .map(stripped_event)
            .collect();
        if let Some(own) = self.store.event(membership_event).await? {
            if let Some(inviter) = state.iter().find(|e| {
                e.event_type == "m.room.member"
                    && e.state_key.as_deref() == Some(own.sender.as_str())
            }) {
                out.push(stripped_event(inviter));
            }
            out.push(stripped_event(&own));
        }
        Ok(out)
    }

    /// `m.receipt` for receipts that changed in `(after, upto]`; others' private receipts hidden.
    async fn receipts_event(
        &self,
        room_id: &str,
        user_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Option<Value>> {
        let receipts = self.store.receipts_since(room_id, after, upto).await?;
        let mut content: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
        for r in receipts {
            if r.receipt_type == "m.read.private" && r.user_id != user_id {
                continue;
            }
            let mut data = json!({"ts": r.ts});
            if !r.thread_id.is_empty() {
                data["thread_id"] = json!(r.thread_id);
            }
            let by_type = content.entry(r.event_id).or_default();
            let users = by_type.entry(r.receipt_type).or_insert_with(|| json!({}));
            users[&r.user_id] = data;
        }
        Ok((!content.is_empty()).then(|| json!({"type": "m.receipt", "content": content})))
    }

    /// `m.heroes` and member counts.
    async fn room_summary(&self, room_id: &str, user_id: &str) -> Result<Value> {
        let joined = self.store.room_members(room_id, "join").await?;
        let invited = self.store.room_members(room_id, "invite").await?;
        let heroes: Vec<&String> = joined
            .iter()
            .chain(invited.iter())
            .filter(|u| *u != user_id)
            .take(5)
            .collect();
        Ok(
            json!({"m.heroes": heroes, "m.joined_member_count": joined.len(), "m.invited_member_count": invited.len()}),
        )
    }
}
