//! Matrix -> network: what the bridge does with each event of a transaction.

use std::collections::BTreeSet;

use ruma::{EventId, OwnedEventId, OwnedRoomId, OwnedUserId, RoomId, UserId};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::Instrument;

use super::{
    Bridge, MatrixEdit, MatrixMembership, MatrixMessage, MatrixReaction, MatrixRedaction,
    RedactionTarget, is_transient,
};
use crate::commands;
use crate::config::Permission;
use crate::content;
use crate::error::Result;
use crate::intent::SendOptions;
use crate::store::{MessageRecord, PortalRecord, ReactionRecord, UserSettings};

/// The fields of a timeline event the bridge reads.
#[derive(Debug, Deserialize)]
pub(crate) struct MatrixEvent {
    pub(crate) event_id: OwnedEventId,
    pub(crate) room_id: OwnedRoomId,
    pub(crate) sender: OwnedUserId,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) content: Value,
    pub(crate) state_key: Option<String>,
    pub(crate) redacts: Option<OwnedEventId>,
    #[serde(default)]
    pub(crate) origin_server_ts: u64,
}

impl Bridge {
    /// Handles one timeline event exactly once: events already handled (in a transaction the
    /// homeserver redelivers) are skipped; a permanent failure is logged and counted, a
    /// transient one (database, homeserver) is returned so the transaction is retried.
    pub(super) async fn handle_matrix_event(&self, raw: Value) -> Result<()> {
        let event: MatrixEvent = match serde_json::from_value(raw) {
            Ok(event) => event,
            Err(e) => {
                tracing::debug!(error = %e, "skipping an event the bridge cannot read");
                return Ok(());
            }
        };
        let store = &self.inner.store;
        if store.is_event_processed(event.event_id.as_str()).await? {
            return Ok(());
        }
        let span = tracing::info_span!("matrix_event", event_id = %event.event_id, room = %event.room_id, sender = %event.sender);
        match self.route_matrix_event(&event).instrument(span).await {
            Ok(()) => {}
            Err(e) if is_transient(&e) => {
                self.inner.metrics.error();
                return Err(e);
            }
            Err(e) => {
                self.inner.metrics.error();
                tracing::warn!(event_id = %event.event_id, error = %e, "event could not be bridged");
            }
        }
        store.mark_event_processed(event.event_id.as_str()).await
    }

    /// Whether a user belongs to the bridge (bot or ghost): their events are never bridged back.
    pub(crate) fn is_own_user(&self, user_id: &UserId) -> bool {
        user_id == self.inner.appservice.bot_user_id()
            || (user_id.server_name() == self.inner.appservice.domain()
                && user_id
                    .localpart()
                    .starts_with(&self.inner.info.ghost_prefix))
    }

    async fn route_matrix_event(&self, event: &MatrixEvent) -> Result<()> {
        if event.kind == "m.room.member" {
            return self.on_membership(event).await;
        }
        if self.is_own_user(&event.sender) {
            return Ok(());
        }
        match event.kind.as_str() {
            "m.room.message" => self.on_message(event).await,
            "m.reaction" => self.on_reaction(event).await,
            "m.room.redaction" => self.on_redaction(event).await,
            _ => Ok(()),
        }
    }

    async fn on_membership(&self, event: &MatrixEvent) -> Result<()> {
        let Some(target) = event
            .state_key
            .as_deref()
            .and_then(|s| UserId::parse(s).ok())
        else {
            return Ok(());
        };
        let membership = event.content["membership"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let appservice = &self.inner.appservice;
        if membership == "join" && !self.is_own_user(&target) {
            let name = event.content["displayname"].as_str().map(str::to_owned);
            self.remember_displayname(&target, name);
        }
        if self.is_own_user(&target) {
            appservice.set_joined(&event.room_id, &target, membership == "join");
        }
        if target == appservice.bot_user_id() && membership == "invite" {
            return self.on_bot_invited(event).await;
        }
        if membership == "invite" && self.is_own_user(&target) && !self.is_own_user(&event.sender) {
            return self.on_ghost_invited(event, &target).await;
        }
        if self.is_own_user(&target) {
            return Ok(());
        }
        let Some(portal) = self
            .inner
            .store
            .portal_by_room_id(event.room_id.as_str())
            .await?
        else {
            return Ok(());
        };
        if matches!(membership.as_str(), "invite" | "join")
            && self
                .inner
                .section
                .portal_power_levels
                .contains_key(target.as_str())
        {
            self.give_portal_power(&portal.room_id, Some(&target)).await;
        }
        let change = MatrixMembership {
            event_id: event.event_id.clone(),
            user_id: target,
            sender: event.sender.clone(),
            membership,
        };
        self.inner
            .network
            .handle_matrix_membership(&portal, &change)
            .await
    }

    /// The bot was invited: a DM becomes the inviter's management room; another room becomes
    /// a portal if the network wants it; anything else is declined.
    async fn on_bot_invited(&self, event: &MatrixEvent) -> Result<()> {
        let bot = self.inner.appservice.bot();
        let room = &event.room_id;
        let inviter = &event.sender;
        if self
            .inner
            .store
            .portal_by_room_id(room.as_str())
            .await?
            .is_some()
        {
            return bot.ensure_joined(room).await;
        }
        if self.permission_of(inviter) < Permission::Relay {
            tracing::info!(%inviter, %room, "declining an invite from a user without permission");
            return bot.leave(room).await;
        }
        if event.content["is_direct"].as_bool() == Some(true) {
            bot.ensure_joined(room).await?;
            let mut settings = self.inner.store.user_settings(inviter.as_str()).await?;
            settings.management_room = Some(room.to_string());
            self.inner
                .store
                .set_user_settings(inviter.as_str(), &settings)
                .await?;
            let welcome = format!(
                "This is your management room for the {} bridge. Send `help` for the commands.",
                self.inner.info.protocol_name
            );
            bot.send_notice(room, &welcome, SendOptions::default())
                .await?;
            return Ok(());
        }
        match self.inner.network.portal_for_invite(room, inviter).await? {
            Some(remote_id) => {
                bot.ensure_joined(room).await?;
                let portal = PortalRecord {
                    remote_id,
                    room_id: room.clone(),
                    name: None,
                    relay_enabled: false,
                };
                self.inner.store.upsert_portal(&portal).await?;
                self.send_bridge_info(&portal).await;
                Ok(())
            }
            None => bot.leave(room).await,
        }
    }

    /// A ghost was invited by a Matrix user: into a portal it joins; elsewhere the network decides
    /// whether the room becomes a portal (see [`crate::bridge::Network::portal_for_ghost_invite`]).
    async fn on_ghost_invited(&self, event: &MatrixEvent, ghost: &UserId) -> Result<()> {
        let room = &event.room_id;
        let intent = self.inner.appservice.intent(ghost);
        if self
            .inner
            .store
            .portal_by_room_id(room.as_str())
            .await?
            .is_some()
        {
            return intent.ensure_joined(room).await;
        }
        if self.permission_of(&event.sender) < Permission::Relay {
            return Ok(());
        }
        let is_direct = event.content["is_direct"].as_bool() == Some(true);
        let Some(remote_id) = self
            .inner
            .network
            .portal_for_ghost_invite(room, ghost, &event.sender, is_direct)
            .await?
        else {
            return Ok(());
        };
        intent.ensure_joined(room).await?;
        let portal = PortalRecord {
            remote_id,
            room_id: room.clone(),
            name: None,
            relay_enabled: false,
        };
        self.inner.store.upsert_portal(&portal).await?;
        Ok(())
    }

    /// Sends the `m.bridge` and `uk.half-shot.bridge` state events describing a portal.
    /// Best effort: the bot may lack the power level in a room it did not create.
    pub async fn send_bridge_info(&self, portal: &PortalRecord) {
        let info = &self.inner.info;
        let bot = self.inner.appservice.bot();
        let content = json!({
            "bridgebot": bot.user_id(),
            "creator": bot.user_id(),
            "protocol": {"id": info.protocol_id, "displayname": info.protocol_name},
            "channel": {"id": portal.remote_id, "displayname": portal.name},
        });
        let state_key = format!("fi.causeway://{}/{}", info.protocol_id, portal.remote_id);
        for event_type in ["m.bridge", "uk.half-shot.bridge"] {
            let sent = bot
                .send_state(
                    &portal.room_id,
                    event_type,
                    &state_key,
                    &content,
                    SendOptions::default(),
                )
                .await;
            if let Err(e) = sent {
                tracing::info!(room = %portal.room_id, event_type, error = %e, "bridge info state not sent");
            }
        }
    }

    async fn on_message(&self, event: &MatrixEvent) -> Result<()> {
        let store = &self.inner.store;
        let body = event.content["body"].as_str().unwrap_or_default();
        let settings = store.user_settings(event.sender.as_str()).await?;
        let portal = store.portal_by_room_id(event.room_id.as_str()).await?;
        if settings.management_room.as_deref() == Some(event.room_id.as_str()) && portal.is_none() {
            let line = body
                .strip_prefix(&self.inner.section.command_prefix)
                .unwrap_or(body);
            return commands::run(self, &event.sender, &event.room_id, None, line.trim()).await;
        }
        let prefix = &self.inner.section.command_prefix;
        if let Some(line) = body.strip_prefix(prefix.as_str()) {
            return commands::run(
                self,
                &event.sender,
                &event.room_id,
                portal.as_ref(),
                line.trim(),
            )
            .await;
        }
        let Some(portal) = portal else {
            return Ok(());
        };
        let Some(relayed) = self.relay_decision(&event.sender, &portal, &settings) else {
            tracing::debug!(sender = %event.sender, "not allowed to use this portal");
            return Ok(());
        };
        let relations = content::relations(&event.content);
        if let Some(target) = relations.replaces {
            let Some(target) = store.message_by_event_id(&target).await? else {
                return Ok(());
            };
            let new_content = event
                .content
                .get("m.new_content")
                .cloned()
                .unwrap_or(event.content.clone());
            let new_body = new_content["body"].as_str().unwrap_or_default().to_owned();
            let edit = MatrixEdit {
                event_id: event.event_id.clone(),
                sender: event.sender.clone(),
                target_remote_id: target.remote_id,
                body: self.relay_body(&event.sender, &new_body, relayed).await,
                new_content,
                relayed,
            };
            self.inner
                .network
                .handle_matrix_edit(&portal, &edit)
                .await?;
            self.inner.metrics.event_out();
            return Ok(());
        }
        let reply_to = match relations.in_reply_to {
            Some(parent) => store
                .message_by_event_id(&parent)
                .await?
                .map(|m| m.remote_id),
            None => None,
        };
        let message = MatrixMessage {
            event_id: event.event_id.clone(),
            sender: event.sender.clone(),
            sender_displayname: self.displayname_of(&event.sender).await,
            content: event.content.clone(),
            body: self.relay_body(&event.sender, body, relayed).await,
            reply_to,
            relayed,
            ts: event.origin_server_ts,
        };
        let remote_id = self
            .inner
            .network
            .handle_matrix_message(&portal, &message)
            .await?;
        self.inner.metrics.event_out();
        if let Some(remote_id) = remote_id {
            store
                .insert_message(&MessageRecord {
                    portal_id: portal.remote_id.clone(),
                    remote_id,
                    event_id: event.event_id.clone(),
                    sender: event.sender.clone(),
                    ts: event.origin_server_ts as i64,
                })
                .await?;
        }
        Ok(())
    }

    /// `Some(false)`: the user bridges as themself; `Some(true)`: through the relay;
    /// `None`: not at all.
    fn relay_decision(
        &self,
        sender: &UserId,
        portal: &PortalRecord,
        settings: &UserSettings,
    ) -> Option<bool> {
        let permission = self.permission_of(sender);
        if permission >= Permission::User || settings.remote_login.is_some() {
            return Some(false);
        }
        let relay_on = self.inner.section.relay.enabled && portal.relay_enabled;
        (permission >= Permission::Relay && relay_on).then_some(true)
    }

    async fn relay_body(&self, sender: &UserId, body: &str, relayed: bool) -> String {
        if !relayed {
            return body.to_owned();
        }
        let name = self
            .displayname_of(sender)
            .await
            .unwrap_or_else(|| sender.to_string());
        crate::format::relay_message(
            &self.inner.section.relay.message_format,
            &name,
            sender.as_str(),
            body,
        )
    }

    pub(super) async fn fetch_displayname(&self, user_id: &UserId) -> Option<String> {
        let path = format!(
            "/_matrix/client/v3/profile/{}/displayname",
            url::form_urlencoded::byte_serialize(user_id.as_str().as_bytes()).collect::<String>()
        );
        let client = self.inner.appservice.client();
        let json = client
            .send_json(reqwest::Method::GET, &path, None, None)
            .await
            .ok()?;
        json["displayname"].as_str().map(str::to_owned)
    }

    async fn on_reaction(&self, event: &MatrixEvent) -> Result<()> {
        let store = &self.inner.store;
        let Some(portal) = store.portal_by_room_id(event.room_id.as_str()).await? else {
            return Ok(());
        };
        let settings = store.user_settings(event.sender.as_str()).await?;
        if self.relay_decision(&event.sender, &portal, &settings) != Some(false) {
            return Ok(());
        }
        let rel = &event.content["m.relates_to"];
        let (Some(target), Some(key)) = (rel["event_id"].as_str(), rel["key"].as_str()) else {
            return Ok(());
        };
        let Some(target) = store.message_by_event_id(target).await? else {
            return Ok(());
        };
        let reaction = MatrixReaction {
            event_id: event.event_id.clone(),
            sender: event.sender.clone(),
            target_remote_id: target.remote_id.clone(),
            key: key.to_owned(),
        };
        self.inner
            .network
            .handle_matrix_reaction(&portal, &reaction)
            .await?;
        store
            .insert_reaction(&ReactionRecord {
                event_id: event.event_id.clone(),
                portal_id: portal.remote_id.clone(),
                target_remote_id: target.remote_id,
                sender: event.sender.clone(),
                key: key.to_owned(),
            })
            .await?;
        Ok(())
    }

    async fn on_redaction(&self, event: &MatrixEvent) -> Result<()> {
        let store = &self.inner.store;
        let Some(portal) = store.portal_by_room_id(event.room_id.as_str()).await? else {
            return Ok(());
        };
        let redacts = event.redacts.clone().or_else(|| {
            event.content["redacts"]
                .as_str()
                .and_then(|r| EventId::parse(r).ok())
        });
        let Some(redacts) = redacts else {
            return Ok(());
        };
        let target = if let Some(message) = store.message_by_event_id(redacts.as_str()).await? {
            RedactionTarget::Message(message.remote_id)
        } else if let Some(reaction) = store.reaction_by_event_id(redacts.as_str()).await? {
            RedactionTarget::Reaction {
                target_remote_id: reaction.target_remote_id,
                key: reaction.key,
            }
        } else {
            return Ok(());
        };
        let redaction = MatrixRedaction {
            event_id: event.event_id.clone(),
            sender: event.sender.clone(),
            target: target.clone(),
        };
        self.inner
            .network
            .handle_matrix_redaction(&portal, &redaction)
            .await?;
        match target {
            RedactionTarget::Message(_) => store.delete_message(redacts.as_str()).await?,
            RedactionTarget::Reaction { .. } => store.delete_reaction(redacts.as_str()).await?,
        };
        Ok(())
    }

    /// Typing notifications and read receipts in portals go to the network. Typing is sent
    /// as changes: users who appear start typing, users who drop out of the list stop.
    pub(super) async fn handle_ephemeral(&self, event: &Value) -> Result<()> {
        let kind = event["type"].as_str().unwrap_or_default();
        if kind != "m.typing" && kind != "m.receipt" {
            return Ok(());
        }
        let Some(room) = event["room_id"]
            .as_str()
            .and_then(|r| RoomId::parse(r).ok())
        else {
            return Ok(());
        };
        let Some(portal) = self.inner.store.portal_by_room_id(room.as_str()).await? else {
            return Ok(());
        };
        if kind == "m.receipt" {
            return self.on_receipts(&portal, &event["content"]).await;
        }
        let now: BTreeSet<OwnedUserId> = event["content"]["user_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str().and_then(|u| UserId::parse(u).ok()))
            .filter(|u| !self.is_own_user(u))
            .collect();
        let before = self.swap_typing(&room, now.clone());
        for user in now.difference(&before) {
            self.inner
                .network
                .handle_matrix_typing(&portal, user, true)
                .await?;
        }
        for user in before.difference(&now) {
            self.inner
                .network
                .handle_matrix_typing(&portal, user, false)
                .await?;
        }
        Ok(())
    }

    /// `m.receipt` content: `{event_id: {"m.read": {user_id: {..}}}}`.
    async fn on_receipts(&self, portal: &PortalRecord, content: &Value) -> Result<()> {
        let Some(receipts) = content.as_object() else {
            return Ok(());
        };
        for (event_id, kinds) in receipts {
            let Some(readers) = kinds["m.read"].as_object() else {
                continue;
            };
            let Some(message) = self.inner.store.message_by_event_id(event_id).await? else {
                continue;
            };
            for reader in readers.keys().filter_map(|u| UserId::parse(u).ok()) {
                if !self.is_own_user(&reader) {
                    self.inner
                        .network
                        .handle_matrix_receipt(portal, &reader, &message.remote_id)
                        .await?;
                }
            }
        }
        Ok(())
    }
}
