//! `bridge.portal_power_levels`: power the bot gives in portal rooms, e.g. to another bridge's bot
//! sharing them (the IRC bridge's bot needs power to mirror IRC ops and voice in a room the
//! Telegram bridge created).

use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};

use super::Bridge;
use crate::error::Result;
use crate::intent::SendOptions;

impl Bridge {
    /// Gives the users of `bridge.portal_power_levels` (only `user`, if given) their level in
    /// `room`, where they have less and the bot may raise them: one `m.room.power_levels` event,
    /// or none when nothing changes. Levels are only ever raised, never lowered. Best effort: a
    /// failure (the bot lacks power in a room it did not create) is logged and otherwise ignored.
    pub async fn give_portal_power(&self, room: &RoomId, user: Option<&UserId>) {
        let wanted: Vec<(OwnedUserId, i64)> = self
            .inner
            .section
            .portal_power_levels
            .iter()
            .filter(|(id, _)| user.is_none_or(|u| u.as_str() == id.as_str()))
            .filter_map(|(id, level)| match UserId::parse(id.as_str()) {
                Ok(id) => Some((id, *level)),
                Err(e) => {
                    tracing::warn!(user = id, error = %e, "bridge.portal_power_levels: not a user id");
                    None
                }
            })
            .collect();
        if wanted.is_empty() {
            return;
        }
        if let Err(e) = self.raise_power(room, &wanted).await {
            tracing::info!(%room, error = %e, "portal power levels not given");
        }
    }

    async fn raise_power(&self, room: &RoomId, wanted: &[(OwnedUserId, i64)]) -> Result<()> {
        let bot = self.inner.appservice.bot();
        let path = format!(
            "/_matrix/client/v3/rooms/{}/state/m.room.power_levels/",
            url::form_urlencoded::byte_serialize(room.as_str().as_bytes()).collect::<String>()
        );
        let levels = self
            .inner
            .appservice
            .client()
            .send_json(reqwest::Method::GET, &path, Some(bot.user_id()), None)
            .await?;
        let Some(raised) = raised_levels(&levels, bot.user_id(), wanted) else {
            return Ok(());
        };
        bot.send_state(
            room,
            "m.room.power_levels",
            "",
            &raised,
            SendOptions::default(),
        )
        .await?;
        tracing::info!(%room, users = ?wanted, "portal power levels given");
        Ok(())
    }
}

/// `levels` with each wanted user raised to their level, within what `bot` may give (at most its
/// own level, and nobody at or above it changes); `None` when nothing would change. A bot absent
/// from `users` may be a creator of a version 12 room (unlimited power, never listed): it is let
/// try, and the homeserver decides.
fn raised_levels(levels: &Value, bot: &UserId, wanted: &[(OwnedUserId, i64)]) -> Option<Value> {
    let users_default = levels["users_default"].as_i64().unwrap_or(0);
    let bot_level = levels["users"][bot.as_str()].as_i64();
    let mut raised = levels.clone();
    if !raised["users"].is_object() {
        raised["users"] = json!({});
    }
    let users = raised["users"].as_object_mut()?;
    let mut changed = false;
    for (user, level) in wanted {
        let current = users
            .get(user.as_str())
            .and_then(Value::as_i64)
            .unwrap_or(users_default);
        let level = bot_level.map_or(*level, |bot_level| (*level).min(bot_level));
        let may_change = bot_level.is_none_or(|bot_level| current < bot_level);
        if user.as_str() != bot.as_str() && current < level && may_change {
            users.insert(user.to_string(), json!(level));
            changed = true;
        }
    }
    changed.then_some(raised)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> OwnedUserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn a_wanted_user_is_raised_to_their_level() {
        let levels = json!({"users": {"@bot:x": 100, "@alice:x": 50}, "users_default": 0});
        let raised = raised_levels(&levels, &user("@bot:x"), &[(user("@ircbot:x"), 100)]).unwrap();
        assert_eq!(
            raised["users"],
            json!({"@bot:x": 100, "@alice:x": 50, "@ircbot:x": 100})
        );
        assert_eq!(raised["users_default"], 0, "the rest is kept");
    }

    #[test]
    fn nobody_is_lowered_and_nothing_unchanged_is_sent() {
        let levels = json!({"users": {"@bot:x": 100, "@ircbot:x": 100}});
        assert_eq!(
            raised_levels(&levels, &user("@bot:x"), &[(user("@ircbot:x"), 50)]),
            None
        );
    }

    #[test]
    fn the_bot_gives_at_most_its_own_level() {
        let levels = json!({"users": {"@bot:x": 50}});
        let raised = raised_levels(&levels, &user("@bot:x"), &[(user("@ircbot:x"), 100)]).unwrap();
        assert_eq!(raised["users"]["@ircbot:x"], 50);
        let levels = json!({"users": {"@bot:x": 50, "@ircbot:x": 50}});
        assert_eq!(
            raised_levels(&levels, &user("@bot:x"), &[(user("@ircbot:x"), 100)]),
            None,
            "a user at the bot's level cannot be changed by it"
        );
    }

    #[test]
    fn a_bot_missing_from_users_may_be_a_room_creator_and_tries() {
        let levels = json!({"users": {"@alice:x": 50}});
        let raised = raised_levels(&levels, &user("@bot:x"), &[(user("@ircbot:x"), 100)]).unwrap();
        assert_eq!(raised["users"], json!({"@alice:x": 50, "@ircbot:x": 100}));
        let raised =
            raised_levels(&json!({}), &user("@bot:x"), &[(user("@ircbot:x"), 100)]).unwrap();
        assert_eq!(raised["users"], json!({"@ircbot:x": 100}));
    }
}
