//! Matrix -> Telegram: the bot relays every Matrix user with the message template (the Bot API cannot post
//! as anyone else).

use appservice_sdk::bridge::{
    MatrixEdit, MatrixMessage, MatrixReaction, MatrixRedaction, RedactionTarget,
};
use appservice_sdk::intent::SendOptions;
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use bytes::Bytes;
use ruma::UserId;
use serde_json::Value;

use super::api::{FileKind, Upload};
use super::{GHOST_PREFIX, Shared, chat_id};
use crate::convert::matrix_html::{GhostIds, matrix_to_telegram, plain_to_telegram};
use crate::convert::relay::render;
use crate::fake_bot_api::parse_mode::{MAX_CAPTION, MAX_TEXT, parse_html};
use crate::html::escape;

/// Bots may upload up to 50 MB, photos up to 10 MB (bigger images go as documents).
const MAX_UPLOAD: u64 = 50 * 1024 * 1024;
const MAX_PHOTO: u64 = 10 * 1024 * 1024;

/// Matrix ids of this bridge's ghosts back to Telegram user ids.
struct Ghosts<'a> {
    domain: &'a str,
}

impl GhostIds for Ghosts<'_> {
    fn telegram_user_id(&self, mxid: &str) -> Option<u64> {
        let (localpart, server) = mxid.strip_prefix('@')?.split_once(':')?;
        if server != self.domain {
            return None;
        }
        localpart.strip_prefix(GHOST_PREFIX)?.parse().ok()
    }
}

/// Drops the `> <@user> quoted` lines older clients put before a reply's body.
fn strip_reply_fallback(body: &str, is_reply: bool) -> &str {
    if !is_reply || !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(end) if body[..end].lines().all(|l| l.starts_with('>')) => &body[end + 2..],
        _ => body,
    }
}

fn parse_message_id(remote_id: &str) -> Option<i32> {
    remote_id.parse().ok()
}

impl Shared {
    /// The message as Telegram HTML (before the template).
    fn message_html(&self, content: &Value) -> String {
        let domain = self
            .bridge
            .get()
            .map(|b| b.appservice().domain().to_owned())
            .unwrap_or_default();
        let is_reply = content["m.relates_to"].get("m.in_reply_to").is_some();
        match (
            content["format"].as_str(),
            content["formatted_body"].as_str(),
        ) {
            (Some("org.matrix.custom.html"), Some(html)) => {
                matrix_to_telegram(html, &Ghosts { domain: &domain })
            }
            _ => plain_to_telegram(strip_reply_fallback(
                content["body"].as_str().unwrap_or_default(),
                is_reply,
            )),
        }
    }

    /// The template applied for `sender`, cut to fit Telegram's text limit.
    async fn relay_html(&self, sender: &UserId, content: &Value, message_html: &str) -> String {
        self.relay_within(sender, content, message_html, MAX_TEXT)
            .await
    }

    async fn relay_within(
        &self,
        sender: &UserId,
        content: &Value,
        message_html: &str,
        max: usize,
    ) -> String {
        let name = self.displayname(sender).await;
        let template = match content["msgtype"].as_str() {
            Some("m.emote") => &self.config.emote_template,
            _ => &self.config.message_template,
        };
        let rendered = render(template, &name, sender.as_str(), message_html);
        let body = content["body"].as_str().unwrap_or_default();
        fit(rendered, body, max, |html| {
            render(template, &name, sender.as_str(), html)
        })
    }

    /// A Matrix user's displayname (the SDK caches it), else their user id.
    async fn displayname(&self, user: &UserId) -> String {
        let name = match self.bridge() {
            Ok(bridge) => bridge.displayname_of(user).await,
            Err(_) => None,
        };
        name.filter(|n| !n.is_empty())
            .unwrap_or_else(|| user.to_string())
    }

    pub(super) async fn send_matrix_message(
        &self,
        portal: &PortalRecord,
        m: &MatrixMessage,
    ) -> Result<Option<String>> {
        let chat = chat_id(portal)?;
        let bridge = self.bridge()?;
        let mut reply_to = m.reply_to.as_deref().and_then(parse_message_id);
        let mut thread = None;
        let relates = &m.content["m.relates_to"];
        if relates["rel_type"] == "m.thread"
            && let Some(root) = relates["event_id"].as_str()
            && let Some(root) = bridge.store().message_by_event_id(root).await?
            && let Some(root) = parse_message_id(&root.remote_id)
        {
            // A Matrix thread is a forum topic where there are topics, else a reply to its first message.
            if self.state().forums.contains(&chat) {
                thread = Some(root);
            } else if reply_to.is_none() || relates["is_falling_back"] == true {
                reply_to = Some(root);
            }
        }
        let msgtype = m.content["msgtype"].as_str().unwrap_or("m.text");
        let sent = match msgtype {
            "m.image" | "m.video" | "m.audio" | "m.file" => {
                return self.send_matrix_file(portal, chat, m, reply_to).await;
            }
            "m.location" => return self.send_matrix_location(chat, m, reply_to, thread).await,
            _ => {
                let html = self
                    .relay_html(&m.sender, &m.content, &self.message_html(&m.content))
                    .await;
                self.api.send_html(chat, &html, reply_to, thread).await?
            }
        };
        Ok(Some(sent.id.0.to_string()))
    }

    /// `m.location` -> `sendLocation`. A location has no caption, so who sent it (and its description) goes
    /// first as a text message, and the map replies to it; the map is the bridged message. A `geo_uri` that is
    /// not `geo:lat,lon` within range goes as text only.
    async fn send_matrix_location(
        &self,
        chat: i64,
        m: &MatrixMessage,
        reply_to: Option<i32>,
        thread: Option<i32>,
    ) -> Result<Option<String>> {
        let body = m.content["body"].as_str().unwrap_or("Location");
        let geo_uri = m.content["geo_uri"].as_str().unwrap_or_default();
        let Some(point) = parse_geo_uri(geo_uri) else {
            let html = self
                .relay_html(
                    &m.sender,
                    &m.content,
                    &escape(&format!("{body} ({geo_uri})")),
                )
                .await;
            let sent = self.api.send_html(chat, &html, reply_to, thread).await?;
            return Ok(Some(sent.id.0.to_string()));
        };
        let label = self
            .relay_html(&m.sender, &m.content, &format!("📍 {}", escape(body)))
            .await;
        let label = self.api.send_html(chat, &label, reply_to, thread).await?;
        let sent = self
            .api
            .send_location(chat, point, Some(label.id.0), thread)
            .await?;
        Ok(Some(sent.id.0.to_string()))
    }

    /// Copies a Matrix file to Telegram, within the Bot API's upload limits; past them the room is told.
    async fn send_matrix_file(
        &self,
        portal: &PortalRecord,
        chat: i64,
        m: &MatrixMessage,
        reply_to: Option<i32>,
    ) -> Result<Option<String>> {
        let content = &m.content;
        let body = content["body"].as_str().unwrap_or("file");
        let file_name = content["filename"].as_str().unwrap_or(body).to_owned();
        let caption_html = match content["filename"].as_str() {
            Some(name) if name != body => self.message_html(content),
            _ => escape(&file_name),
        };
        let declared = content["info"]["size"].as_u64().unwrap_or(0);
        if declared > MAX_UPLOAD {
            return self.too_large(portal, chat, m, &file_name, declared).await;
        }
        let Some(url) = content["url"].as_str() else {
            return Err(Error::Network(
                "encrypted or URL-less media cannot be bridged".to_owned(),
            ));
        };
        let data = self.download_mxc(url).await?;
        let size = data.len() as u64;
        if size > MAX_UPLOAD {
            return self.too_large(portal, chat, m, &file_name, size).await;
        }
        let mime = content["info"]["mimetype"].as_str().unwrap_or_default();
        let kind = match content["msgtype"].as_str() {
            Some("m.image") if mime == "image/gif" => FileKind::Animation,
            Some("m.image") if size <= MAX_PHOTO => FileKind::Photo,
            Some("m.video") => FileKind::Video,
            Some("m.audio") if content.get("org.matrix.msc3245.voice").is_some() => FileKind::Voice,
            Some("m.audio") => FileKind::Audio,
            _ => FileKind::Document,
        };
        let caption = self
            .relay_within(&m.sender, content, &caption_html, MAX_CAPTION)
            .await;
        let upload = Upload {
            chat,
            kind,
            data,
            file_name: &file_name,
            caption: &caption,
            reply_to,
        };
        let sent = self.api.send_file(upload).await?;
        Ok(Some(sent.id.0.to_string()))
    }

    async fn too_large(
        &self,
        portal: &PortalRecord,
        chat: i64,
        m: &MatrixMessage,
        file_name: &str,
        size: u64,
    ) -> Result<Option<String>> {
        let mb = size.div_ceil(1024 * 1024);
        let notice = format!(
            "{file_name} ({mb} MB) was not sent to Telegram: bots may upload at most 50 MB."
        );
        let bridge = self.bridge()?;
        bridge
            .appservice()
            .bot()
            .send_notice(&portal.room_id, &notice, SendOptions::default())
            .await?;
        let html = self
            .relay_html(
                &m.sender,
                &m.content,
                &format!(
                    "<i>sent {} ({mb} MB), too large for Telegram</i>",
                    escape(file_name)
                ),
            )
            .await;
        let sent = self.api.send_html(chat, &html, None, None).await?;
        Ok(Some(sent.id.0.to_string()))
    }

    /// Fetches `mxc://server/id` (the SDK tries the authenticated media API, then the legacy one).
    async fn download_mxc(&self, mxc: &str) -> Result<Bytes> {
        let bridge = self.bridge()?;
        Ok(bridge.appservice().client().download_mxc(mxc).await?.data)
    }

    pub(super) async fn send_matrix_edit(
        &self,
        portal: &PortalRecord,
        e: &MatrixEdit,
    ) -> Result<()> {
        let chat = chat_id(portal)?;
        let Some(target) = parse_message_id(&e.target_remote_id) else {
            return Ok(());
        };
        let html = self
            .relay_html(
                &e.sender,
                &e.new_content,
                &self.message_html(&e.new_content),
            )
            .await;
        match self.api.edit_html(chat, target, &html).await {
            Err(err)
                if err.description.contains("not modified")
                    || err.description.contains("no text") =>
            {
                tracing::debug!(error = %err, "edit not bridged");
                Ok(())
            }
            other => other.map(|_| ()).map_err(Into::into),
        }
    }

    pub(super) async fn send_matrix_redaction(
        &self,
        portal: &PortalRecord,
        r: &MatrixRedaction,
    ) -> Result<()> {
        let chat = chat_id(portal)?;
        match &r.target {
            RedactionTarget::Message(remote) => {
                let Some(id) = parse_message_id(remote) else {
                    return Ok(());
                };
                match self.api.delete(chat, id).await {
                    Err(e) if e.refused => {
                        tracing::info!(error = %e, "Telegram refused the deletion");
                        Ok(())
                    }
                    other => other.map_err(Into::into),
                }
            }
            RedactionTarget::Reaction {
                target_remote_id, ..
            } => match parse_message_id(target_remote_id) {
                Some(id) => self.api.react(chat, id, None).await.map_err(Into::into),
                None => Ok(()),
            },
        }
    }

    /// Telegram allows a fixed set of reaction emoji, one per bot and message; others are not bridged.
    pub(super) async fn send_matrix_reaction(
        &self,
        portal: &PortalRecord,
        r: &MatrixReaction,
    ) -> Result<()> {
        let chat = chat_id(portal)?;
        let Some(id) = parse_message_id(&r.target_remote_id) else {
            return Ok(());
        };
        let Some(emoji) = telegram_reaction(&r.key) else {
            tracing::info!(key = r.key, "Telegram has no such reaction; not bridged");
            return Ok(());
        };
        self.api
            .react(chat, id, Some(&emoji))
            .await
            .map_err(Into::into)
    }
}

/// `geo:48.85837,2.294481` (RFC 5870; an altitude and `;u=...` parameters are ignored) -> latitude and
/// longitude, if in range.
fn parse_geo_uri(uri: &str) -> Option<(f64, f64)> {
    let coordinates = uri.strip_prefix("geo:")?.split(';').next()?;
    let mut parts = coordinates.split(',').map(|p| p.trim().parse::<f64>());
    let latitude = parts.next()?.ok()?;
    let longitude = parts.next()?.ok()?;
    ((-90.0..=90.0).contains(&latitude) && (-180.0..=180.0).contains(&longitude))
        .then_some((latitude, longitude))
}

/// Telegram refuses texts longer than `max` characters after parsing (4096 for messages, 1024 for captions):
/// a message that does not fit is sent as plain text, cut, with the template around it.
fn fit(rendered: String, body: &str, max: usize, render: impl Fn(&str) -> String) -> String {
    let length = |html: &str| parse_html(html).ok().map(|(text, _)| text.chars().count());
    if length(&rendered).is_some_and(|n| n <= max) {
        return rendered;
    }
    let overhead = length(&render("")).unwrap_or(0);
    let budget = max.saturating_sub(overhead + 1);
    let mut cut: String = body.chars().take(budget).collect();
    if cut.chars().count() < body.chars().count() {
        cut.push('…');
    }
    render(&escape(&cut))
}

/// The Telegram reaction for a Matrix key: the same emoji, with or without its variation selector.
pub(crate) fn telegram_reaction(key: &str) -> Option<String> {
    let allowed = &crate::fake_bot_api::spec::spec().reaction_emoji;
    let stripped: String = key.chars().filter(|c| *c != '\u{fe0f}').collect();
    [key, stripped.as_str()]
        .into_iter()
        .find(|k| allowed.iter().any(|a| a == k))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ghost_mxids_map_back_to_telegram_ids_on_our_domain_only() {
        let ghosts = Ghosts {
            domain: "example.org",
        };
        assert_eq!(
            ghosts.telegram_user_id("@telegram_42:example.org"),
            Some(42)
        );
        assert_eq!(ghosts.telegram_user_id("@telegram_42:evil.org"), None);
        assert_eq!(ghosts.telegram_user_id("@alice:example.org"), None);
    }

    #[test]
    fn reply_fallbacks_are_removed_from_plain_bodies() {
        assert_eq!(
            strip_reply_fallback("> <@a:x> hi\n> there\n\nanswer", true),
            "answer"
        );
        assert_eq!(
            strip_reply_fallback("> quote\n\nanswer", false),
            "> quote\n\nanswer"
        );
        assert_eq!(
            strip_reply_fallback("> quote\nnot a fallback\n\nx", true),
            "> quote\nnot a fallback\n\nx"
        );
    }

    #[test]
    fn long_messages_are_cut_to_telegram_limits_as_plain_text() {
        let render = |html: &str| format!("<b>Bob</b>: {html}");
        let short = fit(render("<i>hi</i>"), "hi", MAX_TEXT, render);
        assert_eq!(short, "<b>Bob</b>: <i>hi</i>");
        let body = "é<".repeat(3000);
        let long = fit(
            render(&format!("<i>{}</i>", escape(&body))),
            &body,
            MAX_TEXT,
            render,
        );
        let (text, _) = parse_html(&long).unwrap();
        assert_eq!(text.chars().count(), MAX_TEXT);
        assert!(
            text.starts_with("Bob: é<é<") && text.ends_with('…'),
            "{}",
            &text[..20]
        );
        let caption = fit(render(&escape(&body)), &body, MAX_CAPTION, render);
        assert_eq!(parse_html(&caption).unwrap().0.chars().count(), MAX_CAPTION);
    }

    #[test]
    fn geo_uris_give_latitude_and_longitude_within_range() {
        assert_eq!(
            parse_geo_uri("geo:48.85837,2.294481"),
            Some((48.85837, 2.294481))
        );
        assert_eq!(
            parse_geo_uri("geo:-33.8,151.2,58;u=35"),
            Some((-33.8, 151.2)),
            "altitude and uncertainty are dropped"
        );
        assert_eq!(parse_geo_uri("geo:91,0"), None);
        assert_eq!(parse_geo_uri("geo:0,181"), None);
        assert_eq!(parse_geo_uri("geo:north,east"), None);
        assert_eq!(parse_geo_uri("https://maps.example/48,2"), None);
        assert_eq!(parse_geo_uri("geo:48"), None);
    }

    #[test]
    fn reactions_map_to_telegram_emoji_or_nothing() {
        assert_eq!(telegram_reaction("👍").as_deref(), Some("👍"));
        assert_eq!(
            telegram_reaction("❤️").as_deref(),
            Some("❤"),
            "the variation selector is dropped"
        );
        assert_eq!(telegram_reaction("🦀"), None);
        assert_eq!(telegram_reaction("+1"), None);
    }
}
