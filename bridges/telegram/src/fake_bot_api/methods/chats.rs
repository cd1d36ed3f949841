//! `getMe`, `getChat`, `getChatMember`, `getChatMemberCount`, `getChatAdministrators`, `getUserProfilePhotos`.

use serde_json::{Value, json};

use super::messages::required_chat;
use crate::fake_bot_api::error::ApiError;
use crate::fake_bot_api::params::Params;
use crate::fake_bot_api::world::World;

pub(super) fn get_me(w: &World, bot_id: i64) -> Value {
    let mut me = w.bot_user(bot_id);
    me["can_join_groups"] = true.into();
    me["can_read_all_group_messages"] = w.config.can_read_all_group_messages.into();
    me["supports_inline_queries"] = false.into();
    me["can_connect_to_business"] = false.into();
    me["has_main_web_app"] = false.into();
    me
}

/// A `ChatFullInfo`: the chat's fields plus the ones Telegram always sends.
pub(super) fn get_chat(w: &World, p: &Params) -> Result<Value, ApiError> {
    let id = w.chat_id(&required_chat(p)?)?;
    let entry = &w.chats[&id];
    let mut info = entry.chat.clone();
    info["accent_color_id"] = 0.into();
    info["max_reaction_count"] = 11.into();
    info["accepted_gift_types"] = json!({
        "unlimited_gifts": false, "limited_gifts": false, "unique_gifts": false,
        "premium_subscription": false, "gifts_from_channels": false,
    });
    let photo = match entry.is_private() {
        true => w.profile_photos.get(&id).and_then(|p| p.first()).cloned(),
        false => entry.photo.clone(),
    };
    if let Some(file) = photo.and_then(|file_id| w.files.get(&file_id)) {
        info["photo"] = json!({
            "small_file_id": file.file_id, "small_file_unique_id": file.file_unique_id,
            "big_file_id": file.file_id, "big_file_unique_id": file.file_unique_id,
        });
    }
    Ok(info)
}

pub(super) fn get_chat_member(w: &World, bot_id: i64, p: &Params) -> Result<Value, ApiError> {
    let id = w.chat_id(&required_chat(p)?)?;
    let user_id = p.int("user_id")?.unwrap_or_default();
    let entry = &w.chats[&id];
    if let Some(member) = entry.members.get(&user_id) {
        return Ok(member.clone());
    }
    if user_id == bot_id {
        return Ok(json!({"status": "member", "user": w.bot_user(bot_id)}));
    }
    let user = w
        .users
        .get(&user_id)
        .ok_or_else(|| ApiError::bad_request("user not found"))?;
    Ok(json!({"status": "left", "user": user}))
}

fn is_member(member: &Value) -> bool {
    match member["status"].as_str() {
        Some("creator" | "administrator" | "member") => true,
        Some("restricted") => member["is_member"] == true,
        _ => false,
    }
}

pub(super) fn get_chat_member_count(w: &World, p: &Params) -> Result<Value, ApiError> {
    let id = w.chat_id(&required_chat(p)?)?;
    Ok(w.chats[&id]
        .members
        .values()
        .filter(|m| is_member(m))
        .count()
        .into())
}

pub(super) fn get_chat_administrators(w: &World, p: &Params) -> Result<Value, ApiError> {
    let id = w.chat_id(&required_chat(p)?)?;
    let entry = &w.chats[&id];
    if entry.is_private() {
        return Err(ApiError::bad_request(
            "there are no administrators in the private chat",
        ));
    }
    let admins: Vec<Value> = entry
        .members
        .values()
        .filter(|m| matches!(m["status"].as_str(), Some("creator" | "administrator")))
        .cloned()
        .collect();
    Ok(admins.into())
}

pub(super) fn get_user_profile_photos(w: &World, p: &Params) -> Result<Value, ApiError> {
    let user_id = p.int("user_id")?.unwrap_or_default();
    if !w.users.contains_key(&user_id) {
        return Err(ApiError::bad_request("user not found"));
    }
    let offset = usize::try_from(p.int("offset")?.unwrap_or(0).max(0)).unwrap_or(0);
    let limit = usize::try_from(p.int("limit")?.unwrap_or(100).clamp(1, 100)).unwrap_or(100);
    let all = w.profile_photos.get(&user_id).cloned().unwrap_or_default();
    let photos: Vec<Value> = all
        .iter()
        .skip(offset)
        .take(limit)
        .filter_map(|file_id| w.files.get(file_id))
        .map(|f| {
            let (width, height) = super::media::image_size(&f.bytes).unwrap_or((0, 0));
            json!([{"file_id": f.file_id, "file_unique_id": f.file_unique_id,
                    "file_size": f.bytes.len(), "width": width, "height": height}])
        })
        .collect();
    Ok(json!({"total_count": all.len(), "photos": photos}))
}
