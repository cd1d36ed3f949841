//! The echo "network": an in-process chat network where every message is answered, from a
//! ghost named after its sender, with the same text. Edits, redactions and reactions are
//! mirrored onto the echo.
//!
//! This file is the whole network side of the bridge: everything else (appservice server,
//! database, ghosts, commands) comes from the SDK.

use std::sync::OnceLock;

use appservice_sdk::bridge::{
    Bridge, MatrixEdit, MatrixMessage, MatrixReaction, MatrixRedaction, Network, NetworkInfo,
    RedactionTarget, RemoteEvent, RemoteEventKind, RemoteSender,
};
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use async_trait::async_trait;
use ruma::{RoomId, UserId};
use serde_json::{Value, json};

/// Ghosts are `@echo_<localpart>:<domain>`.
pub(crate) const GHOST_PREFIX: &str = "echo_";

/// The echo network. It keeps the [`Bridge`] handle it gets at start to send remote events.
#[derive(Default)]
pub(crate) struct EchoNetwork {
    bridge: OnceLock<Bridge>,
}

/// On the echo network, a Matrix message keeps its event id: the user's copy is `in:<id>`, the
/// echo `echo:<id>`. The SDK stores these remote ids against the Matrix event ids.
fn echo_id_of(remote_id: &str) -> String {
    match remote_id.strip_prefix("in:") {
        Some(event_id) => format!("echo:{event_id}"),
        None => remote_id.to_owned(),
    }
}

/// The echo speaks as a ghost named after the Matrix sender's localpart.
fn echo_sender(user_id: &UserId) -> RemoteSender {
    RemoteSender {
        id: user_id.localpart().to_owned(),
        displayname: Some(format!("{} (echo)", user_id.localpart())),
    }
}

/// The content to echo: the text and its formatting, without relations or reply fallbacks.
fn echo_content(content: &Value) -> Value {
    let mut echo = json!({
        "msgtype": content["msgtype"].as_str().unwrap_or("m.text"),
        "body": content["body"].as_str().unwrap_or_default(),
    });
    if let (Some(format), Some(html)) = (
        content["format"].as_str(),
        content["formatted_body"].as_str(),
    ) {
        echo["format"] = json!(format);
        echo["formatted_body"] = json!(html);
    }
    for key in ["url", "info", "filename"] {
        if let Some(v) = content.get(key) {
            echo[key] = v.clone();
        }
    }
    echo
}

impl EchoNetwork {
    fn bridge(&self) -> Result<&Bridge> {
        self.bridge
            .get()
            .ok_or_else(|| Error::Network("echo network not started".to_owned()))
    }

    /// Sends a remote event now: network handlers already run in the portal's order.
    async fn echo(&self, portal: &PortalRecord, event: RemoteEvent) -> Result<()> {
        self.bridge()?.handle_remote_event(portal, event).await?;
        Ok(())
    }
}

#[async_trait]
impl Network for EchoNetwork {
    fn info(&self) -> NetworkInfo {
        NetworkInfo::new("echo", "Echo", GHOST_PREFIX)
    }

    async fn start(&self, bridge: Bridge) -> Result<()> {
        let _ = self.bridge.set(bridge);
        tracing::info!("echo network ready");
        Ok(())
    }

    /// Any room the bot is invited to (by someone allowed) becomes a portal.
    async fn portal_for_invite(
        &self,
        room_id: &RoomId,
        _inviter: &UserId,
    ) -> Result<Option<String>> {
        Ok(Some(format!("room:{room_id}")))
    }

    async fn handle_matrix_message(
        &self,
        portal: &PortalRecord,
        message: &MatrixMessage,
    ) -> Result<Option<String>> {
        let event = RemoteEvent {
            id: format!("echo:{}", message.event_id),
            sender: echo_sender(&message.sender),
            ts: None,
            kind: RemoteEventKind::Message {
                content: echo_content(&message.content),
                reply_to: message.reply_to.as_deref().map(echo_id_of),
            },
        };
        self.echo(portal, event).await?;
        Ok(Some(format!("in:{}", message.event_id)))
    }

    async fn handle_matrix_edit(&self, portal: &PortalRecord, edit: &MatrixEdit) -> Result<()> {
        let event = RemoteEvent {
            id: format!("echo-edit:{}", edit.event_id),
            sender: echo_sender(&edit.sender),
            ts: None,
            kind: RemoteEventKind::Edit {
                target: echo_id_of(&edit.target_remote_id),
                content: echo_content(&edit.new_content),
            },
        };
        self.echo(portal, event).await
    }

    async fn handle_matrix_redaction(
        &self,
        portal: &PortalRecord,
        redaction: &MatrixRedaction,
    ) -> Result<()> {
        let kind = match &redaction.target {
            RedactionTarget::Message(remote_id) if remote_id.starts_with("in:") => {
                RemoteEventKind::Redaction {
                    target: echo_id_of(remote_id),
                }
            }
            RedactionTarget::Reaction {
                target_remote_id,
                key,
            } => RemoteEventKind::ReactionRemove {
                target: target_remote_id.clone(),
                key: key.clone(),
            },
            // A redacted echo stays redacted; there is nothing to mirror.
            RedactionTarget::Message(_) => return Ok(()),
        };
        let event = RemoteEvent {
            id: format!("echo-redact:{}", redaction.event_id),
            sender: echo_sender(&redaction.sender),
            ts: None,
            kind,
        };
        self.echo(portal, event).await
    }

    async fn handle_matrix_reaction(
        &self,
        portal: &PortalRecord,
        reaction: &MatrixReaction,
    ) -> Result<()> {
        let event = RemoteEvent {
            id: format!("echo-react:{}", reaction.event_id),
            sender: echo_sender(&reaction.sender),
            ts: None,
            kind: RemoteEventKind::Reaction {
                target: reaction.target_remote_id.clone(),
                key: reaction.key.clone(),
            },
        };
        self.echo(portal, event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_echo_of_a_message_has_a_derived_id_and_keeps_formatting_but_not_relations() {
        assert_eq!(echo_id_of("in:$abc"), "echo:$abc");
        assert_eq!(echo_id_of("echo:$abc"), "echo:$abc");
        let content = json!({
            "msgtype": "m.text", "body": "hi", "format": "org.matrix.custom.html",
            "formatted_body": "<b>hi</b>", "m.relates_to": {"m.in_reply_to": {"event_id": "$p"}}
        });
        let echo = echo_content(&content);
        assert_eq!(echo["formatted_body"], "<b>hi</b>");
        assert!(echo.get("m.relates_to").is_none());
    }

    #[test]
    fn the_echo_speaks_as_a_ghost_named_after_the_localpart() {
        let sender = echo_sender(&UserId::parse("@alice:example.org").unwrap());
        assert_eq!(sender.id, "alice");
        assert_eq!(
            Bridge::ghost_localpart_for(GHOST_PREFIX, &sender.id),
            "echo_alice"
        );
    }
}
