//! Table `devices`.

use sqlx::{AssertSqlSafe, Row};

use super::{Result, Store};

/// One device of a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: String,
    pub display_name: Option<String>,
    pub last_seen_ts: Option<i64>,
    pub last_seen_ip: Option<String>,
}

fn row_to_device(row: &sqlx::any::AnyRow) -> Result<DeviceRow> {
    Ok(DeviceRow {
        device_id: row.try_get(0)?,
        display_name: row.try_get(1)?,
        last_seen_ts: row.try_get(2)?,
        last_seen_ip: row.try_get(3)?,
    })
}

/// Tables with rows per device (`user_id`, `device_id`), the device's own row last: what deleting
/// a device removes.
pub(super) const DEVICE_TABLES: [&str; 8] = [
    "access_tokens",
    "refresh_tokens",
    "device_keys",
    "one_time_keys",
    "fallback_keys",
    "to_device_messages",
    "to_device_txns",
    "devices",
];

impl Store {
    pub async fn devices(&self, user_id: &str) -> Result<Vec<DeviceRow>> {
        let rows = sqlx::query(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices \
             WHERE user_id = $1 ORDER BY device_id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(row_to_device).collect()
    }

    pub async fn device(&self, user_id: &str, device_id: &str) -> Result<Option<DeviceRow>> {
        let row = sqlx::query(
            "SELECT device_id, display_name, last_seen_ts, last_seen_ip FROM devices \
             WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(row_to_device).transpose()
    }

    /// Renames a device; false when it does not exist.
    pub async fn rename_device(
        &self,
        user_id: &str,
        device_id: &str,
        name: Option<&str>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(name)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records when and from where a device was last seen.
    pub async fn set_device_seen(
        &self,
        user_id: &str,
        device_id: &str,
        ts: i64,
        ip: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4 WHERE user_id = $1 AND device_id = $2",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(ts)
        .bind(ip)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Deletes devices with every token issued to them, their keys and their pending to-device
    /// messages, in one transaction.
    pub async fn delete_devices(&self, user_id: &str, device_ids: &[String]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for device_id in device_ids {
            for table in DEVICE_TABLES {
                sqlx::query(AssertSqlSafe(format!(
                    "DELETE FROM {table} WHERE user_id = $1 AND device_id = $2"
                )))
                .bind(user_id)
                .bind(device_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        self.tokens.invalidate();
        Ok(())
    }
}
