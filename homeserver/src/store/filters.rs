//! Table `filters`.

use sqlx::Row;

use super::{Result, Store};

impl Store {
    /// Stores a filter, returning its per-user id.
    pub async fn create_filter(&self, user_id: &str, json: &str) -> Result<i64> {
        let mut tx = self.writer.begin().await?;
        let id: i64 =
            sqlx::query("SELECT COALESCE(MAX(filter_id), -1) + 1 FROM filters WHERE user_id = $1")
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        sqlx::query("INSERT INTO filters (user_id, filter_id, json) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(id)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn filter(&self, user_id: &str, filter_id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT json FROM filters WHERE user_id = $1 AND filter_id = $2")
            .bind(user_id)
            .bind(filter_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }
}
