//! What a Telegram update means for the bridge, decided without I/O: the network adapter then carries it out.

use teloxide::types::{
    Chat, MaybeAnonymousUser, Message, MessageReactionUpdated, ReactionType, Update, UpdateKind,
    User,
};

use crate::convert::entities::Mentions;
use crate::convert::message::{MatrixContent, from_telegram};

/// Who did something on Telegram: a user, or a chat posting as itself (channels, anonymous admins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    /// The id the ghost is named after (`@telegram_<id>`).
    pub id: i64,
    pub displayname: String,
    /// Whether it is a user with a profile photo to fetch (chats have none for us).
    pub is_user: bool,
}

impl Sender {
    pub fn from_user(user: &User) -> Self {
        Self {
            id: i64::try_from(user.id.0).unwrap_or(i64::MAX),
            displayname: displayname(user),
            is_user: true,
        }
    }

    fn from_chat(chat: &Chat, signature: Option<&str>) -> Self {
        let title = chat.title().unwrap_or("Telegram chat");
        Self {
            id: chat.id.0,
            displayname: match signature {
                Some(author) => format!("{author} ({title})"),
                None => title.to_owned(),
            },
            is_user: false,
        }
    }
}

/// First and last name; else `@username`; else the id.
pub fn displayname(user: &User) -> String {
    let full = user.full_name();
    if !full.trim().is_empty() {
        return full.trim().to_owned();
    }
    match &user.username {
        Some(username) => format!("@{username}"),
        None => user.id.to_string(),
    }
}

/// What to do in the portal of a chat.
#[derive(Debug, Clone, PartialEq)]
pub enum PortalAction {
    Message {
        sender: Sender,
        message_id: i32,
        ts_ms: u64,
        content: MatrixContent,
        reply_to: Option<i32>,
        /// The forum topic (its root message id), for `m.thread`.
        thread: Option<i32>,
    },
    Edit {
        sender: Sender,
        message_id: i32,
        edit_ts_ms: u64,
        content: MatrixContent,
    },
    Reactions {
        sender: Sender,
        message_id: i32,
        ts_ms: u64,
        added: Vec<String>,
        removed: Vec<String>,
    },
    Joined(Vec<Sender>),
    Left(Sender),
    Title(String),
    /// The new chat photo's largest size.
    Photo {
        file_id: String,
        file_unique_id: String,
    },
    PhotoRemoved,
    /// The group became the supergroup `to`: the portal follows it.
    Migrated {
        to: i64,
    },
}

/// What an update asks of the bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Something for the portal of `chat_id` (ignored when the chat has none).
    Portal {
        chat_id: i64,
        action: Box<PortalAction>,
    },
    /// `/bridge` in a chat: an admin asks for a link code.
    LinkRequest {
        chat_id: i64,
        title: String,
        private: bool,
        user_id: i64,
    },
    /// `/unbridge` in a chat.
    Unlink { chat_id: i64, user_id: i64 },
    /// Nothing to do; the reason is logged.
    Ignore(&'static str),
}

/// Decides what `update` means. `bot_username` recognises `/bridge@<bot>`.
pub fn classify(update: &Update, bot_username: &str, mentions: &dyn Mentions) -> Vec<Action> {
    match &update.kind {
        UpdateKind::Message(m) | UpdateKind::ChannelPost(m) => message(m, bot_username, mentions),
        UpdateKind::EditedMessage(m) | UpdateKind::EditedChannelPost(m) => edit(m, mentions),
        UpdateKind::MessageReaction(r) => reaction(r),
        UpdateKind::ChatMember(change) => {
            let chat_id = change.chat.id.0;
            let sender = Sender::from_user(&change.new_chat_member.user);
            let action = match (
                change.old_chat_member.is_present(),
                change.new_chat_member.is_present(),
            ) {
                (false, true) => PortalAction::Joined(vec![sender]),
                (true, false) => PortalAction::Left(sender),
                _ => return vec![Action::Ignore("a member's rights changed")],
            };
            vec![Action::Portal {
                chat_id,
                action: Box::new(action),
            }]
        }
        UpdateKind::Error(_) => vec![Action::Ignore("an update teloxide cannot parse")],
        _ => vec![Action::Ignore("an update type the bridge does not use")],
    }
}

fn sender_of(m: &Message) -> Sender {
    match (&m.from, &m.sender_chat) {
        (_, Some(chat)) => Sender::from_chat(chat, m.author_signature()),
        (Some(user), None) => Sender::from_user(user),
        (None, None) => Sender::from_chat(&m.chat, m.author_signature()),
    }
}

fn seconds_to_ms(date: chrono::DateTime<chrono::Utc>) -> u64 {
    u64::try_from(date.timestamp_millis()).unwrap_or_default()
}

/// `/command` or `/command@bot` as the whole text (arguments allowed).
fn is_command(text: &str, command: &str, bot_username: &str) -> bool {
    let word = text.split_whitespace().next().unwrap_or_default();
    let Some(name) = word.strip_prefix('/') else {
        return false;
    };
    match name.split_once('@') {
        Some((name, bot)) => {
            name.eq_ignore_ascii_case(command) && bot.eq_ignore_ascii_case(bot_username)
        }
        None => name.eq_ignore_ascii_case(command),
    }
}

fn message(m: &Message, bot_username: &str, mentions: &dyn Mentions) -> Vec<Action> {
    let chat_id = m.chat.id.0;
    if let Some(text) = m.text() {
        let user_id = m
            .from
            .as_ref()
            .map(|u| i64::try_from(u.id.0).unwrap_or_default());
        if is_command(text, "bridge", bot_username)
            && let Some(user_id) = user_id
        {
            let title = match m.chat.title() {
                Some(title) => title.to_owned(),
                None => m.from.as_ref().map(displayname).unwrap_or_default(),
            };
            return vec![Action::LinkRequest {
                chat_id,
                title,
                private: m.chat.is_private(),
                user_id,
            }];
        }
        if is_command(text, "unbridge", bot_username)
            && let Some(user_id) = user_id
        {
            return vec![Action::Unlink { chat_id, user_id }];
        }
    }
    let portal = |action| Action::Portal {
        chat_id,
        action: Box::new(action),
    };
    if let Some(to) = m.migrate_to_chat_id() {
        return vec![portal(PortalAction::Migrated { to: to.0 })];
    }
    if m.migrate_from_chat_id().is_some() {
        return vec![Action::Ignore("the first message of a migrated supergroup")];
    }
    if let Some(users) = m.new_chat_members() {
        let joined = users
            .iter()
            .filter(|u| !u.is_bot)
            .map(Sender::from_user)
            .collect::<Vec<_>>();
        if joined.is_empty() {
            return vec![Action::Ignore("only bots joined")];
        }
        return vec![portal(PortalAction::Joined(joined))];
    }
    if let Some(user) = m.left_chat_member() {
        return vec![portal(PortalAction::Left(Sender::from_user(user)))];
    }
    if let Some(title) = m.new_chat_title() {
        return vec![portal(PortalAction::Title(title.to_owned()))];
    }
    if let Some(sizes) = m.new_chat_photo() {
        return match crate::convert::message::largest_photo(sizes) {
            Some(p) => vec![portal(PortalAction::Photo {
                file_id: p.file.id.0.clone(),
                file_unique_id: p.file.unique_id.0.clone(),
            })],
            None => vec![Action::Ignore("an empty chat photo")],
        };
    }
    if m.delete_chat_photo().is_some() {
        return vec![portal(PortalAction::PhotoRemoved)];
    }
    let thread = m.thread_id.filter(|_| m.is_topic_message).map(|t| t.0.0);
    let content = if let Some(topic) = m.forum_topic_created() {
        let text = crate::convert::entities::MatrixText {
            body: format!("Topic: {}", topic.name),
            ..Default::default()
        };
        MatrixContent::Text {
            msgtype: "m.notice",
            text,
        }
    } else {
        match from_telegram(m, mentions) {
            Some(content) => content,
            None => return vec![Action::Ignore("a service message the bridge does not show")],
        }
    };
    // In forums every message "replies" to the topic's first message; that is the thread, not a reply.
    let reply_to = m
        .reply_to_message()
        .map(|r| r.id.0)
        .filter(|r| Some(*r) != thread);
    vec![portal(PortalAction::Message {
        sender: sender_of(m),
        message_id: m.id.0,
        ts_ms: seconds_to_ms(m.date),
        content,
        reply_to,
        thread: thread.filter(|t| *t != m.id.0),
    })]
}

fn edit(m: &Message, mentions: &dyn Mentions) -> Vec<Action> {
    let Some(content) = from_telegram(m, mentions) else {
        return vec![Action::Ignore("an edit of a service message")];
    };
    let edit_ts_ms = m
        .edit_date()
        .map_or_else(|| seconds_to_ms(m.date), |d| seconds_to_ms(*d));
    vec![Action::Portal {
        chat_id: m.chat.id.0,
        action: Box::new(PortalAction::Edit {
            sender: sender_of(m),
            message_id: m.id.0,
            edit_ts_ms,
            content,
        }),
    }]
}

fn emoji_of(reactions: &[ReactionType]) -> Vec<String> {
    reactions
        .iter()
        .filter_map(|r| match r {
            ReactionType::Emoji { emoji } => Some(emoji.clone()),
            _ => None,
        })
        .collect()
}

fn reaction(r: &MessageReactionUpdated) -> Vec<Action> {
    let sender = match &r.actor {
        MaybeAnonymousUser::User(user) => Sender::from_user(user),
        MaybeAnonymousUser::Chat(chat) => Sender::from_chat(chat, None),
    };
    let old = emoji_of(&r.old_reaction);
    let new = emoji_of(&r.new_reaction);
    let added: Vec<String> = new.iter().filter(|e| !old.contains(e)).cloned().collect();
    let removed: Vec<String> = old.iter().filter(|e| !new.contains(e)).cloned().collect();
    if added.is_empty() && removed.is_empty() {
        return vec![Action::Ignore("a reaction change with no emoji")];
    }
    vec![Action::Portal {
        chat_id: r.chat.id.0,
        action: Box::new(PortalAction::Reactions {
            sender,
            message_id: r.message_id.0,
            ts_ms: seconds_to_ms(r.date),
            added,
            removed,
        }),
    }]
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::convert::entities::NoMentions;

    fn group() -> Value {
        json!({"id": -100, "type": "supergroup", "title": "Group"})
    }

    fn ann() -> Value {
        json!({"id": 7, "is_bot": false, "first_name": "Ann", "last_name": "Lee", "username": "ann"})
    }

    /// An `Update` parsed from text, as teloxide parses responses (its parser needs text, not a `Value`).
    fn update(kind: &str, body: Value) -> Update {
        let text = json!({"update_id": 1, kind: body}).to_string();
        let update: Update = serde_json::from_str(&text).expect("valid Update");
        assert!(
            !matches!(update.kind, UpdateKind::Error(_)),
            "teloxide cannot parse {text}"
        );
        update
    }

    fn message(fields: Value) -> Update {
        let mut m = json!({"message_id": 5, "date": 1_700_000_000, "chat": group(), "from": ann()});
        m.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        update("message", m)
    }

    fn classify_one(u: &Update) -> Action {
        let mut actions = classify(u, "causeway_bot", &NoMentions);
        assert_eq!(actions.len(), 1);
        actions.remove(0)
    }

    fn portal_action(u: &Update) -> PortalAction {
        match classify_one(u) {
            Action::Portal {
                chat_id: -100,
                action,
            } => *action,
            other => panic!("not a portal action: {other:?}"),
        }
    }

    #[test]
    fn a_text_message_keeps_sender_id_and_original_time() {
        let PortalAction::Message {
            sender,
            message_id,
            ts_ms,
            content,
            reply_to,
            thread,
        } = portal_action(&message(json!({"text": "hello"})))
        else {
            panic!("not a message");
        };
        assert_eq!(
            sender,
            Sender {
                id: 7,
                displayname: "Ann Lee".to_owned(),
                is_user: true
            }
        );
        assert_eq!((message_id, ts_ms), (5, 1_700_000_000_000));
        assert_eq!(content.content().unwrap()["body"], "hello");
        assert_eq!((reply_to, thread), (None, None));
    }

    #[test]
    fn displaynames_fall_back_to_username_then_id() {
        let user: User = serde_json::from_value(
            json!({"id": 9, "is_bot": false, "first_name": " ", "username": "zed"}),
        )
        .unwrap();
        assert_eq!(displayname(&user), "@zed");
        let user: User =
            serde_json::from_value(json!({"id": 9, "is_bot": false, "first_name": ""})).unwrap();
        assert_eq!(displayname(&user), "9");
    }

    #[test]
    fn replies_are_kept_but_the_forum_topic_root_is_a_thread() {
        let reply = message(json!({"text": "yes", "reply_to_message":
            {"message_id": 3, "date": 1, "chat": group(), "text": "q?"}}));
        let PortalAction::Message {
            reply_to, thread, ..
        } = portal_action(&reply)
        else {
            panic!()
        };
        assert_eq!((reply_to, thread), (Some(3), None));
        let forum = json!({"id": -100, "type": "supergroup", "title": "Forum", "is_forum": true});
        let in_topic = message(
            json!({"chat": forum, "text": "in topic", "message_thread_id": 2,
            "is_topic_message": true, "reply_to_message": {"message_id": 2, "date": 1, "chat": forum,
            "forum_topic_created": {"name": "Ideas", "icon_color": 7322096}}}),
        );
        let PortalAction::Message {
            reply_to, thread, ..
        } = portal_action(&in_topic)
        else {
            panic!()
        };
        assert_eq!((reply_to, thread), (None, Some(2)));
    }

    #[test]
    fn a_topic_creation_is_a_notice_that_roots_the_thread() {
        let created = message(
            json!({"message_id": 2, "message_thread_id": 2, "is_topic_message": true,
            "forum_topic_created": {"name": "Ideas", "icon_color": 7322096}}),
        );
        let PortalAction::Message {
            content,
            thread,
            message_id,
            ..
        } = portal_action(&created)
        else {
            panic!()
        };
        assert_eq!(
            content.content().unwrap(),
            json!({"msgtype": "m.notice", "body": "Topic: Ideas"})
        );
        assert_eq!((message_id, thread), (2, None));
    }

    #[test]
    fn bridge_and_unbridge_commands_are_link_requests() {
        assert_eq!(
            classify_one(&message(json!({"text": "/bridge"}))),
            Action::LinkRequest {
                chat_id: -100,
                title: "Group".to_owned(),
                private: false,
                user_id: 7
            }
        );
        assert!(matches!(
            classify_one(&message(json!({"text": "/bridge@Causeway_Bot"}))),
            Action::LinkRequest { .. }
        ));
        assert!(matches!(
            classify_one(&message(json!({"text": "/bridge@other_bot"}))),
            Action::Portal { .. }
        ));
        assert_eq!(
            classify_one(&message(json!({"text": "/unbridge"}))),
            Action::Unlink {
                chat_id: -100,
                user_id: 7
            }
        );
        let private = json!({"id": 7, "type": "private", "first_name": "Ann"});
        assert_eq!(
            classify_one(&message(json!({"chat": private, "text": "/bridge"}))),
            Action::LinkRequest {
                chat_id: 7,
                title: "Ann Lee".to_owned(),
                private: true,
                user_id: 7
            }
        );
    }

    #[test]
    fn edits_carry_the_edit_time() {
        let edited = update(
            "edited_message",
            json!({"message_id": 5, "date": 1_700_000_000,
            "edit_date": 1_700_000_060, "chat": group(), "from": ann(), "text": "fixed"}),
        );
        let PortalAction::Edit {
            message_id,
            edit_ts_ms,
            content,
            ..
        } = portal_action(&edited)
        else {
            panic!()
        };
        assert_eq!((message_id, edit_ts_ms), (5, 1_700_000_060_000));
        assert_eq!(content.content().unwrap()["body"], "fixed");
    }

    #[test]
    fn reaction_updates_become_added_and_removed_emoji() {
        let changed = update(
            "message_reaction",
            json!({"chat": group(), "message_id": 5, "user": ann(),
            "date": 1_700_000_000, "old_reaction": [{"type": "emoji", "emoji": "👍"}],
            "new_reaction": [{"type": "emoji", "emoji": "🔥"}]}),
        );
        let PortalAction::Reactions {
            added,
            removed,
            message_id,
            ..
        } = portal_action(&changed)
        else {
            panic!()
        };
        assert_eq!(
            (added, removed, message_id),
            (vec!["🔥".to_owned()], vec!["👍".to_owned()], 5)
        );
    }

    #[test]
    fn service_messages_change_members_title_photo_and_chat_id() {
        let bob = json!({"id": 8, "is_bot": false, "first_name": "Bob"});
        let bot = json!({"id": 9, "is_bot": true, "first_name": "B"});
        let PortalAction::Joined(joined) =
            portal_action(&message(json!({"new_chat_members": [bob, bot]})))
        else {
            panic!()
        };
        assert_eq!(
            joined.iter().map(|s| s.id).collect::<Vec<_>>(),
            [8],
            "bots are not ghosted"
        );
        assert!(
            matches!(portal_action(&message(json!({"left_chat_member": bob}))), PortalAction::Left(s) if s.id == 8)
        );
        assert_eq!(
            portal_action(&message(json!({"new_chat_title": "New"}))),
            PortalAction::Title("New".to_owned())
        );
        let photo = message(json!({"new_chat_photo": [
            {"file_id": "small", "file_unique_id": "s", "width": 160, "height": 160},
            {"file_id": "big", "file_unique_id": "b", "width": 640, "height": 640}]}));
        assert_eq!(
            portal_action(&photo),
            PortalAction::Photo {
                file_id: "big".to_owned(),
                file_unique_id: "b".to_owned()
            }
        );
        assert_eq!(
            portal_action(&message(json!({"delete_chat_photo": true}))),
            PortalAction::PhotoRemoved
        );
        let migrated = message(
            json!({"chat": {"id": -100, "type": "group", "title": "G"}, "migrate_to_chat_id": -1_000_100}),
        );
        assert_eq!(
            portal_action(&migrated),
            PortalAction::Migrated { to: -1_000_100 }
        );
    }

    #[test]
    fn channel_posts_and_anonymous_admins_speak_as_the_chat() {
        let post = update(
            "channel_post",
            json!({"message_id": 1, "date": 1, "text": "news",
            "chat": {"id": -100, "type": "channel", "title": "News"}, "author_signature": "Eve"}),
        );
        let PortalAction::Message { sender, .. } = portal_action(&post) else {
            panic!()
        };
        assert_eq!(
            sender,
            Sender {
                id: -100,
                displayname: "Eve (News)".to_owned(),
                is_user: false
            }
        );
    }

    #[test]
    fn chat_member_updates_are_joins_and_leaves() {
        let member = |status: &str| json!({"status": status, "user": {"id": 8, "is_bot": false, "first_name": "Bob"}});
        let joined = update(
            "chat_member",
            json!({"chat": group(), "from": ann(), "date": 1,
            "old_chat_member": member("left"), "new_chat_member": member("member")}),
        );
        assert!(matches!(portal_action(&joined), PortalAction::Joined(s) if s[0].id == 8));
        let left = update(
            "chat_member",
            json!({"chat": group(), "from": ann(), "date": 1,
            "old_chat_member": member("member"), "new_chat_member": member("left")}),
        );
        assert!(matches!(portal_action(&left), PortalAction::Left(s) if s.id == 8));
    }

    #[test]
    fn other_updates_are_ignored() {
        let poll_answer = update(
            "poll_answer",
            json!({"poll_id": "p", "user": ann(), "option_ids": [0]}),
        );
        assert!(matches!(classify_one(&poll_answer), Action::Ignore(_)));
    }
}
