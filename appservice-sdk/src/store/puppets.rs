//! `puppets`: a remote user and the ghost Matrix user that stands for them, with a profile cache.

use ruma::OwnedUserId;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, cache_get, cache_put, parse_id};
use crate::error::Result;

/// A puppet: remote user id <-> ghost, and the profile last set on the ghost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PuppetRecord {
    /// The network's id for the user.
    pub remote_id: String,
    /// The ghost.
    pub user_id: OwnedUserId,
    /// Displayname last set on the ghost.
    pub displayname: Option<String>,
    /// `mxc://` avatar last set on the ghost.
    pub avatar_url: Option<String>,
    /// The network's id (or hash) of the avatar the `mxc://` was uploaded from.
    pub avatar_source: Option<String>,
    /// Whether the ghost is known to be registered.
    pub registered: bool,
}

fn from_row(row: &AnyRow) -> Result<PuppetRecord> {
    Ok(PuppetRecord {
        remote_id: row.try_get("remote_id")?,
        user_id: parse_id("puppets.user_id", row.try_get("user_id")?)?,
        displayname: row.try_get("displayname")?,
        avatar_url: row.try_get("avatar_url")?,
        avatar_source: row.try_get("avatar_source")?,
        registered: row.try_get::<i64, _>("registered")? != 0,
    })
}

const COLUMNS: &str = "remote_id, user_id, displayname, avatar_url, avatar_source, registered";

impl Store {
    /// Inserts or replaces a puppet.
    pub async fn upsert_puppet(&self, puppet: &PuppetRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO puppets (remote_id, user_id, displayname, avatar_url, avatar_source, \
             registered) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (remote_id) DO UPDATE SET user_id = excluded.user_id, \
             displayname = excluded.displayname, avatar_url = excluded.avatar_url, \
             avatar_source = excluded.avatar_source, registered = excluded.registered",
        )
        .bind(&puppet.remote_id)
        .bind(puppet.user_id.as_str())
        .bind(puppet.displayname.as_deref())
        .bind(puppet.avatar_url.as_deref())
        .bind(puppet.avatar_source.as_deref())
        .bind(i64::from(puppet.registered))
        .execute(&self.pool)
        .await?;
        cache_put(&self.cache.puppets, &puppet.remote_id, puppet.clone());
        Ok(())
    }

    /// The puppet for a remote user (cached).
    pub async fn puppet_by_remote_id(&self, remote_id: &str) -> Result<Option<PuppetRecord>> {
        if let Some(puppet) = cache_get(&self.cache.puppets, remote_id) {
            return Ok(Some(puppet));
        }
        let sql = format!("SELECT {COLUMNS} FROM puppets WHERE remote_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(remote_id)
            .fetch_optional(&self.pool)
            .await?;
        let puppet = row.as_ref().map(from_row).transpose()?;
        if let Some(puppet) = &puppet {
            cache_put(&self.cache.puppets, remote_id, puppet.clone());
        }
        Ok(puppet)
    }

    /// The puppet behind a ghost user id.
    pub async fn puppet_by_user_id(&self, user_id: &str) -> Result<Option<PuppetRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM puppets WHERE user_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// How many puppets exist.
    pub async fn count_puppets(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM puppets")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    #[tokio::test]
    async fn a_puppet_round_trips_with_its_profile_cache() {
        for t in testing::both().await {
            let s = &t.store;
            let mut p = PuppetRecord {
                remote_id: "alice".to_owned(),
                user_id: "@echo_alice:x".try_into().unwrap(),
                displayname: None,
                avatar_url: None,
                avatar_source: None,
                registered: false,
            };
            s.upsert_puppet(&p).await.unwrap();
            assert_eq!(
                s.puppet_by_remote_id("alice").await.unwrap(),
                Some(p.clone())
            );
            p.displayname = Some("Alice".to_owned());
            p.avatar_url = Some("mxc://x/abc".to_owned());
            p.avatar_source = Some("sha:1".to_owned());
            p.registered = true;
            s.upsert_puppet(&p).await.unwrap();
            assert_eq!(s.puppet_by_user_id("@echo_alice:x").await.unwrap(), Some(p));
            assert_eq!(s.puppet_by_user_id("@echo_bob:x").await.unwrap(), None);
            assert_eq!(s.count_puppets().await.unwrap(), 1);
            t.cleanup().await;
        }
    }
}
