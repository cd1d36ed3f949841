//! Table `presence`.

use sqlx::Row;

use super::{Result, Store};

/// A user's presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceRow {
    pub user_id: String,
    pub state: String,
    pub status_msg: Option<String>,
    pub last_active_ts: i64,
    pub stream_ordering: i64,
}

fn row(r: &sqlx::any::AnyRow) -> Result<PresenceRow> {
    Ok(PresenceRow {
        user_id: r.try_get(0)?,
        state: r.try_get(1)?,
        status_msg: r.try_get(2)?,
        last_active_ts: r.try_get(3)?,
        stream_ordering: r.try_get(4)?,
    })
}

impl Store {
    pub async fn set_presence(&self, p: &PresenceRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO presence (user_id, state, status_msg, last_active_ts, stream_ordering) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id) DO UPDATE SET state = $2, status_msg = $3, last_active_ts = $4, stream_ordering = $5",
        )
        .bind(&p.user_id)
        .bind(&p.state)
        .bind(&p.status_msg)
        .bind(p.last_active_ts)
        .bind(p.stream_ordering)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn presence(&self, user_id: &str) -> Result<Option<PresenceRow>> {
        let r = sqlx::query("SELECT user_id, state, status_msg, last_active_ts, stream_ordering FROM presence WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        r.as_ref().map(row).transpose()
    }

    /// Presence rows changed in `(after, upto]`, in stream order, at most `limit` (for appservice
    /// transactions).
    pub async fn presence_in_range(
        &self,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<PresenceRow>> {
        let rows = sqlx::query(
            "SELECT user_id, state, status_msg, last_active_ts, stream_ordering FROM presence \
             WHERE stream_ordering > $1 AND stream_ordering <= $2 ORDER BY stream_ordering LIMIT $3",
        )
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row).collect()
    }

    /// Presence rows changed in `(after, upto]`.
    pub async fn presence_since(&self, after: i64, upto: i64) -> Result<Vec<PresenceRow>> {
        let rows = sqlx::query(
            "SELECT user_id, state, status_msg, last_active_ts, stream_ordering FROM presence \
             WHERE stream_ordering > $1 AND stream_ordering <= $2 ORDER BY stream_ordering",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row).collect()
    }
}
