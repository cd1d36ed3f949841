//! Tables `access_tokens` and `refresh_tokens`. Only hashes of tokens are stored.

use std::{collections::HashMap, sync::Mutex};

use sqlx::{AssertSqlSafe, Row};

use super::{Result, Store, StoreError};

/// Most access tokens remembered in memory; past it the cache starts over.
const TOKEN_CACHE_CAPACITY: usize = 100_000;

/// Access tokens already looked up, so an authenticated request costs no query. Every write that
/// removes or replaces tokens empties it; a lookup that raced with such a write is not cached
/// (the generation tells), so a logged-out token is never answered from here.
#[derive(Debug, Default)]
pub(super) struct TokenCache {
    inner: Mutex<TokenCacheInner>,
}

#[derive(Debug, Default)]
struct TokenCacheInner {
    generation: u64,
    rows: HashMap<String, TokenRow>,
}

impl TokenCache {
    fn get(&self, token_hash: &str) -> (Option<TokenRow>, u64) {
        let inner = self.inner.lock().expect("token cache poisoned");
        (inner.rows.get(token_hash).cloned(), inner.generation)
    }

    fn insert(&self, token_hash: &str, row: &TokenRow, generation: u64) {
        let mut inner = self.inner.lock().expect("token cache poisoned");
        if inner.generation != generation {
            return;
        }
        if inner.rows.len() >= TOKEN_CACHE_CAPACITY {
            inner.rows.clear();
        }
        inner.rows.insert(token_hash.to_owned(), row.clone());
    }

    /// Forgets every token; called after any write that removes tokens.
    pub(super) fn invalidate(&self) {
        let mut inner = self.inner.lock().expect("token cache poisoned");
        inner.generation += 1;
        inner.rows.clear();
    }
}

/// Who an access token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub user_id: String,
    pub device_id: String,
    pub expires_ts: Option<i64>,
}

/// A new login: the device (created or replaced) and its tokens.
#[derive(Clone, Debug)]
pub struct NewSession<'a> {
    pub user_id: &'a str,
    pub device_id: &'a str,
    pub device_display_name: Option<&'a str>,
    pub access_token_hash: &'a str,
    pub expires_ts: Option<i64>,
    pub refresh_token_hash: Option<&'a str>,
    pub ts: i64,
    pub ip: &'a str,
}

impl Store {
    /// Creates (or takes over) a device and issues its tokens. Logging in again with an existing
    /// device id invalidates the device's previous tokens, as the spec asks.
    pub async fn create_session(&self, s: &NewSession<'_>) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for table in ["access_tokens", "refresh_tokens"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1 AND device_id = $2"
            )))
            .bind(s.user_id)
            .bind(s.device_id)
            .execute(&mut *tx)
            .await?;
        }
        let existing = sqlx::query("SELECT 1 FROM devices WHERE user_id = $1 AND device_id = $2")
            .bind(s.user_id)
            .bind(s.device_id)
            .fetch_optional(&mut *tx)
            .await?;
        if existing.is_none() {
            sqlx::query(
                "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts, last_seen_ip) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(s.user_id)
            .bind(s.device_id)
            .bind(s.device_display_name)
            .bind(s.ts)
            .bind(s.ip)
            .execute(&mut *tx)
            .await?;
        } else if s.device_display_name.is_some() {
            sqlx::query(
                "UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2",
            )
            .bind(s.user_id)
            .bind(s.device_id)
            .bind(s.device_display_name)
            .execute(&mut *tx)
            .await?;
        }
        insert_tokens(
            &mut tx,
            s.user_id,
            s.device_id,
            s.access_token_hash,
            s.expires_ts,
            s.refresh_token_hash,
        )
        .await?;
        tx.commit().await?;
        self.tokens.invalidate();
        Ok(())
    }

    pub async fn access_token(&self, token_hash: &str) -> Result<Option<TokenRow>> {
        let (cached, generation) = self.tokens.get(token_hash);
        if cached.is_some() {
            return Ok(cached);
        }
        let row = sqlx::query(
            "SELECT user_id, device_id, expires_ts FROM access_tokens WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.reader)
        .await?;
        let row = row
            .map(|r| {
                Ok::<_, StoreError>(TokenRow {
                    user_id: r.try_get(0)?,
                    device_id: r.try_get(1)?,
                    expires_ts: r.try_get(2)?,
                })
            })
            .transpose()?;
        if let Some(row) = &row {
            self.tokens.insert(token_hash, row, generation);
        }
        Ok(row)
    }

    /// Swaps a refresh token for new tokens. Returns the owner, or `None` when the refresh token
    /// is unknown (already used, or the device was logged out).
    pub async fn rotate_refresh_token(
        &self,
        old_refresh_hash: &str,
        access_token_hash: &str,
        expires_ts: i64,
        refresh_token_hash: &str,
    ) -> Result<Option<(String, String)>> {
        let mut tx = self.writer.begin().await?;
        let Some(row) =
            sqlx::query("SELECT user_id, device_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(old_refresh_hash)
                .fetch_optional(&mut *tx)
                .await?
        else {
            return Ok(None);
        };
        let user_id: String = row.try_get(0)?;
        let device_id: String = row.try_get(1)?;
        for table in ["access_tokens", "refresh_tokens"] {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1 AND device_id = $2"
            )))
            .bind(&user_id)
            .bind(&device_id)
            .execute(&mut *tx)
            .await?;
        }
        insert_tokens(
            &mut tx,
            &user_id,
            &device_id,
            access_token_hash,
            Some(expires_ts),
            Some(refresh_token_hash),
        )
        .await?;
        tx.commit().await?;
        self.tokens.invalidate();
        Ok(Some((user_id, device_id)))
    }

    /// Removes one device's tokens and the device itself (logout).
    pub async fn delete_device(&self, user_id: &str, device_id: &str) -> Result<()> {
        self.delete_devices(user_id, &[device_id.to_owned()]).await
    }

    /// Removes every device of a user except, optionally, one, with their tokens, keys and
    /// pending to-device messages.
    pub async fn delete_all_devices(&self, user_id: &str, keep_device: Option<&str>) -> Result<()> {
        let keep = keep_device.unwrap_or("");
        let mut tx = self.writer.begin().await?;
        for table in super::devices::DEVICE_TABLES {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1 AND device_id <> $2"
            )))
            .bind(user_id)
            .bind(keep)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.tokens.invalidate();
        Ok(())
    }
}

async fn insert_tokens(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    device_id: &str,
    access_hash: &str,
    expires_ts: Option<i64>,
    refresh_hash: Option<&str>,
) -> Result<()> {
    sqlx::query("INSERT INTO access_tokens (token_hash, user_id, device_id, expires_ts) VALUES ($1, $2, $3, $4)")
        .bind(access_hash)
        .bind(user_id)
        .bind(device_id)
        .bind(expires_ts)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    if let Some(refresh_hash) = refresh_hash {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, user_id, device_id) VALUES ($1, $2, $3)",
        )
        .bind(refresh_hash)
        .bind(user_id)
        .bind(device_id)
        .execute(&mut **tx)
        .await
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}
