//! `processed_txns` and `processed_events`: what the bridge has already handled, so a
//! transaction or event redelivered after a crash is acknowledged without reprocessing.

use sqlx::AssertSqlSafe;

use super::{Store, now_ms};
use crate::error::Result;

impl Store {
    /// Whether the transaction was fully processed.
    pub async fn is_txn_processed(&self, txn_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM processed_txns WHERE txn_id = $1")
            .bind(txn_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Records that a transaction was fully processed.
    pub async fn mark_txn_processed(&self, txn_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO processed_txns (txn_id, processed_ts) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(txn_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether an event was handled (in an earlier, maybe unacknowledged, transaction).
    pub async fn is_event_processed(&self, event_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 AS one FROM processed_events WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Records that an event was handled.
    pub async fn mark_event_processed(&self, event_id: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO processed_events (event_id, processed_ts) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(event_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets transactions and events processed before `before_ms`; returns how many rows went.
    pub async fn prune_processed(&self, before_ms: i64) -> Result<u64> {
        let mut gone = 0;
        for table in ["processed_txns", "processed_events"] {
            let done = sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE processed_ts < $1"
            )))
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
            gone += done.rows_affected();
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{now_ms, testing};

    #[tokio::test]
    async fn processed_txns_and_events_are_remembered_until_pruned() {
        for t in testing::both().await {
            let s = &t.store;
            assert!(!s.is_txn_processed("t1").await.unwrap());
            s.mark_txn_processed("t1").await.unwrap();
            s.mark_txn_processed("t1").await.unwrap();
            assert!(s.is_txn_processed("t1").await.unwrap());
            s.mark_event_processed("$e").await.unwrap();
            assert!(s.is_event_processed("$e").await.unwrap());
            assert_eq!(s.prune_processed(now_ms() + 1000).await.unwrap(), 2);
            assert!(!s.is_txn_processed("t1").await.unwrap());
            t.cleanup().await;
        }
    }
}
