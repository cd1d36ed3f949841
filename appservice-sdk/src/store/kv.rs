//! `network_kv`: a key/value store the network owns, for state the SDK has no table for (the
//! IRC bridge keeps its puppets' nicks there). Keys live in namespaces; values are text (JSON
//! if structured).
//!
//! ```no_run
//! # async fn demo(store: appservice_sdk::store::Store) -> appservice_sdk::Result<()> {
//! store.kv_set("nicks", "@alice:example.org", "alice[m]").await?;
//! assert_eq!(store.kv_get("nicks", "@alice:example.org").await?.as_deref(), Some("alice[m]"));
//! for (user, nick) in store.kv_list("nicks").await? {
//!     println!("{user} is {nick}");
//! }
//! store.kv_delete("nicks", "@alice:example.org").await?;
//! # Ok(()) }
//! ```

use sqlx::Row;

use super::{Store, now_ms};
use crate::error::Result;

impl Store {
    /// The value under `key` in `namespace`, if set.
    pub async fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<String>> {
        let row =
            sqlx::query("SELECT kv_value FROM network_kv WHERE namespace = $1 AND kv_key = $2")
                .bind(namespace)
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get("kv_value")).transpose()?)
    }

    /// Sets `key` in `namespace` to `value`, replacing what was there.
    pub async fn kv_set(&self, namespace: &str, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO network_kv (namespace, kv_key, kv_value, updated_ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (namespace, kv_key) DO UPDATE SET kv_value = excluded.kv_value, \
             updated_ts = excluded.updated_ts",
        )
        .bind(namespace)
        .bind(key)
        .bind(value)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes `key` from `namespace`; whether it was there.
    pub async fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM network_kv WHERE namespace = $1 AND kv_key = $2")
            .bind(namespace)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every key and value of `namespace`, by key.
    pub async fn kv_list(&self, namespace: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kv_key, kv_value FROM network_kv WHERE namespace = $1 ORDER BY kv_key",
        )
        .bind(namespace)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kv_key")?, r.try_get("kv_value")?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::store::testing;

    #[tokio::test]
    async fn values_are_set_replaced_listed_and_deleted_per_namespace() {
        for t in testing::both().await {
            let s = &t.store;
            assert_eq!(s.kv_get("nicks", "@a:x").await.unwrap(), None);
            s.kv_set("nicks", "@a:x", "a[m]").await.unwrap();
            s.kv_set("nicks", "@a:x", "a_[m]").await.unwrap();
            s.kv_set("nicks", "@b:x", "b[m]").await.unwrap();
            s.kv_set("other", "@a:x", "elsewhere").await.unwrap();
            assert_eq!(
                s.kv_get("nicks", "@a:x").await.unwrap().as_deref(),
                Some("a_[m]")
            );
            assert_eq!(
                s.kv_list("nicks").await.unwrap(),
                [
                    ("@a:x".to_owned(), "a_[m]".to_owned()),
                    ("@b:x".to_owned(), "b[m]".to_owned())
                ]
            );
            assert!(s.kv_delete("nicks", "@a:x").await.unwrap());
            assert!(!s.kv_delete("nicks", "@a:x").await.unwrap());
            assert_eq!(
                s.kv_get("other", "@a:x").await.unwrap().as_deref(),
                Some("elsewhere")
            );
            t.cleanup().await;
        }
    }
}
