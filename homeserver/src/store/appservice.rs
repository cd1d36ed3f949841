//! Tables `appservice_state`, `appservice_txns`: each appservice's durable transaction queue.

use sqlx::{AssertSqlSafe, Row};

use super::{
    EventRow, Result, Store,
    events::{EVENT_COLUMNS, row_to_event},
};

/// A queued transaction: its id and the exact JSON body to `PUT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedTxn {
    pub txn_id: i64,
    pub body: String,
    pub event_count: i64,
}

impl Store {
    /// `(stream_position, last_txn_id)`, creating the row at `start` for a new appservice, so a
    /// newly registered appservice starts from now rather than receiving all history.
    pub async fn appservice_position(&self, appservice_id: &str, start: i64) -> Result<(i64, i64)> {
        sqlx::query(
            "INSERT INTO appservice_state (appservice_id, stream_position, last_txn_id) VALUES ($1, $2, 0) \
             ON CONFLICT (appservice_id) DO NOTHING",
        )
        .bind(appservice_id)
        .bind(start)
        .execute(&self.writer)
        .await?;
        let row = sqlx::query(
            "SELECT stream_position, last_txn_id FROM appservice_state WHERE appservice_id = $1",
        )
        .bind(appservice_id)
        .fetch_one(&self.writer)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Queues a transaction and moves the cursor past the events it covers, atomically: an event
    /// is either in a queued transaction or still ahead of the cursor, never lost between.
    pub async fn enqueue_appservice_txn(
        &self,
        appservice_id: &str,
        txn: &QueuedTxn,
        stream_position: i64,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "INSERT INTO appservice_txns (appservice_id, txn_id, body, event_count, created_ts) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(appservice_id)
        .bind(txn.txn_id)
        .bind(&txn.body)
        .bind(txn.event_count)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE appservice_state SET stream_position = $2, last_txn_id = $3 WHERE appservice_id = $1",
        )
        .bind(appservice_id)
        .bind(stream_position)
        .bind(txn.txn_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Moves the cursor without queueing (a stretch of events the appservice is not interested in).
    pub async fn advance_appservice_position(
        &self,
        appservice_id: &str,
        stream_position: i64,
    ) -> Result<()> {
        sqlx::query("UPDATE appservice_state SET stream_position = $2 WHERE appservice_id = $1")
            .bind(appservice_id)
            .bind(stream_position)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The oldest unacknowledged transaction.
    pub async fn oldest_appservice_txn(&self, appservice_id: &str) -> Result<Option<QueuedTxn>> {
        let row = sqlx::query(
            "SELECT txn_id, body, event_count FROM appservice_txns WHERE appservice_id = $1 \
             ORDER BY txn_id LIMIT 1",
        )
        .bind(appservice_id)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| {
            Ok(QueuedTxn {
                txn_id: r.try_get(0)?,
                body: r.try_get(1)?,
                event_count: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Drops a transaction the appservice acknowledged.
    pub async fn delete_appservice_txn(&self, appservice_id: &str, txn_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM appservice_txns WHERE appservice_id = $1 AND txn_id = $2")
            .bind(appservice_id)
            .bind(txn_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// A device with no tokens (MSC4190); an existing one is left as it is.
    pub async fn create_bare_device(
        &self,
        user_id: &str,
        device_id: &str,
        display_name: Option<&str>,
        ts: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(display_name)
        .bind(ts)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Events with `after < stream_ordering <= upto`, in stream order, at most `limit`.
    pub async fn events_in_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events e WHERE e.stream_ordering > $1 \
             AND e.stream_ordering <= $2 ORDER BY e.stream_ordering LIMIT $3"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .bind(upto)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_event).collect()
    }
}
