//! Tables `to_device_messages` and `to_device_txns`.

use sqlx::Row;

use super::{Result, Store};

/// A to-device message for one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToDeviceRow {
    pub user_id: String,
    pub device_id: String,
    pub stream_id: i64,
    pub sender: String,
    pub event_type: String,
    /// The content as JSON text.
    pub content: String,
}

impl Store {
    /// Queues messages sent by `sender`'s `sender_device` under transaction `txn_id`, unless that
    /// transaction was already handled. Returns whether they were queued.
    pub async fn queue_to_device(
        &self,
        sender: &str,
        sender_device: &str,
        txn_id: &str,
        messages: &[ToDeviceRow],
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO to_device_txns (user_id, device_id, txn_id) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(sender)
        .bind(sender_device)
        .bind(txn_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !fresh {
            return Ok(false);
        }
        for m in messages {
            sqlx::query(
                "INSERT INTO to_device_messages \
                 (user_id, device_id, stream_id, sender, event_type, content) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(&m.user_id)
            .bind(&m.device_id)
            .bind(m.stream_id)
            .bind(&m.sender)
            .bind(&m.event_type)
            .bind(&m.content)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// A device's pending messages after `after` up to and including `upto`, oldest first, at
    /// most `limit`.
    pub async fn to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        after: i64,
        upto: i64,
        limit: i64,
    ) -> Result<Vec<ToDeviceRow>> {
        let rows = sqlx::query(
            "SELECT stream_id, sender, event_type, content FROM to_device_messages \
             WHERE user_id = $1 AND device_id = $2 AND stream_id > $3 AND stream_id <= $4 \
             ORDER BY stream_id LIMIT $5",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(after)
        .bind(upto)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ToDeviceRow {
                    user_id: user_id.to_owned(),
                    device_id: device_id.to_owned(),
                    stream_id: r.try_get(0)?,
                    sender: r.try_get(1)?,
                    event_type: r.try_get(2)?,
                    content: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Drops a device's messages up to and including `upto` (the device has acknowledged them).
    pub async fn delete_to_device_messages(
        &self,
        user_id: &str,
        device_id: &str,
        upto: i64,
    ) -> Result<()> {
        sqlx::query(
            "DELETE FROM to_device_messages WHERE user_id = $1 AND device_id = $2 AND stream_id <= $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(upto)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
