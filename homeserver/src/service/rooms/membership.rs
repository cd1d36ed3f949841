//! Membership changes: join, leave, invite, kick, ban, unban, knock, forget.

use std::sync::Arc;

use ruma::{OwnedRoomId, api::error::ErrorKind};
use serde_json::{Value, json};
use tokio::sync::Mutex as AsyncMutex;

use super::{EventSpec, RoomState, build::Sent};
use crate::{
    error::{Error, Result},
    service::Services,
};

/// Which membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Invite,
    Kick,
    Ban,
    Unban,
}

impl Services {
    /// The room's state handle. An unknown room is `M_NOT_FOUND` (we cannot join over federation yet).
    pub async fn room(&self, room_id: &str) -> Result<Arc<AsyncMutex<RoomState>>> {
        self.rooms
            .get(&self.store, room_id)
            .await?
            .ok_or_else(|| Error::not_found("Room not found"))
    }

    /// A room id, or the room an alias points at.
    pub async fn resolve_room(&self, id_or_alias: &str) -> Result<OwnedRoomId> {
        if id_or_alias.starts_with('#') {
            let mut room = self.store.alias_room(id_or_alias).await?;
            if room.is_none() && self.query_appservices_for_alias(id_or_alias).await {
                room = self.store.alias_room(id_or_alias).await?;
            }
            let room = room
                .ok_or_else(|| Error::not_found(format!("Room alias {id_or_alias} not found")))?;
            return OwnedRoomId::try_from(room).map_err(Error::internal);
        }
        OwnedRoomId::try_from(id_or_alias)
            .map_err(|_| Error::invalid_param("Invalid room id or alias"))
    }

    /// Sends an event into a room as `sender`, idempotently per transaction id: a repeated
    /// transaction is refused by the store's unique index and answered with the first event, so
    /// the common case costs no lookup. The room's lock is held only while the event is built:
    /// the next event of the room is built while this one is written.
    pub async fn send(&self, room_id: &str, sender: &str, spec: EventSpec) -> Result<Sent> {
        let handle = self.rooms.get(&self.store, room_id).await?;
        for attempt in 1.. {
            if let Some(sent) = self.repeated_txn(sender, &spec) {
                return Ok(sent);
            }
            let mut room = match &handle {
                Some(handle) => Some(handle.lock().await),
                None => None,
            };
            let joined = room.as_ref().is_some_and(|r| {
                spec.event_type == "m.room.member"
                    || r.membership(sender).as_deref() == Some("join")
            });
            let queued = match room.as_deref_mut() {
                Some(room) if joined => self.queue_event(room, sender, &spec)?,
                _ => {
                    // A retry of a send that went through before the user left still gets its
                    // event.
                    if let Some(sent) = self.sent_in_txn(sender, &spec).await? {
                        return Ok(sent);
                    }
                    return Err(Error::forbidden(format!(
                        "User {sender} is not in room {room_id}"
                    )));
                }
            };
            drop(room);
            let (sent, epoch, written) = queued.written().await;
            let Err(e) = written else {
                return Ok(self.remember_txn(sender, &spec, sent));
            };
            if let Some(handle) = &handle {
                self.reload_room(&mut *handle.lock().await, epoch).await;
            }
            if let Some(answer) = self.after_failed_send(e, sender, &spec, attempt).await {
                return answer;
            }
        }
        unreachable!("the loop returns")
    }

    /// The event an earlier request with the same transaction id produced, if any.
    pub(crate) async fn sent_in_txn(&self, sender: &str, spec: &EventSpec) -> Result<Option<Sent>> {
        let Some((device, txn_id)) = &spec.txn else {
            return Ok(None);
        };
        let Some(existing) = self.store.event_id_for_txn(sender, device, txn_id).await? else {
            return Ok(None);
        };
        let row = self
            .store
            .event(&existing)
            .await?
            .ok_or_else(|| Error::internal("event vanished"))?;
        Ok(Some(Sent {
            event_id: existing.try_into().map_err(Error::internal)?,
            stream_ordering: row.stream_ordering,
        }))
    }

    /// A member event's content with the user's profile.
    async fn member_content(
        &self,
        user_id: &str,
        membership: &str,
        reason: Option<&str>,
    ) -> Result<Value> {
        let mut content = json!({"membership": membership});
        if matches!(membership, "join" | "invite" | "knock")
            && let Some(p) = self.store.user(user_id).await?
        {
            if let Some(name) = p.displayname {
                content["displayname"] = json!(name);
            }
            if let Some(url) = p.avatar_url {
                content["avatar_url"] = json!(url);
            }
        }
        if let Some(reason) = reason {
            content["reason"] = json!(reason);
        }
        Ok(content)
    }

    /// Joins `user_id` to a room (by id or alias).
    pub async fn join(
        &self,
        id_or_alias: &str,
        user_id: &str,
        reason: Option<&str>,
        ts: Option<i64>,
    ) -> Result<OwnedRoomId> {
        let room_id = self.resolve_room(id_or_alias).await?;
        let handle = self
            .rooms
            .get(&self.store, room_id.as_str())
            .await?
            .ok_or_else(|| Error::not_found("No known servers: this room is not on this server"))?;
        let mut room = handle.lock().await;
        let mut content = self.member_content(user_id, "join", reason).await?;
        let current = room.membership(user_id);
        let rule = room.join_rule();
        if matches!(rule.as_str(), "restricted" | "knock_restricted")
            && !matches!(current.as_deref(), Some("join" | "invite"))
        {
            let via = self.restricted_join_authoriser(&room, user_id).await?;
            content["join_authorised_via_users_server"] = json!(via);
        }
        let mut spec = EventSpec::state("m.room.member", user_id, content);
        spec.ts = ts;
        self.build_and_send(&mut room, user_id, spec).await?;
        self.store.unforget_room(user_id, room_id.as_str()).await?;
        self.activity.forget_user_rooms(user_id);
        tracing::info!(room_id = %room_id, user_id, "joined room");
        Ok(room_id)
    }

    /// For a restricted room: a local member who may invite, if `user_id` is in an allowed room.
    async fn restricted_join_authoriser(&self, room: &RoomState, user_id: &str) -> Result<String> {
        let rules = room
            .get("m.room.join_rules", "")
            .map(|p| p.content_value())
            .unwrap_or_default();
        let allowed: Vec<String> = rules["allow"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["type"] == "m.room_membership")
                    .filter_map(|r| r["room_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut member_of_allowed = false;
        for allowed_room in &allowed {
            if let Some(other) = self.rooms.get(&self.store, allowed_room).await?
                && other.lock().await.membership(user_id).as_deref() == Some("join")
            {
                member_of_allowed = true;
                break;
            }
        }
        if !member_of_allowed {
            return Err(Error::forbidden(
                "You are not a member of a room this restricted room allows",
            ));
        }
        let power = room
            .get("m.room.power_levels", "")
            .map(|p| p.content_value())
            .unwrap_or_default();
        let invite_level = power["invite"].as_i64().unwrap_or(0);
        let level = |u: &str| {
            power["users"][u]
                .as_i64()
                .unwrap_or_else(|| power["users_default"].as_i64().unwrap_or(0))
        };
        room.joined_members()
            .into_iter()
            .filter(|u| u.ends_with(&format!(":{}", self.config.server_name)))
            .find(|u| level(u) >= invite_level)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::UnableToAuthorizeJoin,
                    "No local member can authorise this join",
                )
            })
    }

    /// Leaves a room (or rejects an invite, or withdraws a knock).
    pub async fn leave(&self, room_id: &str, user_id: &str, reason: Option<&str>) -> Result<()> {
        let handle = self.room(room_id).await?;
        let mut room = handle.lock().await;
        if room
            .membership(user_id)
            .is_none_or(|m| m == "leave" || m == "ban")
        {
            return Err(Error::forbidden("You are not in this room"));
        }
        let content = self.member_content(user_id, "leave", reason).await?;
        self.build_and_send(
            &mut room,
            user_id,
            EventSpec::state("m.room.member", user_id, content),
        )
        .await?;
        tracing::info!(room_id, user_id, "left room");
        Ok(())
    }

    /// Invite, kick, ban or unban `target` as `sender`; the auth rules decide who may.
    pub async fn change_membership(
        &self,
        room_id: &str,
        sender: &str,
        target: &str,
        change: Change,
        reason: Option<&str>,
        is_direct: bool,
    ) -> Result<()> {
        ruma::UserId::parse(target).map_err(|_| Error::invalid_param("Invalid user id"))?;
        if matches!(change, Change::Invite) {
            self.ensure_appservice_user(target).await?;
        }
        let handle = self
            .rooms
            .get(&self.store, room_id)
            .await?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        let mut room = handle.lock().await;
        let current = room.membership(target);
        let membership = match change {
            Change::Invite => {
                if current.as_deref() == Some("join") {
                    return Err(Error::forbidden(format!("{target} is already in the room")));
                }
                if current.as_deref() == Some("ban") {
                    return Err(Error::forbidden(format!(
                        "{target} is banned from the room"
                    )));
                }
                "invite"
            }
            Change::Kick => {
                if !matches!(current.as_deref(), Some("join" | "invite" | "knock")) {
                    return Err(Error::forbidden(format!("{target} is not in the room")));
                }
                "leave"
            }
            Change::Ban => "ban",
            Change::Unban => {
                if current.as_deref() != Some("ban") {
                    return Err(Error::forbidden(format!("{target} is not banned")));
                }
                "leave"
            }
        };
        let mut content = self.member_content(target, membership, reason).await?;
        if is_direct {
            content["is_direct"] = json!(true);
        }
        self.build_and_send(
            &mut room,
            sender,
            EventSpec::state("m.room.member", target, content),
        )
        .await?;
        if change == Change::Invite {
            self.store.unforget_room(target, room_id).await?;
            self.activity.forget_user_rooms(target);
        }
        tracing::info!(room_id, sender, target, ?change, "membership changed");
        Ok(())
    }

    /// Knocks on a room (by id or alias).
    pub async fn knock(
        &self,
        id_or_alias: &str,
        user_id: &str,
        reason: Option<&str>,
    ) -> Result<OwnedRoomId> {
        let room_id = self.resolve_room(id_or_alias).await?;
        let handle = self.room(room_id.as_str()).await?;
        let mut room = handle.lock().await;
        let content = self.member_content(user_id, "knock", reason).await?;
        self.build_and_send(
            &mut room,
            user_id,
            EventSpec::state("m.room.member", user_id, content),
        )
        .await?;
        Ok(room_id)
    }

    /// Forgets a room the user has left.
    pub async fn forget(&self, room_id: &str, user_id: &str) -> Result<()> {
        if let Some(handle) = self.rooms.get(&self.store, room_id).await?
            && matches!(
                handle.lock().await.membership(user_id).as_deref(),
                Some("join" | "invite" | "knock")
            )
        {
            return Err(
                Error::bad_json("You must leave the room before forgetting it")
                    .with_kind(ErrorKind::Unknown),
            );
        }
        self.store.forget_room(user_id, room_id).await?;
        self.activity.forget_user_rooms(user_id);
        Ok(())
    }
}

impl Error {
    fn with_kind(self, kind: ErrorKind) -> Self {
        match self {
            Error::Matrix { message, .. } => Error::Matrix { kind, message },
            other => other,
        }
    }
}
