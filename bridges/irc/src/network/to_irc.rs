//! Matrix -> IRC: messages and edits, through the sender's own connection or the relay bot;
//! memberships move the sender's puppet in and out of channels.

use std::collections::HashMap;
use std::sync::Arc;

use appservice_sdk::bridge::{MatrixEdit, MatrixMembership, MatrixMessage};
use appservice_sdk::format::mentioned_user_ids;
use appservice_sdk::intent::SendOptions;
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Result, content};
use ruma::{EventId, RoomId, UserId};
use serde_json::Value;

use super::{Net, Shared};
use crate::convert::ids::PortalId;
use crate::convert::matrix_to_irc::{correction, message_text, quote_reply, strip_reply_fallback};
use crate::convert::nick::{GHOST_PREFIX, nick_of_ghost};
use crate::convert::split::{split_lines, text_budget};

/// One message on its way to IRC.
struct Outgoing<'a> {
    sender: &'a UserId,
    /// The Matrix message, whose IRC msgids are kept for deleting it later.
    event_id: Option<&'a str>,
    text: String,
    action: bool,
    notice: bool,
}

impl Shared {
    pub(super) async fn send_message(
        self: &Arc<Self>,
        portal: &PortalRecord,
        message: &MatrixMessage,
    ) -> Result<Option<String>> {
        let (id, net) = self.net_of(portal)?;
        let net = net.clone();
        let pills = self.pill_nicks(&net, &message.content).await;
        let text = message_text(
            &message.content,
            |mxc, name| self.media_link(mxc, name),
            |user, name| pills.get(user).cloned().unwrap_or_else(|| name.to_owned()),
        );
        let mut body = text.text;
        if let Some(parent) = content::relations(&message.content).in_reply_to
            && let Some((nick, quoted)) = self.parent(&net, &portal.room_id, &parent).await
        {
            body = quote_reply(&nick, &quoted, &body);
        }
        let out = Outgoing {
            sender: &message.sender,
            event_id: Some(message.event_id.as_str()),
            text: body,
            action: text.action,
            notice: text.notice,
        };
        self.deliver(portal, &id, &net, out, message.relayed)
            .await?;
        // How long after the homeserver made the event its lines were queued for IRC (the
        // homeserver's delivery plus the bridge's handling so far; same clock, ms).
        tracing::debug!(
            target: "irc_bridge::timing",
            ms = super::relay::now_ms().saturating_sub(message.ts),
            "Matrix message queued for IRC"
        );
        Ok(Some(format!("mx:{}", message.event_id)))
    }

    pub(super) async fn send_edit(
        self: &Arc<Self>,
        portal: &PortalRecord,
        edit: &MatrixEdit,
    ) -> Result<()> {
        let (id, net) = self.net_of(portal)?;
        let net = net.clone();
        let pills = self.pill_nicks(&net, &edit.new_content).await;
        let text = message_text(
            &edit.new_content,
            |mxc, name| self.media_link(mxc, name),
            |user, name| pills.get(user).cloned().unwrap_or_else(|| name.to_owned()),
        );
        let out = Outgoing {
            sender: &edit.sender,
            event_id: None,
            text: correction(&text.text),
            action: false,
            notice: text.notice,
        };
        self.deliver(portal, &id, &net, out, edit.relayed).await
    }

    pub(super) async fn on_membership(
        self: &Arc<Self>,
        portal: &PortalRecord,
        change: &MatrixMembership,
    ) -> Result<()> {
        let (PortalId::Channel { channel, .. }, net) = self.net_of(portal)? else {
            return Ok(());
        };
        let net = net.clone();
        match change.membership.as_str() {
            // Not waiting for the connection to register: the channel is joined once it has.
            "join" => {
                if let Some(conn) = self.puppet_connection(&net, &change.user_id).await {
                    conn.join(&channel);
                }
            }
            "leave" | "ban" => {
                let conn = net
                    .state()
                    .puppets
                    .get(&change.user_id)
                    .map(|p| p.conn.clone());
                if let Some(conn) = conn {
                    let reason = if change.sender == change.user_id {
                        "left the Matrix room".to_owned()
                    } else {
                        format!("removed from the Matrix room by {}", change.sender)
                    };
                    conn.part(&channel, &reason);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Sends through the sender's puppet, else the relay bot (with the relay template), split
    /// into IRC lines; past `max_lines` lines, the text goes as a file and IRC gets a link.
    async fn deliver(
        self: &Arc<Self>,
        portal: &PortalRecord,
        id: &PortalId,
        net: &Arc<Net>,
        out: Outgoing<'_>,
        relayed: bool,
    ) -> Result<()> {
        let target = match id {
            PortalId::Channel { channel, .. } => channel.clone(),
            PortalId::Private { nick, .. } => nick.clone(),
        };
        let puppet = if relayed {
            None
        } else {
            self.puppet(net, out.sender).await
        };
        let (conn, via_relay) = match puppet {
            Some(conn) => {
                if matches!(id, PortalId::Channel { .. }) {
                    conn.join(&target);
                }
                (conn, false)
            }
            None => (net.relay()?.clone(), true),
        };
        let displayname = self.displayname(out.sender).await;
        let template = &net.config.relay_template;
        let wrap = |line: &str| -> String {
            if !via_relay {
                return line.to_owned();
            }
            let message = if out.action {
                format!("* {line}")
            } else {
                line.to_owned()
            };
            template
                .replace("{displayname}", &displayname)
                .replace("{user_id}", out.sender.as_str())
                .replace("{message}", &message)
        };
        let overhead = wrap("").len();
        let action_overhead = if out.action && !via_relay {
            "\u{1}ACTION \u{1}".len()
        } else {
            0
        };
        let budget = text_budget(&conn.nick(), &target)
            .saturating_sub(overhead + action_overhead)
            .max(16);
        let mut lines = split_lines(&out.text, budget);
        if lines.len() > net.config.max_lines {
            lines = vec![
                self.as_file_link(portal, &out.text, &lines[0], budget)
                    .await?,
            ];
        }
        if !conn.is_connected() {
            self.tell_unreachable(net, &portal.room_id).await;
        }
        let command = if out.notice { "NOTICE" } else { "PRIVMSG" };
        // Only where the server can delete messages: their msgids are kept for that.
        let track = out.event_id.filter(|_| super::redaction::offered(&conn));
        for line in lines {
            let payload = if out.action && !via_relay {
                format!("\u{1}ACTION {line}\u{1}")
            } else {
                wrap(&line)
            };
            let raw = format!("{command} {target} :{payload}");
            match track {
                Some(event_id) => conn.send_tracked(&raw, event_id),
                None => conn.send_raw(&raw),
            }
        }
        Ok(())
    }

    /// Uploads a long message as a text file; the line IRC gets: its start and the link.
    async fn as_file_link(
        &self,
        portal: &PortalRecord,
        text: &str,
        first: &str,
        budget: usize,
    ) -> Result<String> {
        let bot = self.bridge()?.appservice().bot();
        let mxc = bot
            .upload(
                text.as_bytes().to_vec(),
                "text/plain; charset=utf-8",
                "message.txt",
            )
            .await?;
        let link = self
            .media_link(mxc.as_str(), "message.txt")
            .unwrap_or_else(|| mxc.to_string());
        let lines = text.lines().count();
        let tail = format!(" … ({lines} lines: {link})");
        let mut head: String = first.to_owned();
        while head.len() + tail.len() > budget && !head.is_empty() {
            head.pop();
        }
        tracing::debug!(room = %portal.room_id, lines, "long message sent as a file");
        Ok(format!("{head}{tail}"))
    }

    async fn tell_unreachable(&self, net: &Net, room: &RoomId) {
        if !net.state().told_unreachable.insert(room.to_owned()) {
            return;
        }
        if let Ok(bridge) = self.bridge() {
            let text = format!(
                "IRC ({}) is unreachable now; messages are kept and sent, in order, when it is back.",
                net.name
            );
            let _ = bridge
                .appservice()
                .bot()
                .send_notice(room, &text, SendOptions::default())
                .await;
        }
    }

    /// A link IRC users can open for an `mxc://` URI named `filename`: the media proxy's signed
    /// link when `irc.media_proxy` is set, else
    /// `<media_url or homeserver>/_matrix/media/v3/download/<server>/<id>`.
    pub(super) fn media_link(&self, mxc: &str, filename: &str) -> Option<String> {
        if let Some(proxy) = &self.media_proxy {
            return proxy.link(mxc, filename);
        }
        let rest = mxc.strip_prefix("mxc://")?;
        let base = match &self.config.media_url {
            Some(url) => url.clone(),
            None => self
                .bridge()
                .ok()?
                .appservice()
                .client()
                .base_url()
                .to_owned(),
        };
        Some(format!(
            "{}/_matrix/media/v3/download/{rest}",
            base.trim_end_matches('/')
        ))
    }

    /// The IRC nick of every user a message's HTML mentions: ghosts by their nick, Matrix users
    /// by their puppet's nick.
    async fn pill_nicks(&self, net: &Net, content: &Value) -> HashMap<String, String> {
        let mut nicks = HashMap::new();
        let Some(html) = content["formatted_body"].as_str() else {
            return nicks;
        };
        for user in mentioned_user_ids(html) {
            if let Some(nick) = self.nick_of_user(net, &user).await {
                nicks.insert(user, nick);
            }
        }
        nicks
    }

    async fn nick_of_user(&self, net: &Net, user: &str) -> Option<String> {
        let user_id = UserId::parse(user).ok()?;
        if user_id.localpart().starts_with(GHOST_PREFIX) {
            let bridge = self.bridge().ok()?;
            if let Ok(Some(puppet)) = bridge.store().puppet_by_user_id(user).await
                && let Some(nick) = puppet.displayname
            {
                return Some(nick);
            }
            return nick_of_ghost(user_id.localpart(), [net.name.as_str()]).map(|(_, nick)| nick);
        }
        net.state().puppets.get(&user_id).map(|p| p.conn.nick())
    }

    /// Who wrote a replied-to event and its first words.
    async fn parent(&self, net: &Net, room: &RoomId, event_id: &str) -> Option<(String, String)> {
        let event_id = EventId::parse(event_id).ok()?;
        let bridge = self.bridge().ok()?;
        let path = format!(
            "/_matrix/client/v3/rooms/{}/event/{}",
            url::form_urlencoded::byte_serialize(room.as_str().as_bytes()).collect::<String>(),
            url::form_urlencoded::byte_serialize(event_id.as_str().as_bytes()).collect::<String>()
        );
        let event = bridge
            .appservice()
            .client()
            .send_json(reqwest::Method::GET, &path, None, None)
            .await
            .ok()?;
        let sender = event["sender"].as_str()?;
        let body =
            strip_reply_fallback(event["content"]["body"].as_str().unwrap_or_default()).to_owned();
        let nick = match self.nick_of_user(net, sender).await {
            Some(nick) => nick,
            None => match UserId::parse(sender) {
                Ok(user) => self.displayname(&user).await,
                Err(_) => sender.to_owned(),
            },
        };
        Some((nick, body))
    }
}
