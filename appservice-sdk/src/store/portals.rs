//! `portals`: a remote chat and the Matrix room that mirrors it.

use ruma::OwnedRoomId;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, cache_get, cache_put, now_ms, parse_id};
use crate::error::Result;

/// A portal: remote chat id <-> Matrix room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRecord {
    /// The network's id for the chat.
    pub remote_id: String,
    /// The Matrix room.
    pub room_id: OwnedRoomId,
    /// The chat's name, if known.
    pub name: Option<String>,
    /// Whether Matrix users without a remote login are relayed through the bot.
    pub relay_enabled: bool,
}

fn from_row(row: &AnyRow) -> Result<PortalRecord> {
    Ok(PortalRecord {
        remote_id: row.try_get("remote_id")?,
        room_id: parse_id("portals.room_id", row.try_get("room_id")?)?,
        name: row.try_get("name")?,
        relay_enabled: row.try_get::<i64, _>("relay_enabled")? != 0,
    })
}

const COLUMNS: &str = "remote_id, room_id, name, relay_enabled";

impl Store {
    /// Inserts a portal, or updates the room, name and relay flag of an existing one.
    pub async fn upsert_portal(&self, portal: &PortalRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO portals (remote_id, room_id, name, relay_enabled, created_ts) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (remote_id) DO UPDATE SET room_id = excluded.room_id, \
             name = excluded.name, relay_enabled = excluded.relay_enabled",
        )
        .bind(&portal.remote_id)
        .bind(portal.room_id.as_str())
        .bind(portal.name.as_deref())
        .bind(i64::from(portal.relay_enabled))
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        self.forget_cached_portals();
        Ok(())
    }

    /// The portal for a remote chat.
    pub async fn portal_by_remote_id(&self, remote_id: &str) -> Result<Option<PortalRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM portals WHERE remote_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(remote_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// The portal for a Matrix room (cached).
    pub async fn portal_by_room_id(&self, room_id: &str) -> Result<Option<PortalRecord>> {
        if let Some(portal) = cache_get(&self.cache.portals_by_room, room_id) {
            return Ok(Some(portal));
        }
        let sql = format!("SELECT {COLUMNS} FROM portals WHERE room_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .fetch_optional(&self.pool)
            .await?;
        let portal = row.as_ref().map(from_row).transpose()?;
        if let Some(portal) = &portal {
            cache_put(&self.cache.portals_by_room, room_id, portal.clone());
        }
        Ok(portal)
    }

    /// Every portal, oldest first.
    pub async fn all_portals(&self) -> Result<Vec<PortalRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM portals ORDER BY created_ts, remote_id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Turns relay mode on or off; false if there is no such portal.
    pub async fn set_portal_relay(&self, remote_id: &str, enabled: bool) -> Result<bool> {
        let done = sqlx::query("UPDATE portals SET relay_enabled = $1 WHERE remote_id = $2")
            .bind(i64::from(enabled))
            .bind(remote_id)
            .execute(&self.pool)
            .await?;
        self.forget_cached_portals();
        Ok(done.rows_affected() > 0)
    }

    /// Forgets a portal and its messages, reactions and backfill cursor; false if absent.
    pub async fn delete_portal(&self, remote_id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        for table in ["messages", "reactions", "backfill_cursors"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE portal_id = $1"
            )))
            .bind(remote_id)
            .execute(&mut *tx)
            .await?;
        }
        let done = sqlx::query("DELETE FROM portals WHERE remote_id = $1")
            .bind(remote_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.forget_cached_portals();
        Ok(done.rows_affected() > 0)
    }

    fn forget_cached_portals(&self) {
        self.cache
            .portals_by_room
            .lock()
            .expect("cache lock")
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn portal(remote: &str, room: &str) -> PortalRecord {
        PortalRecord {
            remote_id: remote.to_owned(),
            room_id: room.try_into().unwrap(),
            name: Some("Chat".to_owned()),
            relay_enabled: false,
        }
    }

    #[tokio::test]
    async fn a_portal_is_found_by_remote_id_and_by_room() {
        for t in testing::both().await {
            let s = &t.store;
            s.upsert_portal(&portal("chat1", "!a:x")).await.unwrap();
            assert_eq!(
                s.portal_by_remote_id("chat1").await.unwrap(),
                Some(portal("chat1", "!a:x"))
            );
            assert_eq!(
                s.portal_by_room_id("!a:x")
                    .await
                    .unwrap()
                    .unwrap()
                    .remote_id,
                "chat1"
            );
            assert_eq!(s.portal_by_room_id("!b:x").await.unwrap(), None);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn upserting_updates_and_relay_toggles_and_delete_forgets() {
        for t in testing::both().await {
            let s = &t.store;
            s.upsert_portal(&portal("chat1", "!a:x")).await.unwrap();
            let mut renamed = portal("chat1", "!a:x");
            renamed.name = Some("Renamed".to_owned());
            s.upsert_portal(&renamed).await.unwrap();
            assert!(s.set_portal_relay("chat1", true).await.unwrap());
            assert!(!s.set_portal_relay("nope", true).await.unwrap());
            let got = s.portal_by_remote_id("chat1").await.unwrap().unwrap();
            assert_eq!(got.name.as_deref(), Some("Renamed"));
            assert!(got.relay_enabled);
            s.upsert_portal(&portal("chat2", "!b:x")).await.unwrap();
            assert_eq!(s.all_portals().await.unwrap().len(), 2);
            assert!(s.delete_portal("chat1").await.unwrap());
            assert!(!s.delete_portal("chat1").await.unwrap());
            assert_eq!(s.all_portals().await.unwrap().len(), 1);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn the_room_lookup_cache_follows_every_change() {
        for t in testing::both().await {
            let s = &t.store;
            s.upsert_portal(&portal("chat1", "!a:x")).await.unwrap();
            assert!(
                !s.portal_by_room_id("!a:x")
                    .await
                    .unwrap()
                    .unwrap()
                    .relay_enabled
            );
            s.set_portal_relay("chat1", true).await.unwrap();
            assert!(
                s.portal_by_room_id("!a:x")
                    .await
                    .unwrap()
                    .unwrap()
                    .relay_enabled
            );
            s.upsert_portal(&portal("chat1", "!b:x")).await.unwrap();
            assert_eq!(s.portal_by_room_id("!a:x").await.unwrap(), None);
            assert_eq!(
                s.portal_by_room_id("!b:x")
                    .await
                    .unwrap()
                    .unwrap()
                    .remote_id,
                "chat1"
            );
            s.delete_portal("chat1").await.unwrap();
            assert_eq!(s.portal_by_room_id("!b:x").await.unwrap(), None);
            t.cleanup().await;
        }
    }

    #[tokio::test]
    async fn two_portals_cannot_share_a_room() {
        for t in testing::both().await {
            let s = &t.store;
            s.upsert_portal(&portal("chat1", "!a:x")).await.unwrap();
            assert!(s.upsert_portal(&portal("chat2", "!a:x")).await.is_err());
            t.cleanup().await;
        }
    }
}
