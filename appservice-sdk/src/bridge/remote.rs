//! Network -> Matrix: remote events become events of ghosts in portals.

use ruma::{OwnedEventId, RoomId};
use serde_json::Value;

use super::Bridge;
use crate::content;
use crate::error::{Error, Result};
use crate::intent::{Intent, RoomOptions, SendOptions, txn_id_for};
use crate::store::{MessageRecord, PortalRecord, PuppetRecord, ReactionRecord};

/// A remote user, as the network knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSender {
    /// The network's id for the user; the ghost's localpart derives from it.
    pub id: String,
    /// The name to show, if known.
    pub displayname: Option<String>,
}

/// What happened on the network.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteEventKind {
    /// A new message; `content` is `m.room.message` content (see [`crate::content`]).
    Message {
        /// The content.
        content: Value,
        /// Remote id of the message replied to.
        reply_to: Option<String>,
    },
    /// An edit of an earlier message.
    Edit {
        /// Remote id of the edited message.
        target: String,
        /// The new content.
        content: Value,
    },
    /// A deletion.
    Redaction {
        /// Remote id of the deleted message.
        target: String,
    },
    /// A reaction.
    Reaction {
        /// Remote id of the message reacted to.
        target: String,
        /// The key, e.g. an emoji.
        key: String,
    },
    /// A reaction taken back.
    ReactionRemove {
        /// Remote id of the message reacted to.
        target: String,
        /// The key.
        key: String,
    },
    /// Started or stopped typing.
    Typing {
        /// Whether typing.
        typing: bool,
    },
}

/// One remote event for a portal.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteEvent {
    /// The network's unique id for this event (for a message, its message id). It makes the
    /// send idempotent: handling the same event twice posts once.
    pub id: String,
    /// Who did it.
    pub sender: RemoteSender,
    /// When, ms since the epoch (`None`: now).
    pub ts: Option<u64>,
    /// What happened.
    pub kind: RemoteEventKind,
}

impl Bridge {
    /// The ghost localpart for a remote user id: the ghost prefix, then the id lowercased with
    /// characters Matrix does not allow in localparts escaped as `=xx`.
    ///
    /// ```
    /// # use appservice_sdk::bridge::Bridge;
    /// assert_eq!(Bridge::ghost_localpart_for("echo_", "Alice"), "echo_alice");
    /// assert_eq!(Bridge::ghost_localpart_for("irc_", "n!ck"), "irc_n=21ck");
    /// ```
    pub fn ghost_localpart_for(prefix: &str, remote_id: &str) -> String {
        let mut out = prefix.to_owned();
        for c in remote_id.chars() {
            match c {
                'a'..='z' | '0'..='9' | '.' | '_' | '-' | '/' => out.push(c),
                'A'..='Z' => out.push(c.to_ascii_lowercase()),
                other => {
                    let mut buf = [0u8; 4];
                    for byte in other.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("={byte:02x}"));
                    }
                }
            }
        }
        out
    }

    /// The intent of the ghost for a remote user: the puppet is recorded, the ghost registered
    /// and its displayname kept up to date (cached in the store).
    pub async fn ghost(&self, sender: &RemoteSender) -> Result<Intent> {
        let store = &self.inner.store;
        let appservice = &self.inner.appservice;
        let mut puppet = match store.puppet_by_remote_id(&sender.id).await? {
            Some(puppet) => puppet,
            None => PuppetRecord {
                remote_id: sender.id.clone(),
                user_id: appservice.user_id(&Self::ghost_localpart_for(
                    &self.inner.info.ghost_prefix,
                    &sender.id,
                ))?,
                displayname: None,
                avatar_url: None,
                avatar_source: None,
                registered: false,
            },
        };
        let intent = appservice.intent(&puppet.user_id);
        let mut changed = false;
        if !puppet.registered {
            intent.ensure_registered().await?;
            puppet.registered = true;
            changed = true;
        }
        if sender.displayname.is_some() && sender.displayname != puppet.displayname {
            let name = sender.displayname.clone().unwrap_or_default();
            intent.set_displayname(&name).await?;
            puppet.displayname = Some(name);
            changed = true;
        }
        if changed {
            store.upsert_puppet(&puppet).await?;
        } else {
            // The store says registered; tell the intent so it skips the register call.
            appservice.mark_registered(&puppet.user_id);
        }
        Ok(intent)
    }

    /// Sets a ghost's avatar from the network, uploading it only when `avatar_source` (the
    /// network's id or hash of the picture) differs from the one last set: `fetch` runs only
    /// then, and returns the image bytes and MIME type.
    ///
    /// ```no_run
    /// # async fn demo(bridge: appservice_sdk::Bridge, sender: appservice_sdk::bridge::RemoteSender) -> appservice_sdk::Result<()> {
    /// bridge
    ///     .set_ghost_avatar(&sender, "photo-id-42", async { Ok((vec![0x89, b'P', b'N', b'G'], "image/png".to_owned())) })
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_ghost_avatar<F>(
        &self,
        sender: &RemoteSender,
        avatar_source: &str,
        fetch: F,
    ) -> Result<bool>
    where
        F: std::future::Future<Output = Result<(Vec<u8>, String)>>,
    {
        let intent = self.ghost(sender).await?;
        let store = &self.inner.store;
        let mut puppet = store
            .puppet_by_remote_id(&sender.id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("puppet {}", sender.id)))?;
        if puppet.avatar_source.as_deref() == Some(avatar_source) {
            return Ok(false);
        }
        let (data, mime) = fetch.await?;
        let mxc = intent.set_avatar(data, &mime).await?;
        puppet.avatar_url = Some(mxc.to_string());
        puppet.avatar_source = Some(avatar_source.to_owned());
        store.upsert_puppet(&puppet).await?;
        Ok(true)
    }

    /// Sends a remote event into its portal now, as the sender's ghost. Call it from inside a
    /// network handler (which already runs in the portal's order); from elsewhere use
    /// [`Bridge::queue_remote_event`]. Returns the Matrix event id, if an event was sent.
    pub async fn handle_remote_event(
        &self,
        portal: &PortalRecord,
        event: RemoteEvent,
    ) -> Result<Option<OwnedEventId>> {
        self.inner.metrics.event_in("remote");
        let store = &self.inner.store;
        let room: &RoomId = &portal.room_id;
        let ghost = self.ghost(&event.sender).await?;
        let options = SendOptions {
            ts: event.ts,
            txn_id: Some(txn_id_for(&portal.remote_id, &event.id)),
        };
        let sent = match event.kind {
            RemoteEventKind::Message { content, reply_to } => {
                if store
                    .message_by_remote_id(&portal.remote_id, &event.id)
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
                let content = match reply_to {
                    Some(parent) => match store
                        .message_by_remote_id(&portal.remote_id, &parent)
                        .await?
                    {
                        Some(parent) => content::reply(parent.event_id.as_str(), content),
                        None => content,
                    },
                    None => content,
                };
                let event_id = ghost.send_message(room, &content, options).await?;
                store
                    .insert_message(&MessageRecord {
                        portal_id: portal.remote_id.clone(),
                        remote_id: event.id.clone(),
                        event_id: event_id.clone(),
                        sender: ghost.user_id().to_owned(),
                        ts: event
                            .ts
                            .map(|t| t as i64)
                            .unwrap_or_else(crate::store::now_ms),
                    })
                    .await?;
                Some(event_id)
            }
            RemoteEventKind::Edit { target, content } => {
                let target = self.target(portal, &target).await?;
                Some(
                    ghost
                        .send_edit(room, &target.event_id, content, options)
                        .await?,
                )
            }
            RemoteEventKind::Redaction { target } => {
                let target = self.target(portal, &target).await?;
                let event_id = ghost.redact(room, &target.event_id, None, options).await?;
                store.delete_message(target.event_id.as_str()).await?;
                Some(event_id)
            }
            RemoteEventKind::Reaction { target, key } => {
                let target = self.target(portal, &target).await?;
                let sender = ghost.user_id().as_str();
                if store
                    .find_reaction(&portal.remote_id, &target.remote_id, sender, &key)
                    .await?
                    .is_some()
                {
                    return Ok(None);
                }
                let event_id = ghost.react(room, &target.event_id, &key, options).await?;
                store
                    .insert_reaction(&ReactionRecord {
                        event_id: event_id.clone(),
                        portal_id: portal.remote_id.clone(),
                        target_remote_id: target.remote_id,
                        sender: ghost.user_id().to_owned(),
                        key,
                    })
                    .await?;
                Some(event_id)
            }
            RemoteEventKind::ReactionRemove { target, key } => {
                let sender = ghost.user_id().as_str();
                let Some(reaction) = store
                    .find_reaction(&portal.remote_id, &target, sender, &key)
                    .await?
                else {
                    return Ok(None);
                };
                let event_id = ghost
                    .redact(room, &reaction.event_id, None, options)
                    .await?;
                store.delete_reaction(reaction.event_id.as_str()).await?;
                Some(event_id)
            }
            RemoteEventKind::Typing { typing } => {
                let timeout = typing.then_some(std::time::Duration::from_secs(30));
                ghost.typing(room, timeout).await?;
                None
            }
        };
        self.inner.metrics.event_out();
        Ok(sent)
    }

    async fn target(&self, portal: &PortalRecord, remote_id: &str) -> Result<MessageRecord> {
        self.inner
            .store
            .message_by_remote_id(&portal.remote_id, remote_id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("message {remote_id} in {}", portal.remote_id)))
    }

    /// Creates a portal room for a remote chat (the bot creates it, as `options` say), or
    /// returns the existing portal.
    pub async fn create_portal(
        &self,
        remote_id: &str,
        options: &RoomOptions,
    ) -> Result<PortalRecord> {
        if let Some(portal) = self.inner.store.portal_by_remote_id(remote_id).await? {
            return Ok(portal);
        }
        let room_id = self.inner.appservice.bot().create_room(options).await?;
        let portal = PortalRecord {
            remote_id: remote_id.to_owned(),
            room_id,
            name: options.name.clone(),
            relay_enabled: false,
        };
        self.inner.store.upsert_portal(&portal).await?;
        self.give_portal_power(&portal.room_id, None).await;
        self.send_bridge_info(&portal).await;
        Ok(portal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_ids_are_stable_and_distinct_per_portal_and_event() {
        assert_eq!(txn_id_for("chat", "m1"), txn_id_for("chat", "m1"));
        assert_ne!(txn_id_for("chat", "m1"), txn_id_for("chat", "m2"));
        assert_ne!(txn_id_for("chat", "m1"), txn_id_for("chat2", "m1"));
        assert!(
            txn_id_for("c", "$ev:x")
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        );
    }

    #[test]
    fn ghost_localparts_are_valid_matrix_localparts() {
        assert_eq!(Bridge::ghost_localpart_for("t_", "12345"), "t_12345");
        assert_eq!(Bridge::ghost_localpart_for("t_", "Ünï"), "t_=c3=9cn=c3=af");
    }
}
