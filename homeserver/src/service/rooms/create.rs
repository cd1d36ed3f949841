//! `createRoom`: the initial events of a new room, in the order the spec lists them.

use std::collections::HashMap;

use ruma::{
    OwnedRoomId, RoomVersionId, api::error::ErrorKind, room_version_rules::RoomIdFormatVersion,
};
use serde_json::{Map, Value, json};

use super::{EventSpec, RoomState};
use crate::{
    error::{Error, Result},
    service::{Services, secrets::random_string},
    store::now_ms,
};

/// What the client asked for, already parsed.
#[derive(Clone, Debug, Default)]
pub struct CreateRoom {
    pub room_version: Option<String>,
    pub preset: Option<String>,
    pub visibility_public: bool,
    pub name: Option<String>,
    pub topic: Option<String>,
    pub alias_localpart: Option<String>,
    pub invite: Vec<String>,
    pub is_direct: bool,
    pub creation_content: Option<Map<String, Value>>,
    pub initial_state: Vec<(String, String, Value)>,
    pub power_level_content_override: Option<Map<String, Value>>,
}

impl Services {
    /// Creates a room and returns its id.
    pub async fn create_room(&self, creator: &str, req: CreateRoom) -> Result<OwnedRoomId> {
        let version = match &req.room_version {
            Some(v) => RoomVersionId::try_from(v.as_str())
                .ok()
                .filter(|v| v.rules().is_some())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::UnsupportedRoomVersion,
                        format!("Room version {v} is not supported"),
                    )
                })?,
            None => RoomVersionId::V11,
        };
        let rules = version.rules().expect("checked above");
        let alias = match &req.alias_localpart {
            Some(local) => {
                let alias = format!("#{local}:{}", self.config.server_name);
                if ruma::RoomAliasId::parse(&alias).is_err() || local.contains(':') {
                    return Err(Error::new(
                        ErrorKind::InvalidParam,
                        "Invalid room_alias_name",
                    ));
                }
                if self.store.alias_room(&alias).await?.is_some() {
                    return Err(Error::new(ErrorKind::RoomInUse, "Room alias already taken"));
                }
                Some(alias)
            }
            None => None,
        };
        for user in &req.invite {
            ruma::UserId::parse(user)
                .map_err(|_| Error::invalid_param(format!("Invalid user id to invite: {user}")))?;
            // An invitee in an appservice's namespace may be provided on demand (DMs to ghosts).
            self.ensure_appservice_user(user).await?;
        }
        let v12 = rules.room_id_format == RoomIdFormatVersion::V2;
        let placeholder = format!("!{}:{}", random_string(18), self.config.server_name);
        let mut room = RoomState {
            room_id: OwnedRoomId::try_from(placeholder.as_str()).map_err(Error::internal)?,
            version: version.clone(),
            rules: rules.clone(),
            state: HashMap::new(),
            extremities: Vec::new(),
            depth: 0,
            epoch: 0,
        };

        let mut create = req.creation_content.clone().unwrap_or_default();
        create.insert("room_version".to_owned(), json!(version));
        if !rules.authorization.use_room_create_sender {
            create.insert("creator".to_owned(), json!(creator));
        }
        let sent = self
            .build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.create", "", Value::Object(create)),
            )
            .await?;
        if v12 {
            room.room_id = OwnedRoomId::try_from(format!("!{}", &sent.event_id.as_str()[1..]))
                .map_err(Error::internal)?;
        }
        let room_id = room.room_id.clone();
        self.store
            .create_room(room_id.as_str(), version.as_str(), creator, now_ms())
            .await?;

        let profile = self.store.user(creator).await?;
        let mut member = json!({"membership": "join"});
        if let Some(p) = &profile {
            if let Some(name) = &p.displayname {
                member["displayname"] = json!(name);
            }
            if let Some(url) = &p.avatar_url {
                member["avatar_url"] = json!(url);
            }
        }
        self.build_and_send(
            &mut room,
            creator,
            EventSpec::state("m.room.member", creator, member),
        )
        .await?;

        let preset = req.preset.clone().unwrap_or_else(|| {
            if req.visibility_public {
                "public_chat"
            } else {
                "private_chat"
            }
            .to_owned()
        });
        let mut power = default_power_levels(creator, !v12);
        if preset == "trusted_private_chat" {
            for user in &req.invite {
                power["users"][user] = json!(100);
            }
        }
        if let Some(overrides) = &req.power_level_content_override {
            for (k, v) in overrides {
                power[k] = v.clone();
            }
        }
        // An override that leaves the creator without full power would stop them sending the
        // rest of the initial state: they keep 100 until it is sent, then the override applies
        // as asked (Synapse does the same). Room version 12 creators are privileged anyway.
        let creator_level = power
            .get("users")
            .and_then(|u| u.get(creator))
            .and_then(Value::as_i64)
            .or_else(|| power.get("users_default").and_then(Value::as_i64))
            .unwrap_or(0);
        let final_power = (!v12 && creator_level < 100).then(|| power.clone());
        if final_power.is_some() {
            match power.get_mut("users") {
                Some(Value::Object(users)) => {
                    users.insert(creator.to_owned(), json!(100));
                }
                Some(Value::Null) | None => power["users"] = json!({creator: 100}),
                Some(_) => {
                    return Err(Error::bad_json(
                        "power_level_content_override.users must be an object",
                    ));
                }
            }
        }
        self.build_and_send(
            &mut room,
            creator,
            EventSpec::state("m.room.power_levels", "", power),
        )
        .await?;

        if let Some(alias) = &alias {
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.canonical_alias", "", json!({"alias": alias})),
            )
            .await?;
        }
        let (join_rule, guest) = match preset.as_str() {
            "public_chat" => ("public", false),
            "private_chat" | "trusted_private_chat" => ("invite", true),
            other => {
                return Err(Error::new(
                    ErrorKind::InvalidParam,
                    format!("Unknown preset {other}"),
                ));
            }
        };
        let explicit: Vec<(&str, &str)> = req
            .initial_state
            .iter()
            .map(|(t, k, _)| (t.as_str(), k.as_str()))
            .collect();
        let given = |t: &str| explicit.contains(&(t, ""));
        if !given("m.room.join_rules") {
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.join_rules", "", json!({"join_rule": join_rule})),
            )
            .await?;
        }
        if !given("m.room.history_visibility") {
            let hv = json!({"history_visibility": "shared"});
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.history_visibility", "", hv),
            )
            .await?;
        }
        if guest && !given("m.room.guest_access") {
            let ga = json!({"guest_access": "can_join"});
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.guest_access", "", ga),
            )
            .await?;
        }
        for (t, k, content) in &req.initial_state {
            self.build_and_send(&mut room, creator, EventSpec::state(t, k, content.clone()))
                .await?;
        }
        if let Some(name) = &req.name {
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.name", "", json!({"name": name})),
            )
            .await?;
        }
        if let Some(topic) = &req.topic {
            let content =
                json!({"topic": topic, "m.topic": [{"mimetype": "text/plain", "body": topic}]});
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.topic", "", content),
            )
            .await?;
        }
        for user in &req.invite {
            let mut content = json!({"membership": "invite"});
            if req.is_direct {
                content["is_direct"] = json!(true);
            }
            if let Some(p) = self.store.user(user).await?
                && let Some(name) = p.displayname
            {
                content["displayname"] = json!(name);
            }
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.member", user, content),
            )
            .await?;
        }
        if let Some(power) = final_power {
            self.build_and_send(
                &mut room,
                creator,
                EventSpec::state("m.room.power_levels", "", power),
            )
            .await?;
        }
        if let Some(alias) = &alias {
            self.store
                .set_alias(alias, room_id.as_str(), creator)
                .await?;
        }
        if req.visibility_public {
            self.store.set_room_public(room_id.as_str(), true).await?;
        }
        self.rooms.insert(room);
        tracing::info!(room_id = %room_id, creator, version = %version, "room created");
        Ok(room_id)
    }
}

/// The power levels Synapse gives a new room.
fn default_power_levels(creator: &str, list_creator: bool) -> Value {
    let mut users = Map::new();
    if list_creator {
        users.insert(creator.to_owned(), json!(100));
    }
    json!({
        "users": users,
        "users_default": 0,
        "events": {
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.history_visibility": 100,
            "m.room.canonical_alias": 50,
            "m.room.avatar": 50,
            "m.room.tombstone": 100,
            "m.room.server_acl": 100,
            "m.room.encryption": 100,
        },
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 0,
        "notifications": {"room": 50},
    })
}
