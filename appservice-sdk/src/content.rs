//! Builders for `m.room.message` and `m.reaction` content, as JSON, including the relations
//! (`m.in_reply_to`, `m.replace`, `m.annotation`) bridges need.
//!
//! ```
//! use appservice_sdk::content;
//! let edit = content::edit("$original", content::text("fixed"));
//! assert_eq!(edit["m.new_content"]["body"], "fixed");
//! assert_eq!(edit["body"], "* fixed");
//! assert_eq!(edit["m.relates_to"]["rel_type"], "m.replace");
//! ```

use serde_json::{Value, json};

/// `m.text`.
pub fn text(body: &str) -> Value {
    json!({"msgtype": "m.text", "body": body})
}

/// `m.notice` (what bots send).
pub fn notice(body: &str) -> Value {
    json!({"msgtype": "m.notice", "body": body})
}

/// `m.emote` (`/me does something`).
pub fn emote(body: &str) -> Value {
    json!({"msgtype": "m.emote", "body": body})
}

/// `m.text` with an HTML body; `body` is the plain-text fallback.
pub fn html(body: &str, html: &str) -> Value {
    json!({
        "msgtype": "m.text",
        "body": body,
        "format": "org.matrix.custom.html",
        "formatted_body": html,
    })
}

/// Kinds of media message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// `m.image`
    Image,
    /// `m.file`
    File,
    /// `m.audio`
    Audio,
    /// `m.video`
    Video,
}

impl MediaKind {
    /// The msgtype.
    pub fn msgtype(self) -> &'static str {
        match self {
            Self::Image => "m.image",
            Self::File => "m.file",
            Self::Audio => "m.audio",
            Self::Video => "m.video",
        }
    }

    /// A guess from a MIME type.
    pub fn from_mime(mime: &str) -> Self {
        match mime.split('/').next() {
            Some("image") => Self::Image,
            Some("audio") => Self::Audio,
            Some("video") => Self::Video,
            _ => Self::File,
        }
    }
}

/// A media message pointing at an uploaded `mxc://` URI.
pub fn media(kind: MediaKind, mxc: &str, filename: &str, mime: &str, size: usize) -> Value {
    json!({
        "msgtype": kind.msgtype(),
        "body": filename,
        "filename": filename,
        "url": mxc,
        "info": {"mimetype": mime, "size": size},
    })
}

/// Makes `content` a reply to `event_id`.
pub fn reply(event_id: &str, mut content: Value) -> Value {
    content["m.relates_to"] = json!({"m.in_reply_to": {"event_id": event_id}});
    content
}

/// An edit of `event_id` whose new content is `new_content`.
pub fn edit(event_id: &str, new_content: Value) -> Value {
    let mut content = new_content.clone();
    if let Some(body) = new_content["body"].as_str() {
        content["body"] = Value::String(format!("* {body}"));
    }
    if let Some(html) = new_content["formatted_body"].as_str() {
        content["formatted_body"] = Value::String(format!("* {html}"));
    }
    content["m.new_content"] = new_content;
    content["m.relates_to"] = json!({"rel_type": "m.replace", "event_id": event_id});
    content
}

/// An `m.reaction` with `key` on `event_id`.
pub fn reaction(event_id: &str, key: &str) -> Value {
    json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": event_id, "key": key}})
}

/// What an incoming message's content says about its relations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relations {
    /// The event this edits (`m.replace`).
    pub replaces: Option<String>,
    /// The event this replies to.
    pub in_reply_to: Option<String>,
}

/// Reads the relations of message content.
pub fn relations(content: &Value) -> Relations {
    let rel = &content["m.relates_to"];
    Relations {
        replaces: (rel["rel_type"] == "m.replace")
            .then(|| rel["event_id"].as_str().map(str::to_owned))
            .flatten(),
        in_reply_to: rel["m.in_reply_to"]["event_id"].as_str().map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_points_at_its_parent_and_keeps_its_body() {
        let c = reply("$p", text("yes"));
        assert_eq!(c["body"], "yes");
        assert_eq!(relations(&c).in_reply_to.as_deref(), Some("$p"));
        assert_eq!(relations(&c).replaces, None);
    }

    #[test]
    fn an_edit_carries_new_content_and_a_starred_fallback() {
        let c = edit("$o", html("new", "<b>new</b>"));
        assert_eq!(c["formatted_body"], "* <b>new</b>");
        assert_eq!(c["m.new_content"]["formatted_body"], "<b>new</b>");
        assert_eq!(relations(&c).replaces.as_deref(), Some("$o"));
    }

    #[test]
    fn media_kind_follows_the_mime_type() {
        assert_eq!(MediaKind::from_mime("image/png"), MediaKind::Image);
        assert_eq!(MediaKind::from_mime("application/pdf"), MediaKind::File);
        let c = media(MediaKind::Image, "mxc://x/y", "a.png", "image/png", 3);
        assert_eq!(c["msgtype"], "m.image");
        assert_eq!(c["info"]["size"], 3);
    }

    #[test]
    fn a_reaction_is_an_annotation() {
        let c = reaction("$t", "👍");
        assert_eq!(c["m.relates_to"]["rel_type"], "m.annotation");
        assert_eq!(c["m.relates_to"]["key"], "👍");
    }
}
