//! The bridge's own management-room commands, through the SDK's `Network::handle_command` (in a portal or
//! another room they take the command prefix, `!bridge unlink`):
//!
//! | command | who | what |
//! | --- | --- | --- |
//! | `bridge CODE` (or `link CODE`) | `user` | links the Telegram chat whose admin got CODE from `/bridge` |
//! | `link CHAT_ID` | `admin` | links a chat the bot is in without a code |
//! | `unlink [CHAT_ID]` | `admin`, or the Matrix user who linked the chat | stops bridging this portal (or that chat) |
//!
//! In the management room a link creates a new portal room and invites the user (a DM for a private chat);
//! elsewhere the room the command was sent in becomes the portal. Who linked a chat is kept in the SDK's
//! key/value store (`telegram_linked_by`), so `unlink` still knows after a restart.
//!
//! Linking by id needs `admin`: a Matrix user cannot show they administer a Telegram chat except through a
//! code that a chat admin asked for in the chat itself.

use std::time::Instant;

use appservice_sdk::commands::{CommandContext, CommandHelp};
use appservice_sdk::config::Permission;
use appservice_sdk::intent::{RoomOptions, SendOptions};
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Bridge, Result};
use ruma::{RoomId, UserId};

use super::Shared;
use crate::html::escape;

/// Key/value namespace: Telegram chat id -> the Matrix user who linked it.
pub(super) const LINKED_BY: &str = "telegram_linked_by";

/// The lines `help` shows.
pub(super) fn help() -> Vec<CommandHelp> {
    vec![
        CommandHelp::new(
            "bridge",
            "bridge CODE: link the Telegram chat where an admin sent /bridge and got CODE",
        ),
        CommandHelp::new(
            "link",
            "link CHAT_ID: link a Telegram chat the bot is in, without a code (admin)",
        ),
        CommandHelp::new(
            "unlink",
            "unlink [CHAT_ID]: stop bridging this room (or that chat); for whoever linked it and admins",
        ),
    ]
}

/// Where a link puts the chat.
enum Target<'a> {
    /// A new room, with the user invited.
    NewRoom,
    /// The room the command was sent in.
    ThisRoom(&'a RoomId),
}

impl Shared {
    /// Runs `command` if it is one of ours.
    pub(super) async fn command(
        &self,
        context: &CommandContext<'_>,
        command: &str,
        args: &[&str],
    ) -> Result<Option<String>> {
        let reply = match (command, args) {
            ("bridge", [code]) => self.redeem_command(context, code).await?,
            ("link", [id]) if id.parse::<i64>().is_ok() => {
                self.link_by_id(context, id.parse().unwrap_or_default())
                    .await?
            }
            ("link", [code]) => self.redeem_command(context, code).await?,
            ("bridge" | "link", _) => {
                "Usage: bridge CODE (the code /bridge gave in Telegram), or link CHAT_ID (admin)"
                    .to_owned()
            }
            ("unlink", []) => match context.portal {
                Some(portal) => self.unlink_command(context, &portal.remote_id).await?,
                None => "This room is not bridged; send unlink CHAT_ID to unlink a chat from here."
                    .to_owned(),
            },
            ("unlink", [id]) if id.parse::<i64>().is_ok() => {
                self.unlink_command(context, id).await?
            }
            ("unlink", _) => "Usage: unlink [CHAT_ID]".to_owned(),
            ("login", _) => {
                "This bridge has no logins. To link a Telegram chat, have an admin send /bridge \
                             there, then send bridge CODE here."
                    .to_owned()
            }
            _ => return Ok(None),
        };
        Ok(Some(reply))
    }

    fn target<'a>(context: &CommandContext<'a>) -> Option<Target<'a>> {
        match (context.portal, context.in_management_room) {
            (Some(_), _) => None,
            (None, true) => Some(Target::NewRoom),
            (None, false) => Some(Target::ThisRoom(context.room_id)),
        }
    }

    async fn redeem_command(&self, context: &CommandContext<'_>, code: &str) -> Result<String> {
        if context.permission < Permission::User {
            return Ok("Linking a chat needs the `user` permission.".to_owned());
        }
        let Some(target) = Self::target(context) else {
            return Ok("This room is already bridged; unlink it first.".to_owned());
        };
        let Some(link) = self.state().link_codes.redeem(code, Instant::now()) else {
            return Ok(
                "Unknown or expired code: send /bridge in the Telegram chat again.".to_owned(),
            );
        };
        self.link(
            context.bridge,
            context.sender,
            (link.chat_id, &link.title, link.private),
            target,
        )
        .await
    }

    async fn link_by_id(&self, context: &CommandContext<'_>, chat: i64) -> Result<String> {
        if context.permission < Permission::Admin {
            return Ok(
                "Linking a chat by id is for bridge admins: have a Telegram admin of the chat send /bridge \
                 there, then send bridge CODE here."
                    .to_owned(),
            );
        }
        let Some(target) = Self::target(context) else {
            return Ok("This room is already bridged; unlink it first.".to_owned());
        };
        let (title, private) = match self.api.chat_title(chat).await {
            Ok(found) => found,
            Err(e) if e.refused => {
                return Ok(format!(
                    "The bot cannot see Telegram chat {chat} ({}): add the bot to the chat first.",
                    e.description
                ));
            }
            Err(e) => return Err(e.into()),
        };
        self.link(
            context.bridge,
            context.sender,
            (chat, &title, private),
            target,
        )
        .await
    }

    /// Makes `chat` a portal (a new room, or the given one), remembers who linked it and tells Telegram.
    async fn link(
        &self,
        bridge: &Bridge,
        user: &UserId,
        (chat, title, private): (i64, &str, bool),
        target: Target<'_>,
    ) -> Result<String> {
        let remote_id = chat.to_string();
        let store = bridge.store();
        if let Some(portal) = store.portal_by_remote_id(&remote_id).await? {
            return Ok(format!(
                "Telegram chat {chat} is already bridged to {}.",
                portal.room_id
            ));
        }
        let portal = match target {
            Target::NewRoom => {
                // A private chat with the bot becomes a DM with the user who linked it.
                let options = RoomOptions {
                    name: Some(title.to_owned()),
                    invite: vec![user.to_owned()],
                    is_direct: private,
                    ..RoomOptions::default()
                };
                bridge.create_portal(&remote_id, &options).await?
            }
            Target::ThisRoom(room) => {
                let portal = PortalRecord {
                    remote_id: remote_id.clone(),
                    room_id: room.to_owned(),
                    name: Some(title.to_owned()),
                    relay_enabled: false,
                };
                store.upsert_portal(&portal).await?;
                bridge.send_bridge_info(&portal).await;
                portal
            }
        };
        store.kv_set(LINKED_BY, &remote_id, user.as_str()).await?;
        tracing::info!(chat, room = %portal.room_id, %user, "chat linked");
        let note = format!(
            "This chat is now bridged to Matrix ({}).",
            escape(portal.room_id.as_str())
        );
        if let Err(e) = self.api.send_html(chat, &note, None, None).await {
            tracing::info!(error = %e, "link confirmation not sent to Telegram");
        }
        Ok(format!(
            "Telegram chat {} ({chat}) is now bridged to {}.",
            title, portal.room_id
        ))
    }

    async fn unlink_command(
        &self,
        context: &CommandContext<'_>,
        remote_id: &str,
    ) -> Result<String> {
        let store = context.bridge.store();
        let Some(portal) = store.portal_by_remote_id(remote_id).await? else {
            return Ok(format!("Telegram chat {remote_id} is not bridged."));
        };
        let linker = store.kv_get(LINKED_BY, remote_id).await?;
        let is_linker = linker.as_deref() == Some(context.sender.as_str());
        if context.permission < Permission::Admin && !is_linker {
            return Ok(
                "Only the Matrix user who linked this chat, or a bridge admin, can unlink it."
                    .to_owned(),
            );
        }
        store.delete_portal(remote_id).await?;
        store.kv_delete(LINKED_BY, remote_id).await?;
        tracing::info!(chat = remote_id, room = %portal.room_id, user = %context.sender, "chat unlinked");
        let reply = format!(
            "Telegram chat {remote_id} is no longer bridged to {}.",
            portal.room_id
        );
        if portal.room_id.as_str() != context.room_id.as_str() {
            let notice = format!(
                "This room is no longer bridged: {} sent unlink.",
                context.sender
            );
            let sent = context
                .bridge
                .appservice()
                .bot()
                .send_notice(&portal.room_id, &notice, SendOptions::default())
                .await;
            if let Err(e) = sent {
                tracing::info!(error = %e, "unlink notice not sent to the portal");
            }
        }
        if let Ok(chat) = remote_id.parse::<i64>()
            && let Err(e) = self
                .api
                .send_html(
                    chat,
                    "This chat is no longer bridged to Matrix.",
                    None,
                    None,
                )
                .await
        {
            tracing::info!(error = %e, "unlink notice not sent to Telegram");
        }
        Ok(reply)
    }
}
