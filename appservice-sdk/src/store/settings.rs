//! `user_settings` (management room, remote login) and `backfill_cursors`.

use sqlx::Row;

use super::{Store, cache_get, cache_put, now_ms};
use crate::error::Result;

/// What the bridge remembers about a Matrix user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSettings {
    /// The user's management room with the bot.
    pub management_room: Option<String>,
    /// Network-defined login state (e.g. a session as JSON); `None` when logged out.
    pub remote_login: Option<String>,
}

impl Store {
    /// The settings of a Matrix user (all `None` if never stored; cached).
    pub async fn user_settings(&self, user_id: &str) -> Result<UserSettings> {
        if let Some(settings) = cache_get(&self.cache.user_settings, user_id) {
            return Ok(settings);
        }
        let row = sqlx::query(
            "SELECT management_room, remote_login FROM user_settings WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let settings = match row {
            Some(row) => UserSettings {
                management_room: row.try_get("management_room")?,
                remote_login: row.try_get("remote_login")?,
            },
            None => UserSettings::default(),
        };
        cache_put(&self.cache.user_settings, user_id, settings.clone());
        Ok(settings)
    }

    /// Stores the settings of a Matrix user.
    pub async fn set_user_settings(&self, user_id: &str, settings: &UserSettings) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_settings (user_id, management_room, remote_login) \
             VALUES ($1, $2, $3) ON CONFLICT (user_id) DO UPDATE SET \
             management_room = excluded.management_room, remote_login = excluded.remote_login",
        )
        .bind(user_id)
        .bind(settings.management_room.as_deref())
        .bind(settings.remote_login.as_deref())
        .execute(&self.pool)
        .await?;
        cache_put(&self.cache.user_settings, user_id, settings.clone());
        Ok(())
    }

    /// Every user with a management room, and the room.
    pub async fn management_rooms(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT user_id, management_room FROM user_settings \
             WHERE management_room IS NOT NULL ORDER BY user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("management_room")?)))
            .collect()
    }

    /// Where backfill of a portal stopped, if it started.
    pub async fn backfill_cursor(&self, portal_id: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT cursor FROM backfill_cursors WHERE portal_id = $1")
            .bind(portal_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("cursor")).transpose()?)
    }

    /// Moves the backfill cursor of a portal.
    pub async fn set_backfill_cursor(&self, portal_id: &str, cursor: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO backfill_cursors (portal_id, cursor, updated_ts) VALUES ($1, $2, $3) \
             ON CONFLICT (portal_id) DO UPDATE SET cursor = excluded.cursor, \
             updated_ts = excluded.updated_ts",
        )
        .bind(portal_id)
        .bind(cursor)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{UserSettings, testing};

    #[tokio::test]
    async fn user_settings_default_to_empty_and_round_trip() {
        for t in testing::both().await {
            let s = &t.store;
            assert_eq!(
                s.user_settings("@a:x").await.unwrap(),
                UserSettings::default()
            );
            let set = UserSettings {
                management_room: Some("!m:x".to_owned()),
                remote_login: Some("{\"token\":1}".to_owned()),
            };
            s.set_user_settings("@a:x", &set).await.unwrap();
            assert_eq!(s.user_settings("@a:x").await.unwrap(), set);
            s.set_user_settings("@b:x", &UserSettings::default())
                .await
                .unwrap();
            let rooms = s.management_rooms().await.unwrap();
            assert_eq!(rooms, vec![("@a:x".to_owned(), "!m:x".to_owned())]);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn the_backfill_cursor_moves_forward() {
        for t in testing::both().await {
            let s = &t.store;
            assert_eq!(s.backfill_cursor("chat").await.unwrap(), None);
            s.set_backfill_cursor("chat", "3").await.unwrap();
            s.set_backfill_cursor("chat", "7").await.unwrap();
            assert_eq!(
                s.backfill_cursor("chat").await.unwrap().as_deref(),
                Some("7")
            );
            t.cleanup().await;
        }
    }
}
