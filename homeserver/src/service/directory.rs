//! Aliases, the public room directory, the user directory, and fully-read markers.

use std::collections::HashSet;

use ruma::api::error::ErrorKind;
use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{Services, sync::Token},
    store::StoreError,
};

/// Most public rooms one page lists.
const MAX_PUBLIC_ROOMS_PAGE: u64 = 500;

impl Services {
    /// Maps a local alias to a room the creator is in.
    pub async fn create_alias(&self, alias: &str, room_id: &str, user_id: &str) -> Result<()> {
        let server = alias.split_once(':').map(|(_, s)| s).unwrap_or_default();
        if server != self.config.server_name {
            return Err(Error::invalid_param("Aliases must be on this server"));
        }
        let room = self.room(room_id).await?;
        if room.lock().await.membership(user_id).as_deref() != Some("join") {
            return Err(Error::forbidden("You are not in this room"));
        }
        match self.store.set_alias(alias, room_id, user_id).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => {
                Err(Error::Conflict("Room alias already exists".to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes an alias: its creator, or a room member allowed to change the canonical alias.
    pub async fn delete_alias(&self, alias: &str, user_id: &str) -> Result<()> {
        let (room_id, creator) = self
            .store
            .alias_creator(alias)
            .await?
            .ok_or_else(|| Error::not_found("Room alias not found"))?;
        if creator != user_id
            && !self
                .may_send_state(&room_id, user_id, "m.room.canonical_alias")
                .await?
        {
            return Err(Error::forbidden("You may not remove this alias"));
        }
        self.store.delete_alias(alias).await?;
        Ok(())
    }

    /// Whether `user_id` has the power to send a state event of `event_type` in a room.
    pub async fn may_send_state(
        &self,
        room_id: &str,
        user_id: &str,
        event_type: &str,
    ) -> Result<bool> {
        let room = self.room(room_id).await?;
        let room = room.lock().await;
        if room.membership(user_id).as_deref() != Some("join") {
            return Ok(false);
        }
        let power = room
            .get("m.room.power_levels", "")
            .map(|p| p.content_value())
            .unwrap_or_default();
        let level = power["users"][user_id]
            .as_i64()
            .unwrap_or_else(|| power["users_default"].as_i64().unwrap_or(0));
        let needed = power["events"][event_type]
            .as_i64()
            .unwrap_or_else(|| power["state_default"].as_i64().unwrap_or(50));
        Ok(level >= needed)
    }

    /// Local aliases of a room, for its members (or anyone when world-readable).
    pub async fn room_aliases_for(&self, room_id: &str, user_id: &str) -> Result<Vec<String>> {
        let viewer = self.viewer(room_id, user_id).await?;
        if viewer.current() != Some("join") && !viewer.world_readable_now() {
            return Err(Error::forbidden("You are not in this room"));
        }
        Ok(self.store.room_aliases(room_id).await?)
    }

    /// `m.room.canonical_alias` may only name aliases that point at the room.
    pub async fn check_canonical_alias(&self, room_id: &str, content: &Value) -> Result<()> {
        let aliases = content["alias"].as_str().into_iter().chain(
            content["alt_aliases"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str),
        );
        for alias in aliases {
            if ruma::RoomAliasId::parse(alias).is_err() {
                return Err(Error::new(
                    ErrorKind::InvalidParam,
                    format!("Invalid alias {alias}"),
                ));
            }
            if self.store.alias_room(alias).await?.as_deref() != Some(room_id) {
                return Err(Error::new(
                    ErrorKind::BadAlias,
                    format!("Alias {alias} does not point to this room"),
                ));
            }
        }
        Ok(())
    }

    pub async fn room_visibility(&self, room_id: &str) -> Result<bool> {
        self.store
            .room_is_public(room_id)
            .await?
            .ok_or_else(|| Error::not_found("Room not found"))
    }

    /// Publishes or unpublishes a room: members with power to change its canonical alias may.
    pub async fn set_room_visibility(
        &self,
        room_id: &str,
        user_id: &str,
        public: bool,
    ) -> Result<()> {
        if !self
            .may_send_state(room_id, user_id, "m.room.canonical_alias")
            .await?
        {
            return Err(Error::forbidden(
                "You may not change this room's directory visibility",
            ));
        }
        self.store.set_room_public(room_id, public).await?;
        Ok(())
    }

    /// A page of the public room directory, optionally filtered by a search term.
    pub async fn public_rooms(
        &self,
        limit: Option<u64>,
        since: Option<&str>,
        term: Option<&str>,
    ) -> Result<Value> {
        let offset = match since {
            Some(t) => Token::parse(t)?.stream.max(0) as usize,
            None => 0,
        };
        let limit = limit
            .unwrap_or(MAX_PUBLIC_ROOMS_PAGE)
            .clamp(1, MAX_PUBLIC_ROOMS_PAGE) as usize;
        let term = term.map(str::to_lowercase).filter(|t| !t.is_empty());
        let mut chunk = Vec::new();
        for (room_id, members) in self.store.public_rooms().await? {
            let state = self.store.current_state(&room_id).await?;
            let field = |t: &str, f: &str| -> Option<Value> {
                state
                    .iter()
                    .find(|e| e.event_type == t && e.state_key.as_deref() == Some(""))
                    .and_then(|e| serde_json::from_str::<Value>(&e.json).ok())
                    .and_then(|v| v["content"].get(f).cloned())
                    .filter(|v| !v.is_null())
            };
            let mut entry = json!({
                "room_id": room_id,
                "num_joined_members": members,
                "world_readable": field("m.room.history_visibility", "history_visibility") == Some(json!("world_readable")),
                "guest_can_join": field("m.room.guest_access", "guest_access") == Some(json!("can_join")),
                "join_rule": field("m.room.join_rules", "join_rule").unwrap_or(json!("invite")),
            });
            for (t, f, key) in [
                ("m.room.name", "name", "name"),
                ("m.room.topic", "topic", "topic"),
                ("m.room.avatar", "url", "avatar_url"),
                ("m.room.canonical_alias", "alias", "canonical_alias"),
            ] {
                if let Some(v) = field(t, f) {
                    entry[key] = v;
                }
            }
            if let Some(room_type) = field("m.room.create", "type") {
                entry["room_type"] = room_type;
            }
            if let Some(term) = &term {
                let haystack = format!(
                    "{} {} {}",
                    entry["name"].as_str().unwrap_or(""),
                    entry["topic"].as_str().unwrap_or(""),
                    entry["canonical_alias"].as_str().unwrap_or("")
                )
                .to_lowercase();
                if !haystack.contains(term.as_str()) {
                    continue;
                }
            }
            chunk.push(entry);
        }
        let total = chunk.len();
        let page: Vec<Value> = chunk.into_iter().skip(offset).take(limit).collect();
        let mut body = json!({"chunk": page, "total_room_count_estimate": total});
        if offset + limit < total {
            body["next_batch"] = json!(Token::at((offset + limit) as i64).to_string());
        }
        if offset > 0 {
            body["prev_batch"] = json!(Token::at(offset.saturating_sub(limit) as i64).to_string());
        }
        Ok(body)
    }

    /// User directory: users who share a room with the searcher or sit in a public room;
    /// everyone when `user_directory.search_all_users`.
    pub async fn search_users(&self, searcher: &str, term: &str, limit: usize) -> Result<Value> {
        if !self.config.user_directory.enabled {
            return Ok(json!({"results": [], "limited": false}));
        }
        let candidates = self.store.search_users(term, 1000).await?;
        let visible: Option<HashSet<String>> = if self.config.user_directory.search_all_users {
            None
        } else {
            let mut users = HashSet::new();
            for m in self.store.memberships_of_user(searcher).await? {
                if m.membership == "join" {
                    users.extend(self.store.room_members(&m.room_id, "join").await?);
                }
            }
            for (room_id, _) in self.store.public_rooms().await? {
                users.extend(self.store.room_members(&room_id, "join").await?);
            }
            for room_id in self.store.rooms_with_join_rule("public").await? {
                users.extend(self.store.room_members(&room_id, "join").await?);
            }
            Some(users)
        };
        let matches: Vec<Value> = candidates
            .into_iter()
            .filter(|u| visible.as_ref().is_none_or(|v| v.contains(&u.user_id)))
            .map(|u| {
                let mut r = json!({"user_id": u.user_id});
                if let Some(n) = u.displayname {
                    r["display_name"] = json!(n);
                }
                if let Some(a) = u.avatar_url {
                    r["avatar_url"] = json!(a);
                }
                r
            })
            .collect();
        let limited = matches.len() > limit;
        Ok(
            json!({"results": matches.into_iter().take(limit).collect::<Vec<_>>(), "limited": limited}),
        )
    }

    /// `m.fully_read` is room account data.
    pub async fn set_fully_read(&self, room_id: &str, user_id: &str, event_id: &str) -> Result<()> {
        if self
            .store
            .event(event_id)
            .await?
            .filter(|e| e.room_id == room_id)
            .is_none()
        {
            return Err(Error::not_found("Event not found"));
        }
        self.set_account_data(
            user_id,
            room_id,
            "m.fully_read",
            &json!({"event_id": event_id}).to_string(),
        )
        .await
    }
}
