//! Bot API methods: validation against the spec, `/_fake/fail` injection, then the method itself.

mod chats;
mod media;
mod messages;
mod updates;

use serde_json::Value;

use super::FakeBotApi;
use super::error::ApiError;
use super::params::Params;
use super::spec;

/// Runs `method` (any case) for the bot `bot_id` and returns its `result`.
pub(super) async fn call(
    state: &FakeBotApi,
    method: &str,
    bot_id: i64,
    params: Params,
) -> Result<Value, ApiError> {
    let Some((name, method_spec)) = spec::method(method) else {
        return Err(ApiError::not_found());
    };
    if let Some(error) = state.lock().take_failure(name) {
        tracing::info!(
            method = name,
            code = error.error_code,
            "failing as /_fake/fail ordered"
        );
        return Err(error);
    }
    spec::validate(method_spec, &params)?;
    if name == "getUpdates" {
        return updates::get_updates(state, &params).await;
    }
    let mut world = state.lock();
    let p = &params;
    let w = &mut *world;
    match name {
        "getMe" => Ok(chats::get_me(w, bot_id)),
        "getChat" => chats::get_chat(w, p),
        "getChatMember" => chats::get_chat_member(w, bot_id, p),
        "getChatMemberCount" => chats::get_chat_member_count(w, p),
        "getChatAdministrators" => chats::get_chat_administrators(w, p),
        "getUserProfilePhotos" => chats::get_user_profile_photos(w, p),
        "setWebhook" => updates::set_webhook(w, p),
        "deleteWebhook" => updates::delete_webhook(w, p),
        "getWebhookInfo" => Ok(updates::get_webhook_info(w)),
        "sendMessage" => messages::send_message(w, bot_id, p),
        "editMessageText" => messages::edit_message_text(w, p),
        "deleteMessage" => messages::delete_message(w, bot_id, p),
        "setMessageReaction" => messages::set_message_reaction(w, bot_id, p),
        "sendChatAction" => messages::send_chat_action(w, bot_id, p),
        "sendLocation" => messages::send_location(w, bot_id, p),
        "getFile" => media::get_file(w, p),
        "sendPhoto" => media::send_media(w, bot_id, p, media::Kind::Photo),
        "sendDocument" => media::send_media(w, bot_id, p, media::Kind::Document),
        "sendVideo" => media::send_media(w, bot_id, p, media::Kind::Video),
        "sendAudio" => media::send_media(w, bot_id, p, media::Kind::Audio),
        "sendVoice" => media::send_media(w, bot_id, p, media::Kind::Voice),
        "sendAnimation" => media::send_media(w, bot_id, p, media::Kind::Animation),
        "sendSticker" => media::send_media(w, bot_id, p, media::Kind::Sticker),
        _ => Err(ApiError::not_found()),
    }
}
