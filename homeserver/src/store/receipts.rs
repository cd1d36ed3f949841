//! Table `receipts`: the latest receipt per (room, type, user, thread).

use sqlx::{AssertSqlSafe, Row};

use super::{Result, Store};

/// One receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRow {
    pub room_id: String,
    pub receipt_type: String,
    pub user_id: String,
    pub thread_id: String,
    pub event_id: String,
    pub ts: i64,
    pub stream_ordering: i64,
}

impl Store {
    pub async fn set_receipt(&self, r: &ReceiptRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO receipts (room_id, receipt_type, user_id, thread_id, event_id, ts, stream_ordering) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (room_id, receipt_type, user_id, thread_id) \
             DO UPDATE SET event_id = $5, ts = $6, stream_ordering = $7",
        )
        .bind(&r.room_id)
        .bind(&r.receipt_type)
        .bind(&r.user_id)
        .bind(&r.thread_id)
        .bind(&r.event_id)
        .bind(r.ts)
        .bind(r.stream_ordering)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Receipts in a room that changed in `(after, upto]`.
    pub async fn receipts_since(
        &self,
        room_id: &str,
        after: i64,
        upto: i64,
    ) -> Result<Vec<ReceiptRow>> {
        let rows = sqlx::query(
            "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_ordering FROM receipts \
             WHERE room_id = $1 AND stream_ordering > $2 AND stream_ordering <= $3 ORDER BY stream_ordering",
        )
        .bind(room_id)
        .bind(after)
        .bind(upto)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(receipt_row).collect()
    }

    /// Receipts in every room that changed in `(after, upto]`, in stream order, at most `limit`
    /// (for appservice transactions).
    pub async fn receipts_in_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<ReceiptRow>> {
        let rows = sqlx::query(
            "SELECT room_id, receipt_type, user_id, thread_id, event_id, ts, stream_ordering FROM receipts \
             WHERE stream_ordering > $1 AND stream_ordering <= $2 ORDER BY stream_ordering LIMIT $3",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(receipt_row).collect()
    }

    /// Stream position of the event a user's latest read receipt (public or private) points at.
    pub async fn read_up_to(&self, room_id: &str, user_id: &str) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(e.stream_ordering), 0) FROM receipts r JOIN events e ON e.event_id = r.event_id \
             WHERE r.room_id = $1 AND r.user_id = $2 AND r.receipt_type IN ('m.read', 'm.read.private')",
        )
        .bind(room_id)
        .bind(user_id)
        .fetch_one(&self.reader)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// How many events of `types` in a room after `after` others sent, counting at most `cap`.
    pub async fn count_unread(
        &self,
        room_id: &str,
        after: i64,
        user_id: &str,
        types: &[&str],
        cap: i64,
    ) -> Result<usize> {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE room_id = $1 AND stream_ordering > $2 \
             AND sender <> $3 AND event_type IN ({}) ORDER BY stream_ordering DESC LIMIT $4) AS unread",
            type_list(types)
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(after)
            .bind(user_id)
            .bind(cap)
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get::<i64, _>(0)? as usize)
    }

    /// The JSON of the newest `limit` such events, for highlight checks.
    pub async fn unread_contents(
        &self,
        room_id: &str,
        after: i64,
        user_id: &str,
        types: &[&str],
        limit: i64,
    ) -> Result<Vec<String>> {
        let sql = format!(
            "SELECT json FROM events WHERE room_id = $1 AND stream_ordering > $2 AND sender <> $3 \
             AND event_type IN ({}) ORDER BY stream_ordering DESC LIMIT $4",
            type_list(types)
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(room_id)
            .bind(after)
            .bind(user_id)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

impl Store {
    /// Stream position of the user's latest event in a room (sending implies reading).
    pub async fn last_sent_by(&self, room_id: &str, user_id: &str) -> Result<i64> {
        let row = sqlx::query("SELECT COALESCE(MAX(stream_ordering), 0) FROM events WHERE room_id = $1 AND sender = $2")
            .bind(room_id)
            .bind(user_id)
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get(0)?)
    }
}

fn receipt_row(r: &sqlx::any::AnyRow) -> Result<ReceiptRow> {
    Ok(ReceiptRow {
        room_id: r.try_get(0)?,
        receipt_type: r.try_get(1)?,
        user_id: r.try_get(2)?,
        thread_id: r.try_get(3)?,
        event_id: r.try_get(4)?,
        ts: r.try_get(5)?,
        stream_ordering: r.try_get(6)?,
    })
}

/// A SQL list of event types known at compile time (never user input).
fn type_list(types: &[&str]) -> String {
    types
        .iter()
        .map(|t| format!("'{}'", t.replace('\'', "")))
        .collect::<Vec<_>>()
        .join(", ")
}
