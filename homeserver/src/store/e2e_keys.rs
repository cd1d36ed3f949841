//! Tables `device_keys`, `one_time_keys`, `fallback_keys`, `cross_signing_keys`,
//! `key_signatures` and `device_list_changes`: the keys of end-to-end encryption.

use sqlx::Row;

use super::{Result, Store};

/// A one-time or fallback key as uploaded: `key_id` is `algorithm:id`, `key_json` the key object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OneTimeKeyRow {
    pub algorithm: String,
    pub key_id: String,
    pub key_json: String,
}

/// A signature uploaded by `signer_user_id` over the key `target_key_id` of its target user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySignatureRow {
    pub target_key_id: String,
    pub signer_user_id: String,
    pub signer_key_id: String,
    pub signature: String,
}

impl Store {
    /// Stores a device's identity keys; records a device-list change of `user_id` at `stream_id`
    /// when they differ from the stored ones. Returns whether they changed.
    pub async fn set_device_keys(
        &self,
        user_id: &str,
        device_id: &str,
        key_json: &str,
        stream_id: i64,
    ) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let old: Option<String> =
            sqlx::query("SELECT key_json FROM device_keys WHERE user_id = $1 AND device_id = $2")
                .bind(user_id)
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
        if old.as_deref() == Some(key_json) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO device_keys (user_id, device_id, key_json) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = $3",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(key_json)
        .execute(&mut *tx)
        .await?;
        record_change(&mut tx, user_id, stream_id).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The identity keys of a user's existing devices, by device id.
    pub async fn device_keys(&self, user_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT k.device_id, k.key_json FROM device_keys k JOIN devices d \
             ON d.user_id = k.user_id AND d.device_id = k.device_id \
             WHERE k.user_id = $1 ORDER BY k.device_id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Adds one-time keys; a key id already held is kept as it was.
    pub async fn add_one_time_keys(
        &self,
        user_id: &str,
        device_id: &str,
        keys: &[OneTimeKeyRow],
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for k in keys {
            sqlx::query(
                "INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, key_json) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(&k.algorithm)
            .bind(&k.key_id)
            .bind(&k.key_json)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many unclaimed one-time keys a device has, per algorithm.
    pub async fn one_time_key_counts(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT algorithm, COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 \
             GROUP BY algorithm ORDER BY algorithm",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Replaces a device's fallback key for the key's algorithm, as unused.
    pub async fn set_fallback_key(
        &self,
        user_id: &str,
        device_id: &str,
        key: &OneTimeKeyRow,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, key_json, used) \
             VALUES ($1, $2, $3, $4, $5, 0) ON CONFLICT (user_id, device_id, algorithm) \
             DO UPDATE SET key_id = $4, key_json = $5, used = 0",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(&key.algorithm)
        .bind(&key.key_id)
        .bind(&key.key_json)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// The algorithms for which a device has a fallback key not handed out yet.
    pub async fn unused_fallback_key_types(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT algorithm FROM fallback_keys WHERE user_id = $1 AND device_id = $2 AND used = 0 \
             ORDER BY algorithm",
        )
        .bind(user_id)
        .bind(device_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Takes one one-time key of `algorithm` from a device, removing it; when none is left, the
    /// device's fallback key, marked used (it stays, and is handed out again until replaced).
    pub async fn claim_one_time_key(
        &self,
        user_id: &str,
        device_id: &str,
        algorithm: &str,
    ) -> Result<Option<OneTimeKeyRow>> {
        // Two claims racing on PostgreSQL may pick the same key; the loser deletes nothing and
        // tries the next one.
        for _ in 0..8 {
            let taken = sqlx::query(
                "DELETE FROM one_time_keys WHERE user_id = $1 AND device_id = $2 AND key_id = \
                 (SELECT key_id FROM one_time_keys WHERE user_id = $1 AND device_id = $2 \
                  AND algorithm = $3 ORDER BY key_id LIMIT 1) RETURNING key_id, key_json",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(algorithm)
            .fetch_optional(&self.writer)
            .await?;
            if let Some(r) = taken {
                return Ok(Some(OneTimeKeyRow {
                    algorithm: algorithm.to_owned(),
                    key_id: r.try_get(0)?,
                    key_json: r.try_get(1)?,
                }));
            }
            let left: i64 = sqlx::query(
                "SELECT COUNT(*) FROM one_time_keys WHERE user_id = $1 AND device_id = $2 \
                 AND algorithm = $3",
            )
            .bind(user_id)
            .bind(device_id)
            .bind(algorithm)
            .fetch_one(&self.writer)
            .await?
            .try_get(0)?;
            if left == 0 {
                break;
            }
        }
        let fallback = sqlx::query(
            "UPDATE fallback_keys SET used = 1 WHERE user_id = $1 AND device_id = $2 \
             AND algorithm = $3 RETURNING key_id, key_json",
        )
        .bind(user_id)
        .bind(device_id)
        .bind(algorithm)
        .fetch_optional(&self.writer)
        .await?;
        fallback
            .map(|r| {
                Ok(OneTimeKeyRow {
                    algorithm: algorithm.to_owned(),
                    key_id: r.try_get(0)?,
                    key_json: r.try_get(1)?,
                })
            })
            .transpose()
    }

    /// A user's cross-signing keys, as `(key_type, key_json)`.
    pub async fn cross_signing_keys(&self, user_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT key_type, key_json FROM cross_signing_keys WHERE user_id = $1 ORDER BY key_type",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Stores cross-signing keys `(key_type, key_json)` and records a device-list change of
    /// `user_id` at `stream_id`. A new master key drops the signatures made over the old keys.
    pub async fn set_cross_signing_keys(
        &self,
        user_id: &str,
        keys: &[(String, String)],
        stream_id: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for (key_type, key_json) in keys {
            sqlx::query(
                "INSERT INTO cross_signing_keys (user_id, key_type, key_json) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id, key_type) DO UPDATE SET key_json = $3",
            )
            .bind(user_id)
            .bind(key_type)
            .bind(key_json)
            .execute(&mut *tx)
            .await?;
        }
        record_change(&mut tx, user_id, stream_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores signatures over keys of `target_user_id` and records a device-list change of the
    /// target at `stream_id`.
    pub async fn add_key_signatures(
        &self,
        target_user_id: &str,
        signatures: &[KeySignatureRow],
        stream_id: i64,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for s in signatures {
            sqlx::query(
                "INSERT INTO key_signatures \
                 (target_user_id, target_key_id, signer_user_id, signer_key_id, signature) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT \
                 (target_user_id, target_key_id, signer_user_id, signer_key_id) \
                 DO UPDATE SET signature = $5",
            )
            .bind(target_user_id)
            .bind(&s.target_key_id)
            .bind(&s.signer_user_id)
            .bind(&s.signer_key_id)
            .bind(&s.signature)
            .execute(&mut *tx)
            .await?;
        }
        record_change(&mut tx, target_user_id, stream_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Signatures uploaded over any key of `target_user_id`.
    pub async fn key_signatures(&self, target_user_id: &str) -> Result<Vec<KeySignatureRow>> {
        let rows = sqlx::query(
            "SELECT target_key_id, signer_user_id, signer_key_id, signature FROM key_signatures \
             WHERE target_user_id = $1 ORDER BY target_key_id, signer_user_id, signer_key_id",
        )
        .bind(target_user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(KeySignatureRow {
                    target_key_id: r.try_get(0)?,
                    signer_user_id: r.try_get(1)?,
                    signer_key_id: r.try_get(2)?,
                    signature: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Records a change of a user's device list (a device deleted) at `stream_id`.
    pub async fn record_device_list_change(&self, user_id: &str, stream_id: i64) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        record_change(&mut tx, user_id, stream_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Users whose device list changed after `after`, up to and including `upto`.
    pub async fn device_list_changes(&self, after: i64, upto: i64) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT user_id FROM device_list_changes WHERE stream_id > $1 AND stream_id <= $2 \
             ORDER BY user_id",
        )
        .bind(after)
        .bind(upto)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }
}

async fn record_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    stream_id: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO device_list_changes (stream_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(stream_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
