//! `sendMessage`, `sendLocation`, `editMessageText`, `deleteMessage`, `setMessageReaction`, `sendChatAction`, and the
//! pieces every sending method shares (target chat, reply, topic, formatted text).

use serde_json::{Value, json};

use crate::fake_bot_api::error::ApiError;
use crate::fake_bot_api::params::{ChatRef, Params};
use crate::fake_bot_api::parse_mode::{MAX_TEXT, check_text, parse_html};
use crate::fake_bot_api::spec::spec;
use crate::fake_bot_api::world::{StoredMessage, World, now};

/// Messages older than this cannot be deleted by bots (except their own in private chats, ignored here).
const DELETE_WINDOW_SECS: i64 = 48 * 3600;

const CHAT_ACTIONS: [&str; 11] = [
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
];

pub(super) fn send_message(w: &mut World, bot_id: i64, p: &Params) -> Result<Value, ApiError> {
    let (text, entities) = formatted(p, "text", "entities", MAX_TEXT)?;
    let (chat_id, mut message) = new_message(w, bot_id, p)?;
    message["text"] = text.into();
    if !entities.is_empty() {
        message["entities"] = entities.into();
    }
    Ok(store(w, chat_id, message))
}

/// `sendLocation`: a point on the map, checked as Telegram does (latitude within ±90, longitude within ±180,
/// the live-location fields within the ranges api.json gives); live locations are stored but never move.
pub(super) fn send_location(w: &mut World, bot_id: i64, p: &Params) -> Result<Value, ApiError> {
    let latitude = p.float("latitude")?.unwrap_or_default();
    let longitude = p.float("longitude")?.unwrap_or_default();
    if !(-90.0..=90.0).contains(&latitude) || !(-180.0..=180.0).contains(&longitude) {
        return Err(ApiError::bad_request("wrong location"));
    }
    let accuracy = p.float("horizontal_accuracy")?;
    let live_period = p.int("live_period")?;
    let heading = p.int("heading")?;
    let radius = p.int("proximity_alert_radius")?;
    if accuracy.is_some_and(|a| !(0.0..=1500.0).contains(&a)) {
        return Err(ApiError::bad_request("wrong horizontal accuracy"));
    }
    if live_period.is_some_and(|l| l != 0x7FFF_FFFF && !(60..=86400).contains(&l)) {
        return Err(ApiError::bad_request("wrong live period specified"));
    }
    if heading.is_some_and(|h| !(1..=360).contains(&h)) {
        return Err(ApiError::bad_request("wrong heading specified"));
    }
    if radius.is_some_and(|r| !(1..=100_000).contains(&r)) {
        return Err(ApiError::bad_request(
            "wrong proximity alert radius specified",
        ));
    }
    let (chat_id, mut message) = new_message(w, bot_id, p)?;
    let mut location = json!({"latitude": latitude, "longitude": longitude});
    if let Some(accuracy) = accuracy.filter(|a| *a > 0.0) {
        location["horizontal_accuracy"] = accuracy.into();
    }
    if let Some(live_period) = live_period.filter(|l| *l > 0) {
        location["live_period"] = live_period.into();
        if let Some(heading) = heading {
            location["heading"] = heading.into();
        }
        if let Some(radius) = radius {
            location["proximity_alert_radius"] = radius.into();
        }
    }
    message["location"] = location;
    Ok(store(w, chat_id, message))
}

pub(super) fn edit_message_text(w: &mut World, p: &Params) -> Result<Value, ApiError> {
    if p.has("inline_message_id") {
        return Err(ApiError::bad_request("MESSAGE_ID_INVALID"));
    }
    let chat = required_chat(p)?;
    let message_id = p
        .int("message_id")?
        .ok_or_else(|| ApiError::bad_request("message identifier is not specified"))?;
    let (text, entities) = formatted(p, "text", "entities", MAX_TEXT)?;
    let chat_id = w.chat_id(&chat)?;
    let entry = w.chats.get_mut(&chat_id).expect("found above");
    let stored = entry
        .messages
        .get_mut(&message_id)
        .filter(|m| !m.deleted_by_bot)
        .ok_or_else(|| ApiError::bad_request("message to edit not found"))?;
    if !stored.by_bot {
        return Err(ApiError::bad_request("message can't be edited"));
    }
    let message = &mut stored.message;
    if message.get("text").is_none() {
        return Err(ApiError::bad_request(
            "there is no text in the message to edit",
        ));
    }
    let old_entities = message
        .get("entities")
        .cloned()
        .unwrap_or_else(|| json!([]));
    if message["text"] == text.as_str() && old_entities == Value::from(entities.clone()) {
        return Err(ApiError::bad_request(
            "message is not modified: specified new message content and reply markup are exactly the \
             same as a current content and reply markup of the message",
        ));
    }
    message["text"] = text.into();
    match entities.is_empty() {
        true => message.as_object_mut().expect("object").remove("entities"),
        false => message
            .as_object_mut()
            .expect("object")
            .insert("entities".to_owned(), entities.into()),
    };
    message["edit_date"] = now().into();
    Ok(message.clone())
}

pub(super) fn delete_message(w: &mut World, bot_id: i64, p: &Params) -> Result<Value, ApiError> {
    let chat = required_chat(p)?;
    let message_id = p.int("message_id")?.unwrap_or_default();
    let chat_id = w.chat_id(&chat)?;
    let entry = w.chats.get_mut(&chat_id).expect("found above");
    let bot_member = entry.members.get(&bot_id).cloned().unwrap_or_default();
    let is_private = entry.is_private();
    let stored = entry
        .messages
        .get_mut(&message_id)
        .filter(|m| !m.deleted_by_bot)
        .ok_or_else(|| ApiError::bad_request("message to delete not found"))?;
    let may_delete_others = is_private
        || bot_member["status"] == "creator"
        || (bot_member["status"] == "administrator" && bot_member["can_delete_messages"] == true);
    if !stored.by_bot && !may_delete_others {
        return Err(ApiError::bad_request("message can't be deleted"));
    }
    if stored.message["date"].as_i64().unwrap_or_default() + DELETE_WINDOW_SECS < now() {
        return Err(ApiError::bad_request(
            "message can't be deleted for everyone",
        ));
    }
    stored.deleted_by_bot = true;
    Ok(true.into())
}

pub(super) fn set_message_reaction(
    w: &mut World,
    bot_id: i64,
    p: &Params,
) -> Result<Value, ApiError> {
    let chat = required_chat(p)?;
    let message_id = p.int("message_id")?.unwrap_or_default();
    let reaction = p.json("reaction")?.unwrap_or_else(|| json!([]));
    let Some(reactions) = reaction.as_array() else {
        return Err(ApiError::bad_request("can't parse reaction JSON object"));
    };
    if reactions.len() > 1 {
        return Err(ApiError::bad_request("REACTIONS_TOO_MANY"));
    }
    for r in reactions {
        let valid = match r["type"].as_str() {
            Some("emoji") => r["emoji"]
                .as_str()
                .is_some_and(|e| spec().reaction_emoji.iter().any(|allowed| allowed == e)),
            Some("custom_emoji") => r["custom_emoji_id"].is_string(),
            Some("paid") => true,
            _ => false,
        };
        if !valid {
            return Err(ApiError::bad_request("REACTION_INVALID"));
        }
    }
    let entry = w.writable_chat(&chat, bot_id)?;
    if entry
        .messages
        .get(&message_id)
        .is_none_or(|m| m.deleted_by_bot)
    {
        return Err(ApiError::bad_request("message to react not found"));
    }
    entry
        .reactions
        .push(json!({"message_id": message_id, "reaction": reaction, "date": now()}));
    Ok(true.into())
}

pub(super) fn send_chat_action(w: &mut World, bot_id: i64, p: &Params) -> Result<Value, ApiError> {
    let chat = required_chat(p)?;
    let action = p.string("action").unwrap_or_default();
    if !CHAT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::bad_request("wrong parameter action in request"));
    }
    w.writable_chat(&chat, bot_id)?.actions.push(action);
    Ok(true.into())
}

pub(super) fn required_chat(p: &Params) -> Result<ChatRef, ApiError> {
    p.chat("chat_id")?
        .ok_or_else(|| ApiError::bad_request("chat_id is empty"))
}

/// Text (or caption) and its entities, from `parse_mode` or the explicit entities parameter.
pub(super) fn formatted(
    p: &Params,
    text_key: &str,
    entities_key: &str,
    max: usize,
) -> Result<(String, Vec<Value>), ApiError> {
    let raw = p.string(text_key).unwrap_or_default();
    let (text, entities) = match p
        .string("parse_mode")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "html" => parse_html(&raw)?,
        // Markdown is not parsed by the fake: the text is kept as given, without entities.
        "" | "markdown" | "markdownv2" => {
            let entities = p.json(entities_key)?.unwrap_or_else(|| json!([]));
            let Value::Array(entities) = entities else {
                return Err(ApiError::bad_request(format!(
                    "can't parse {entities_key} JSON object"
                )));
            };
            (raw, entities)
        }
        _ => return Err(ApiError::bad_request("unsupported parse_mode")),
    };
    if text_key == "text" || !text.is_empty() {
        check_text(&text, max)?;
    }
    Ok((text, entities))
}

/// A new message from the bot into `chat_id`, with reply and topic resolved; not stored yet.
pub(super) fn new_message(
    w: &mut World,
    bot_id: i64,
    p: &Params,
) -> Result<(i64, Value), ApiError> {
    let chat = required_chat(p)?;
    let bot = w.bot_user(bot_id);
    let (reply_to, allow_without_reply) = match p.json("reply_parameters")? {
        Some(rp) => (
            rp["message_id"].as_i64(),
            rp["allow_sending_without_reply"] == true,
        ),
        None => (
            p.int("reply_to_message_id")?,
            p.bool("allow_sending_without_reply")?,
        ),
    };
    let mut thread_id = p.int("message_thread_id")?;
    let entry = w.writable_chat(&chat, bot_id)?;
    let mut message = json!({"message_id": 0, "from": bot, "chat": entry.chat, "date": now()});
    if let Some(reply_to) = reply_to {
        match entry.messages.get(&reply_to).filter(|m| !m.deleted_by_bot) {
            Some(target) => {
                let mut quoted = target.message.clone();
                quoted
                    .as_object_mut()
                    .expect("object")
                    .remove("reply_to_message");
                thread_id = thread_id.or_else(|| quoted["message_thread_id"].as_i64());
                message["reply_to_message"] = quoted;
            }
            None if allow_without_reply => {}
            None => return Err(ApiError::bad_request("message to be replied not found")),
        }
    }
    if let Some(thread_id) = thread_id {
        message["message_thread_id"] = thread_id.into();
        if entry.chat["is_forum"] == true {
            message["is_topic_message"] = true.into();
        }
    }
    message["message_id"] = entry.next_message_id().into();
    let chat_id = entry.chat["id"].as_i64().unwrap_or_default();
    Ok((chat_id, message))
}

/// Keeps a message the bot sent and returns it.
pub(super) fn store(w: &mut World, chat_id: i64, message: Value) -> Value {
    let id = message["message_id"].as_i64().unwrap_or_default();
    let stored = StoredMessage {
        message: message.clone(),
        by_bot: true,
        deleted_by_bot: false,
    };
    if let Some(entry) = w.chats.get_mut(&chat_id) {
        entry.messages.insert(id, stored);
    }
    message
}
