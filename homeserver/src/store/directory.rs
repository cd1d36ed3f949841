//! Tables `room_aliases` and `rooms.is_public`: aliases and the public room directory.

use sqlx::Row;

use super::{Result, Store, StoreError};

impl Store {
    pub async fn alias_room(&self, alias: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT room_id FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Adds an alias; [`StoreError::Conflict`] when taken.
    pub async fn set_alias(&self, alias: &str, room_id: &str, creator: &str) -> Result<()> {
        sqlx::query("INSERT INTO room_aliases (alias, room_id, creator) VALUES ($1, $2, $3)")
            .bind(alias)
            .bind(room_id)
            .bind(creator)
            .execute(&self.writer)
            .await
            .map_err(StoreError::from_write)?;
        Ok(())
    }

    /// The alias's creator, if it exists.
    pub async fn alias_creator(&self, alias: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT room_id, creator FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .fetch_optional(&self.reader)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    pub async fn delete_alias(&self, alias: &str) -> Result<()> {
        sqlx::query("DELETE FROM room_aliases WHERE alias = $1")
            .bind(alias)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn room_aliases(&self, room_id: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT alias FROM room_aliases WHERE room_id = $1 ORDER BY alias")
            .bind(room_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    pub async fn set_room_public(&self, room_id: &str, public: bool) -> Result<()> {
        sqlx::query("UPDATE rooms SET is_public = $2 WHERE room_id = $1")
            .bind(room_id)
            .bind(i64::from(public))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn room_is_public(&self, room_id: &str) -> Result<Option<bool>> {
        let row = sqlx::query("SELECT is_public FROM rooms WHERE room_id = $1")
            .bind(room_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64, _>(0).map(|v| v != 0))
            .transpose()?)
    }

    /// Public rooms, ordered by joined member count (descending) then id.
    pub async fn public_rooms(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT r.room_id, (SELECT COUNT(*) FROM current_state s JOIN memberships m ON m.event_id = s.event_id \
             WHERE s.room_id = r.room_id AND s.event_type = 'm.room.member' AND m.membership = 'join') AS members \
             FROM rooms r WHERE r.is_public = 1 ORDER BY members DESC, r.room_id",
        )
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

impl Store {
    /// Rooms whose current join rule is `rule`.
    pub async fn rooms_with_join_rule(&self, rule: &str) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT s.room_id, e.json FROM current_state s JOIN events e ON e.event_id = s.event_id \
             WHERE s.event_type = 'm.room.join_rules' AND s.state_key = ''",
        )
        .fetch_all(&self.reader)
        .await?;
        let mut rooms = Vec::new();
        for r in rows {
            let json: String = r.try_get(1)?;
            let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
            if v["content"]["join_rule"] == rule {
                rooms.push(r.try_get(0)?);
            }
        }
        Ok(rooms)
    }
}
