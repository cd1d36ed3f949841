//! Table `account_data`: global (`room_id = ''`) and per-room account data.

use sqlx::Row;

use super::{Result, Store};

/// One account data entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountDataRow {
    pub room_id: String,
    pub data_type: String,
    pub content: String,
    pub stream_id: i64,
}

impl Store {
    /// Sets an entry (JSON text) at stream position `stream_id`, replacing any previous one.
    pub async fn set_account_data(
        &self,
        user_id: &str,
        room_id: &str,
        data_type: &str,
        content: &str,
        stream_id: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO account_data (user_id, room_id, data_type, content, stream_id) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (user_id, room_id, data_type) DO UPDATE SET content = $4, stream_id = $5",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(data_type)
        .bind(content)
        .bind(stream_id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    pub async fn account_data(
        &self,
        user_id: &str,
        room_id: &str,
        data_type: &str,
    ) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT content FROM account_data WHERE user_id = $1 AND room_id = $2 AND data_type = $3",
        )
        .bind(user_id)
        .bind(room_id)
        .bind(data_type)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Every entry of a user changed after `since` (0 for all), oldest first.
    pub async fn account_data_since(
        &self,
        user_id: &str,
        since: i64,
    ) -> Result<Vec<AccountDataRow>> {
        let rows = sqlx::query(
            "SELECT room_id, data_type, content, stream_id FROM account_data \
             WHERE user_id = $1 AND stream_id > $2 ORDER BY stream_id",
        )
        .bind(user_id)
        .bind(since)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AccountDataRow {
                    room_id: r.try_get(0)?,
                    data_type: r.try_get(1)?,
                    content: r.try_get(2)?,
                    stream_id: r.try_get(3)?,
                })
            })
            .collect()
    }
}
