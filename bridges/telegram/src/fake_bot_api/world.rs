//! What the fake Telegram knows: chats, members, messages, files and the update queue. No HTTP here.
//!
//! The world changes the way Telegram's does: through updates (injected by tests) and through the bot's calls.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde_json::{Value, json};

use super::error::ApiError;
use super::params::ChatRef;

/// Update types a bot receives when it never set `allowed_updates` (or set it to `[]`).
const NOT_DELIVERED_BY_DEFAULT: [&str; 3] =
    ["chat_member", "message_reaction", "message_reaction_count"];

/// Telegram refuses to let bots download files larger than this through `getFile`.
pub const MAX_DOWNLOAD: usize = 20 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct FakeConfig {
    /// What `getMe` says; false is a bot in privacy mode.
    pub can_read_all_group_messages: bool,
    pub bot_first_name: String,
    pub bot_username: String,
}

impl Default for FakeConfig {
    fn default() -> Self {
        Self {
            can_read_all_group_messages: true,
            bot_first_name: "Causeway Bot".to_owned(),
            bot_username: "causeway_bot".to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoredFile {
    pub file_id: String,
    pub file_unique_id: String,
    pub file_path: String,
    pub file_name: Option<String>,
    pub mime_type: Option<String>,
    pub bytes: Bytes,
}

impl StoredFile {
    /// The `File` object `getFile` returns.
    pub fn file_object(&self) -> Value {
        json!({
            "file_id": self.file_id,
            "file_unique_id": self.file_unique_id,
            "file_size": self.bytes.len(),
            "file_path": self.file_path,
        })
    }
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub message: Value,
    pub by_bot: bool,
    /// Deleted through `deleteMessage`.
    pub deleted_by_bot: bool,
}

#[derive(Debug, Default)]
pub struct ChatEntry {
    /// The `Chat` object (id, type, title, username, names, is_forum).
    pub chat: Value,
    pub photo: Option<String>,
    /// `ChatMember` objects by user id.
    pub members: BTreeMap<i64, Value>,
    pub messages: BTreeMap<i64, StoredMessage>,
    next_message_id: i64,
    /// `sendChatAction` calls, oldest first.
    pub actions: Vec<String>,
    /// `setMessageReaction` calls, oldest first: `{"message_id", "reaction"}`.
    pub reactions: Vec<Value>,
    /// Set once a group became the supergroup with this id.
    pub migrated_to: Option<i64>,
}

impl ChatEntry {
    pub fn next_message_id(&mut self) -> i64 {
        self.next_message_id += 1;
        self.next_message_id
    }

    pub fn member_status(&self, user_id: i64) -> Option<&str> {
        self.members.get(&user_id)?.get("status")?.as_str()
    }

    pub fn is_private(&self) -> bool {
        self.chat["type"] == "private"
    }
}

/// A `/_fake/fail` order: the next `count` calls (of `method` only, when given) fail.
#[derive(Debug, Clone)]
pub struct FailPlan {
    pub count: u32,
    pub method: Option<String>,
    pub error: ApiError,
}

#[derive(Debug)]
pub struct World {
    pub config: FakeConfig,
    next_update_id: i64,
    queue: VecDeque<Value>,
    allowed_updates: Option<Vec<String>>,
    pub webhook_url: String,
    /// Bumped by every `getUpdates`, so an older long poll knows another one replaced it.
    pub poll_generation: u64,
    pub chats: BTreeMap<i64, ChatEntry>,
    pub users: HashMap<i64, Value>,
    pub files: HashMap<String, StoredFile>,
    next_file: u64,
    pub profile_photos: HashMap<i64, Vec<String>>,
    pub fail: Vec<FailPlan>,
}

impl World {
    pub fn new(config: FakeConfig) -> Self {
        Self {
            config,
            next_update_id: 0,
            queue: VecDeque::new(),
            allowed_updates: None,
            webhook_url: String::new(),
            poll_generation: 0,
            chats: BTreeMap::new(),
            users: HashMap::new(),
            files: HashMap::new(),
            next_file: 0,
            profile_photos: HashMap::new(),
            fail: Vec::new(),
        }
    }

    /// The bot's own `User`; its id is the number before the colon of the token.
    pub fn bot_user(&self, bot_id: i64) -> Value {
        json!({
            "id": bot_id,
            "is_bot": true,
            "first_name": self.config.bot_first_name,
            "username": self.config.bot_username,
        })
    }

    /// Takes the next failure due for `method`, if `/_fake/fail` ordered one.
    pub fn take_failure(&mut self, method: &str) -> Option<ApiError> {
        let plan = self.fail.iter_mut().find(|plan| {
            plan.count > 0
                && plan
                    .method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
        })?;
        plan.count -= 1;
        let error = plan.error.clone();
        self.fail.retain(|plan| plan.count > 0);
        Some(error)
    }

    // ---- updates ----

    /// Numbers an injected update, applies it to the world and queues it. Returns the update id and, for
    /// message-like updates, the message id.
    pub fn inject(&mut self, mut update: Value) -> Result<(i64, Option<i64>), ApiError> {
        let Some(object) = update.as_object_mut() else {
            return Err(ApiError::bad_request("an Update must be a JSON object"));
        };
        object.remove("update_id");
        let kinds: Vec<String> = object.keys().cloned().collect();
        let [kind] = kinds.as_slice() else {
            return Err(ApiError::bad_request(
                "an Update holds exactly one of message, edited_message, message_reaction, ...",
            ));
        };
        let mut message_id = None;
        match kind.as_str() {
            "message" | "channel_post" | "business_message" => {
                message_id = Some(self.record_message(&mut object[kind], false)?);
            }
            "edited_message" | "edited_channel_post" => {
                message_id = Some(self.record_message(&mut object[kind], true)?);
            }
            "my_chat_member" | "chat_member" => self.apply_member_update(&object[kind])?,
            "message_reaction" | "message_reaction_count" => {
                let chat = &object[kind]["chat"];
                self.learn_chat(chat)?;
                if let Some(user) = object[kind].get("user") {
                    self.learn_user(user);
                }
                message_id = object[kind]["message_id"].as_i64();
            }
            _ => {
                if let Some(chat) = object[kind].get("chat") {
                    self.learn_chat(chat)?;
                }
            }
        }
        self.next_update_id += 1;
        update["update_id"] = self.next_update_id.into();
        self.queue.push_back(update);
        Ok((self.next_update_id, message_id))
    }

    /// Fills in `message_id` and `date` if absent, learns the chat and users, applies service messages.
    fn record_message(&mut self, message: &mut Value, edited: bool) -> Result<i64, ApiError> {
        if !message.is_object() {
            return Err(ApiError::bad_request("message must be a Message object"));
        }
        let chat_id = self.learn_chat(&message["chat"])?;
        if message.get("date").is_none() {
            message["date"] = now().into();
        }
        if let Some(from) = message.get("from").cloned() {
            let user_id = self.learn_user(&from);
            let entry = self.chats.get_mut(&chat_id).expect("learnt above");
            entry
                .members
                .entry(user_id)
                .or_insert_with(|| member(&from, "member"));
        }
        self.apply_service_fields(chat_id, message);
        let entry = self.chats.get_mut(&chat_id).expect("learnt above");
        let id = match message["message_id"].as_i64() {
            Some(id) => {
                entry.next_message_id = entry.next_message_id.max(id);
                id
            }
            None if edited => {
                return Err(ApiError::bad_request(
                    "edited_message needs the message_id it edits",
                ));
            }
            None => entry.next_message_id(),
        };
        message["message_id"] = id.into();
        if edited && message.get("edit_date").is_none() {
            message["edit_date"] = now().into();
        }
        let stored = StoredMessage {
            message: message.clone(),
            by_bot: false,
            deleted_by_bot: false,
        };
        entry.messages.insert(id, stored);
        Ok(id)
    }

    fn apply_service_fields(&mut self, chat_id: i64, message: &Value) {
        for user in message["new_chat_members"].as_array().into_iter().flatten() {
            let user_id = self.learn_user(user);
            let entry = self.chats.get_mut(&chat_id).expect("known chat");
            entry.members.insert(user_id, member(user, "member"));
        }
        if let Some(user) = message.get("left_chat_member") {
            let user_id = self.learn_user(user);
            let entry = self.chats.get_mut(&chat_id).expect("known chat");
            entry.members.insert(user_id, member(user, "left"));
        }
        let entry = self.chats.get_mut(&chat_id).expect("known chat");
        if let Some(title) = message.get("new_chat_title") {
            entry.chat["title"] = title.clone();
        }
        if let Some(sizes) = message["new_chat_photo"].as_array() {
            entry.photo = sizes
                .last()
                .and_then(|s| s["file_id"].as_str())
                .map(str::to_owned);
        }
        if message["delete_chat_photo"] == true {
            entry.photo = None;
        }
        if let Some(new_id) = message["migrate_to_chat_id"].as_i64() {
            entry.migrated_to = Some(new_id);
            let mut chat = entry.chat.clone();
            let members = entry.members.clone();
            chat["id"] = new_id.into();
            chat["type"] = "supergroup".into();
            let new_entry = self.chats.entry(new_id).or_default();
            new_entry.chat = chat;
            new_entry.members = members;
        }
    }

    fn apply_member_update(&mut self, update: &Value) -> Result<(), ApiError> {
        let chat_id = self.learn_chat(&update["chat"])?;
        if let Some(from) = update.get("from") {
            self.learn_user(from);
        }
        let new = &update["new_chat_member"];
        let Some(user_id) = new["user"]["id"].as_i64() else {
            return Err(ApiError::bad_request("new_chat_member.user.id is empty"));
        };
        self.learn_user(&new["user"]);
        let entry = self.chats.get_mut(&chat_id).expect("learnt above");
        entry.members.insert(user_id, new.clone());
        Ok(())
    }

    /// Remembers a chat from a `Chat` object (newer fields win) and returns its id.
    pub fn learn_chat(&mut self, chat: &Value) -> Result<i64, ApiError> {
        let (Some(id), Some(_)) = (chat["id"].as_i64(), chat["type"].as_str()) else {
            return Err(ApiError::bad_request("chat needs an integer id and a type"));
        };
        let entry = self.chats.entry(id).or_default();
        match (entry.chat.as_object_mut(), chat.as_object()) {
            (Some(old), Some(new)) => old.extend(new.clone()),
            _ => entry.chat = chat.clone(),
        }
        if chat["type"] == "private" {
            let user = json!({
                "id": id,
                "is_bot": false,
                "first_name": chat["first_name"].as_str().unwrap_or(""),
            });
            self.users.entry(id).or_insert(user);
        }
        Ok(id)
    }

    pub fn learn_user(&mut self, user: &Value) -> i64 {
        let id = user["id"].as_i64().unwrap_or_default();
        self.users.insert(id, user.clone());
        id
    }

    /// Stores the allowed update types for later calls, as Telegram does when the parameter is given.
    pub fn set_allowed_updates(&mut self, allowed: Option<Vec<String>>) {
        if let Some(allowed) = allowed {
            self.allowed_updates = Some(allowed).filter(|a| !a.is_empty());
        }
    }

    fn is_allowed(&self, update: &Value) -> bool {
        let Some(kind) = update
            .as_object()
            .and_then(|o| o.keys().find(|k| *k != "update_id"))
        else {
            return false;
        };
        match &self.allowed_updates {
            Some(allowed) => allowed.iter().any(|a| a == kind),
            None => !NOT_DELIVERED_BY_DEFAULT.contains(&kind.as_str()),
        }
    }

    /// `getUpdates` without the waiting: confirms (drops) updates before `offset` and returns up to `limit`.
    pub fn take_updates(&mut self, offset: Option<i64>, limit: usize) -> Vec<Value> {
        let id_of = |u: &Value| u["update_id"].as_i64().unwrap_or_default();
        match offset {
            Some(offset) if offset < 0 => {
                let keep = usize::try_from(-offset).unwrap_or(usize::MAX);
                while self.queue.len() > keep {
                    self.queue.pop_front();
                }
            }
            Some(offset) => {
                while self.queue.front().is_some_and(|u| id_of(u) < offset) {
                    self.queue.pop_front();
                }
            }
            None => {}
        }
        let allowed: Vec<Value> = self
            .queue
            .iter()
            .filter(|u| self.is_allowed(u))
            .take(limit)
            .cloned()
            .collect();
        allowed
    }

    pub fn pending_update_count(&self) -> usize {
        self.queue.len()
    }

    pub fn drop_pending_updates(&mut self) {
        self.queue.clear();
    }

    // ---- chats and messages ----

    pub fn chat_id(&self, chat: &ChatRef) -> Result<i64, ApiError> {
        match chat {
            ChatRef::Id(id) if self.chats.contains_key(id) => Ok(*id),
            ChatRef::Username(name) => self
                .chats
                .iter()
                .find(|(_, c)| {
                    c.chat["username"]
                        .as_str()
                        .is_some_and(|u| u.eq_ignore_ascii_case(name))
                })
                .map(|(id, _)| *id)
                .ok_or_else(|| ApiError::bad_request("chat not found")),
            ChatRef::Id(_) => Err(ApiError::bad_request("chat not found")),
        }
    }

    /// The chat the bot may write to, or Telegram's 400/403 for it.
    pub fn writable_chat(
        &mut self,
        chat: &ChatRef,
        bot_id: i64,
    ) -> Result<&mut ChatEntry, ApiError> {
        let id = self.chat_id(chat)?;
        let entry = self.chats.get_mut(&id).expect("found above");
        if let Some(new_id) = entry.migrated_to {
            let mut err = ApiError::bad_request("group chat was upgraded to a supergroup chat");
            err.migrate_to_chat_id = Some(new_id);
            return Err(err);
        }
        match (entry.member_status(bot_id), entry.is_private()) {
            (Some("kicked"), true) => Err(ApiError::forbidden("bot was blocked by the user")),
            (Some("kicked"), false) => {
                Err(ApiError::forbidden("bot was kicked from the group chat"))
            }
            (Some("left"), false) => {
                Err(ApiError::forbidden("bot is not a member of the group chat"))
            }
            _ => Ok(entry),
        }
    }

    /// Stores a file and returns it; `kind` names the folder of its `file_path` (`photos`, `documents`, ...).
    pub fn store_file(
        &mut self,
        kind: &str,
        bytes: Bytes,
        file_name: Option<String>,
        mime_type: Option<String>,
    ) -> StoredFile {
        self.next_file += 1;
        let n = self.next_file;
        let ext = file_name
            .as_deref()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .filter(|ext| {
                !ext.is_empty() && ext.len() <= 8 && ext.chars().all(|c| c.is_ascii_alphanumeric())
            })
            .unwrap_or_else(|| default_extension(kind).to_owned());
        let mime_type = mime_type
            .filter(|m| m != "application/octet-stream")
            .or_else(|| mime_from_extension(&ext).map(str::to_owned));
        let file = StoredFile {
            file_id: format!("BQACAgfake{n:08}{}", kind.len()),
            file_unique_id: format!("AgADfake{n:06}"),
            file_path: format!("{kind}/file_{n}.{ext}"),
            file_name,
            mime_type,
            bytes,
        };
        self.files.insert(file.file_id.clone(), file.clone());
        file
    }

    pub fn file_by_path(&self, path: &str) -> Option<&StoredFile> {
        self.files.values().find(|f| f.file_path == path)
    }
}

fn member(user: &Value, status: &str) -> Value {
    json!({"status": status, "user": user})
}

pub fn now() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

fn default_extension(kind: &str) -> &'static str {
    match kind {
        "photos" => "jpg",
        "videos" | "animations" => "mp4",
        "music" => "mp3",
        "voice" => "oga",
        "stickers" => "webp",
        _ => "bin",
    }
}

fn mime_from_extension(ext: &str) -> Option<&'static str> {
    Some(match ext {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" => "audio/ogg",
        "m4a" => "audio/mp4",
        "pdf" => "application/pdf",
        "txt" => "text/plain",
        "zip" => "application/zip",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> World {
        World::new(FakeConfig::default())
    }

    fn text_update(chat: i64, text: &str) -> Value {
        json!({"message": {"chat": {"id": chat, "type": "group", "title": "G"},
                           "from": {"id": 7, "is_bot": false, "first_name": "Ann"}, "text": text}})
    }

    #[test]
    fn injected_updates_are_numbered_and_messages_get_ids_and_dates() {
        let mut w = world();
        assert_eq!(w.inject(text_update(-5, "a")).unwrap(), (1, Some(1)));
        assert_eq!(w.inject(text_update(-5, "b")).unwrap(), (2, Some(2)));
        let updates = w.take_updates(None, 100);
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[1]["update_id"], 2);
        assert!(updates[1]["message"]["date"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(w.chats[&-5].member_status(7), Some("member"));
    }

    #[test]
    fn an_offset_confirms_and_drops_earlier_updates() {
        let mut w = world();
        for t in ["a", "b", "c"] {
            w.inject(text_update(-5, t)).unwrap();
        }
        assert_eq!(w.take_updates(Some(3), 100).len(), 1);
        assert_eq!(
            w.take_updates(None, 100).len(),
            1,
            "1 and 2 are gone for good"
        );
        w.inject(text_update(-5, "d")).unwrap();
        w.inject(text_update(-5, "e")).unwrap();
        let last = w.take_updates(Some(-1), 100);
        assert_eq!(last[0]["message"]["text"], "e");
        assert_eq!(w.pending_update_count(), 1);
    }

    #[test]
    fn reactions_are_only_delivered_when_asked_for() {
        let mut w = world();
        w.inject(text_update(-5, "a")).unwrap();
        let reaction = json!({"message_reaction": {"chat": {"id": -5, "type": "group"}, "message_id": 1,
            "date": 1, "old_reaction": [], "new_reaction": [{"type": "emoji", "emoji": "👍"}]}});
        w.inject(reaction).unwrap();
        assert_eq!(w.take_updates(None, 100).len(), 1);
        w.set_allowed_updates(Some(vec![
            "message".to_owned(),
            "message_reaction".to_owned(),
        ]));
        assert_eq!(w.take_updates(None, 100).len(), 2);
        w.set_allowed_updates(None);
        assert_eq!(
            w.take_updates(None, 100).len(),
            2,
            "an absent parameter keeps the setting"
        );
    }

    #[test]
    fn an_update_with_two_kinds_is_refused() {
        let mut w = world();
        let mut update = text_update(-5, "a");
        update["edited_message"] = update["message"].clone();
        assert_eq!(w.inject(update).unwrap_err().error_code, 400);
    }

    #[test]
    fn service_messages_change_title_photo_members_and_migrate() {
        let mut w = world();
        let chat = json!({"id": -5, "type": "group", "title": "Old"});
        let bob = json!({"id": 8, "is_bot": false, "first_name": "Bob"});
        w.inject(json!({"message": {"chat": chat, "new_chat_members": [bob]}}))
            .unwrap();
        assert_eq!(w.chats[&-5].member_status(8), Some("member"));
        w.inject(json!({"message": {"chat": chat, "new_chat_title": "New"}}))
            .unwrap();
        assert_eq!(w.chats[&-5].chat["title"], "New");
        let chat = json!({"id": -5, "type": "group", "title": "New"});
        w.inject(json!({"message": {"chat": chat, "left_chat_member": bob}}))
            .unwrap();
        assert_eq!(w.chats[&-5].member_status(8), Some("left"));
        w.inject(json!({"message": {"chat": chat, "migrate_to_chat_id": -1005}}))
            .unwrap();
        assert_eq!(w.chats[&-1005].chat["type"], "supergroup");
        assert_eq!(w.chats[&-1005].chat["title"], "New");
    }

    #[test]
    fn failures_are_taken_in_order_and_can_target_one_method() {
        let mut w = world();
        w.fail.push(FailPlan {
            count: 1,
            method: Some("sendMessage".to_owned()),
            error: ApiError::too_many_requests(3),
        });
        assert!(w.take_failure("getUpdates").is_none());
        assert_eq!(w.take_failure("sendmessage").unwrap().retry_after, Some(3));
        assert!(w.take_failure("sendMessage").is_none());
    }

    #[test]
    fn stored_files_get_telegram_like_paths_and_types() {
        let mut w = world();
        let f = w.store_file(
            "documents",
            Bytes::from_static(b"%PDF"),
            Some("a.PDF".to_owned()),
            None,
        );
        assert_eq!(f.file_path, "documents/file_1.pdf");
        assert_eq!(f.mime_type.as_deref(), Some("application/pdf"));
        assert_eq!(
            w.file_by_path("documents/file_1.pdf").unwrap().file_id,
            f.file_id
        );
    }
}
