//! Telegram -> Matrix: carries out [`Action`]s in portals, as ghosts, with the original times.

use std::time::Instant;

use appservice_sdk::bridge::{Bridge, RemoteEvent, RemoteEventKind, RemoteSender};
use appservice_sdk::intent::SendOptions;
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use serde_json::{Value, json};

use super::{CACHE_LIMIT, GHOST_PREFIX, Shared};
use crate::convert::entities::Mentions;
use crate::convert::message::{MatrixContent, Media, text_content};
use crate::link_codes::PendingLink;
use crate::updates::{Action, PortalAction, Sender};

/// Telegram users as their ghosts' Matrix ids, for mentions.
pub(crate) struct GhostMentions {
    domain: String,
}

impl GhostMentions {
    pub(crate) fn new(bridge: &Bridge) -> Self {
        Self {
            domain: bridge.appservice().domain().to_owned(),
        }
    }
}

impl Mentions for GhostMentions {
    fn user_mxid(&self, telegram_user_id: u64) -> Option<String> {
        let localpart = Bridge::ghost_localpart_for(GHOST_PREFIX, &telegram_user_id.to_string());
        Some(format!("@{localpart}:{}", self.domain))
    }
}

fn remote_sender(sender: &Sender) -> RemoteSender {
    RemoteSender {
        id: sender.id.to_string(),
        displayname: Some(sender.displayname.clone()),
    }
}

impl Shared {
    pub(super) async fn apply(&self, bridge: &Bridge, action: &Action) -> Result<()> {
        match action {
            Action::Ignore(why) => {
                tracing::debug!(why, "update ignored");
                Ok(())
            }
            Action::LinkRequest {
                chat_id,
                title,
                private,
                user_id,
            } => {
                self.link_request(bridge, *chat_id, title, *private, *user_id)
                    .await
            }
            Action::Unlink { chat_id, user_id } => self.unlink(bridge, *chat_id, *user_id).await,
            Action::Portal { chat_id, action } => {
                let Some(portal) = bridge
                    .store()
                    .portal_by_remote_id(&chat_id.to_string())
                    .await?
                else {
                    tracing::debug!(chat_id, "no portal for this chat");
                    return Ok(());
                };
                self.in_portal(bridge, &portal, *chat_id, action).await
            }
        }
    }

    async fn in_portal(
        &self,
        bridge: &Bridge,
        portal: &PortalRecord,
        chat_id: i64,
        action: &PortalAction,
    ) -> Result<()> {
        let room = &portal.room_id;
        match action {
            PortalAction::Message {
                sender,
                message_id,
                ts_ms,
                content,
                reply_to,
                thread,
            } => {
                self.sync_avatar(bridge, sender).await;
                let mut content = self.matrix_content(bridge, sender, content).await?;
                let mut reply_to = reply_to.map(|r| r.to_string());
                if let Some(thread) = thread {
                    self.state().forums.insert(chat_id);
                    if let Some(root) = bridge
                        .store()
                        .message_by_remote_id(&portal.remote_id, &thread.to_string())
                        .await?
                    {
                        let parent = match &reply_to {
                            Some(r) => {
                                bridge
                                    .store()
                                    .message_by_remote_id(&portal.remote_id, r)
                                    .await?
                            }
                            None => None,
                        };
                        let in_reply_to = parent.as_ref().map_or(&root.event_id, |p| &p.event_id);
                        content["m.relates_to"] = json!({
                            "rel_type": "m.thread",
                            "event_id": root.event_id,
                            "is_falling_back": parent.is_none(),
                            "m.in_reply_to": {"event_id": in_reply_to},
                        });
                        reply_to = None;
                    }
                }
                let event = RemoteEvent {
                    id: message_id.to_string(),
                    sender: remote_sender(sender),
                    ts: Some(*ts_ms),
                    kind: RemoteEventKind::Message { content, reply_to },
                };
                bridge.queue_remote_event(portal.clone(), event).await
            }
            PortalAction::Edit {
                sender,
                message_id,
                edit_ts_ms,
                content,
            } => {
                let content = match content {
                    MatrixContent::Media(media) => {
                        let caption = media.caption.clone().unwrap_or_default();
                        text_content("m.text", &caption)
                    }
                    other => other.content().unwrap_or_default(),
                };
                let event = RemoteEvent {
                    id: format!("{message_id}:edit:{edit_ts_ms}"),
                    sender: remote_sender(sender),
                    ts: Some(*edit_ts_ms),
                    kind: RemoteEventKind::Edit {
                        target: message_id.to_string(),
                        content,
                    },
                };
                ignore_unknown_target(bridge.queue_remote_event(portal.clone(), event).await)
            }
            PortalAction::Reactions {
                sender,
                message_id,
                ts_ms,
                added,
                removed,
            } => {
                let target = message_id.to_string();
                let changes = added
                    .iter()
                    .map(|k| (k, true))
                    .chain(removed.iter().map(|k| (k, false)));
                for (key, add) in changes {
                    let kind = match add {
                        true => RemoteEventKind::Reaction {
                            target: target.clone(),
                            key: key.clone(),
                        },
                        false => RemoteEventKind::ReactionRemove {
                            target: target.clone(),
                            key: key.clone(),
                        },
                    };
                    let event = RemoteEvent {
                        id: format!("{message_id}:react:{}:{key}:{ts_ms}:{add}", sender.id),
                        sender: remote_sender(sender),
                        ts: Some(*ts_ms),
                        kind,
                    };
                    ignore_unknown_target(bridge.queue_remote_event(portal.clone(), event).await)?;
                }
                Ok(())
            }
            PortalAction::Joined(senders) => {
                for sender in senders {
                    self.sync_avatar(bridge, sender).await;
                    bridge
                        .ghost(&remote_sender(sender))
                        .await?
                        .ensure_joined(room)
                        .await?;
                }
                Ok(())
            }
            PortalAction::Left(sender) => {
                bridge
                    .ghost(&remote_sender(sender))
                    .await?
                    .leave(room)
                    .await
            }
            PortalAction::Title(title) => {
                let bot = bridge.appservice().bot();
                bot.send_state(
                    room,
                    "m.room.name",
                    "",
                    &json!({"name": title}),
                    SendOptions::default(),
                )
                .await?;
                let renamed = PortalRecord {
                    name: Some(title.clone()),
                    ..portal.clone()
                };
                bridge.store().upsert_portal(&renamed).await
            }
            PortalAction::Photo { file_id, .. } => {
                let data = self.api.download(file_id).await?;
                let bot = bridge.appservice().bot();
                let mxc = bot
                    .upload(data.to_vec(), "image/jpeg", "chat-photo.jpg")
                    .await?;
                bot.send_state(
                    room,
                    "m.room.avatar",
                    "",
                    &json!({"url": mxc}),
                    SendOptions::default(),
                )
                .await
                .map(|_| ())
            }
            PortalAction::PhotoRemoved => {
                let bot = bridge.appservice().bot();
                bot.send_state(
                    room,
                    "m.room.avatar",
                    "",
                    &json!({}),
                    SendOptions::default(),
                )
                .await
                .map(|_| ())
            }
            PortalAction::Migrated { to } => {
                // The same room follows the chat to its new (supergroup) id.
                let store = bridge.store();
                store.delete_portal(&portal.remote_id).await?;
                let moved = PortalRecord {
                    remote_id: to.to_string(),
                    ..portal.clone()
                };
                store.upsert_portal(&moved).await?;
                tracing::info!(from = chat_id, to, room = %room, "group migrated to a supergroup; portal follows");
                Ok(())
            }
        }
    }

    /// The `m.room.message` content, with media copied from Telegram to the media repository.
    async fn matrix_content(
        &self,
        bridge: &Bridge,
        sender: &Sender,
        content: &MatrixContent,
    ) -> Result<Value> {
        let MatrixContent::Media(media) = content else {
            return Ok(content.content().unwrap_or_default());
        };
        match self.copy_media(bridge, sender, media).await {
            Ok(content) => Ok(content),
            Err(e @ Error::Network(_)) => {
                // The Bot API cannot hand out files over 20 MB: say so in the room instead of dropping it.
                tracing::warn!(error = %e, file = media.file_name, "media not copied");
                let mut text = crate::convert::entities::MatrixText {
                    body: format!(
                        "[{} could not be copied from Telegram: {e}]",
                        media.file_name
                    ),
                    ..Default::default()
                };
                if let Some(caption) = &media.caption {
                    text.body = format!("{}\n{}", caption.body, text.body);
                }
                Ok(text_content("m.notice", &text))
            }
            Err(e) => Err(e),
        }
    }

    async fn copy_media(&self, bridge: &Bridge, sender: &Sender, media: &Media) -> Result<Value> {
        const MAX_DOWNLOAD: u32 = 20 * 1024 * 1024;
        // teloxide reports an unknown size as u32::MAX.
        if media.size != u32::MAX && media.size > MAX_DOWNLOAD {
            return Err(Error::Network(
                "larger than the Bot API's 20 MB download limit".to_owned(),
            ));
        }
        let data = self.api.download(&media.file_id).await?;
        let ghost = bridge.ghost(&remote_sender(sender)).await?;
        let mime = media
            .mime_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        let mxc = ghost.upload(data.to_vec(), mime, &media.file_name).await?;
        let mut media = media.clone();
        media.size = u32::try_from(data.len()).unwrap_or(u32::MAX);
        Ok(media.content(mxc.as_str()))
    }

    /// Gives the ghost of a Telegram user their newest profile photo, once per user per run (best effort).
    async fn sync_avatar(&self, bridge: &Bridge, sender: &Sender) {
        if !sender.is_user {
            return;
        }
        {
            let mut state = self.state();
            if state.avatars_checked.len() >= CACHE_LIMIT {
                state.avatars_checked.clear();
            }
            if !state.avatars_checked.insert(sender.id) {
                return;
            }
        }
        if let Err(e) = self.set_avatar(bridge, sender).await {
            tracing::info!(user = sender.id, error = %e, "ghost avatar not updated");
        }
    }

    async fn set_avatar(&self, bridge: &Bridge, sender: &Sender) -> Result<()> {
        let Some((file_id, unique_id)) = self.api.profile_photo(sender.id).await? else {
            return Ok(());
        };
        // The SDK downloads (through `fetch`) only when the photo's unique id changed.
        let fetch = async {
            let data = self.api.download(&file_id).await?;
            Ok((data.to_vec(), "image/jpeg".to_owned()))
        };
        bridge
            .set_ghost_avatar(&remote_sender(sender), &unique_id, fetch)
            .await?;
        Ok(())
    }

    /// `/bridge`: a code for a chat admin (anyone in a private chat), to redeem on Matrix.
    async fn link_request(
        &self,
        bridge: &Bridge,
        chat: i64,
        title: &str,
        private: bool,
        user: i64,
    ) -> Result<()> {
        let reply = if bridge
            .store()
            .portal_by_remote_id(&chat.to_string())
            .await?
            .is_some()
        {
            "This chat is already bridged to Matrix. An admin can send /unbridge to stop."
                .to_owned()
        } else if !private && !self.api.is_admin(chat, user).await? {
            "Only the chat's admins can bridge it to Matrix.".to_owned()
        } else {
            let link = PendingLink {
                chat_id: chat,
                title: title.to_owned(),
                private,
            };
            let code = self.state().link_codes.issue(link, Instant::now());
            let minutes = self.config.link_code_ttl.div_ceil(60);
            format!(
                "To bridge this chat to Matrix, send <code>bridge {code}</code> to the bridge bot in your Matrix \
                 management room within {minutes} minutes."
            )
        };
        self.api.send_html(chat, &reply, None, None).await?;
        Ok(())
    }

    /// `/unbridge` from a chat admin (anyone in a private chat).
    async fn unlink(&self, bridge: &Bridge, chat: i64, user: i64) -> Result<()> {
        let store = bridge.store();
        let Some(portal) = store.portal_by_remote_id(&chat.to_string()).await? else {
            self.api
                .send_html(chat, "This chat is not bridged to Matrix.", None, None)
                .await?;
            return Ok(());
        };
        let private = portal.remote_id == user.to_string();
        if !private && !self.api.is_admin(chat, user).await? {
            self.api
                .send_html(chat, "Only the chat's admins can unbridge it.", None, None)
                .await?;
            return Ok(());
        }
        store.delete_portal(&portal.remote_id).await?;
        store
            .kv_delete(super::commands::LINKED_BY, &portal.remote_id)
            .await?;
        let notice = "This room is no longer bridged: a Telegram admin sent /unbridge.";
        if let Err(e) = bridge
            .appservice()
            .bot()
            .send_notice(&portal.room_id, notice, SendOptions::default())
            .await
        {
            tracing::info!(error = %e, "unbridge notice not sent");
        }
        self.api
            .send_html(
                chat,
                "This chat is no longer bridged to Matrix.",
                None,
                None,
            )
            .await?;
        Ok(())
    }
}

/// An edit or reaction of a message the bridge never saw (sent before the chat was linked) is dropped.
fn ignore_unknown_target(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound(what)) => {
            tracing::debug!(what, "target message not bridged");
            Ok(())
        }
        other => other,
    }
}
