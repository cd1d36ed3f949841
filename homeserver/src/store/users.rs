//! Table `users`: accounts and their profile.

use sqlx::{AssertSqlSafe, Row};

use super::{Result, Store, StoreError, now_ms};

/// One account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub is_guest: bool,
    pub deactivated: bool,
    pub displayname: Option<String>,
    pub avatar_url: Option<String>,
    pub appservice_id: Option<String>,
}

/// What creating an account needs.
#[derive(Clone, Debug, Default)]
pub struct NewUser<'a> {
    pub user_id: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
    pub is_guest: bool,
    pub displayname: Option<&'a str>,
    pub appservice_id: Option<&'a str>,
}

const COLUMNS: &str = "user_id, password_hash, is_admin, is_guest, deactivated, displayname, avatar_url, appservice_id";

fn row_to_user(row: &sqlx::any::AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        user_id: row.try_get(0)?,
        password_hash: row.try_get(1)?,
        is_admin: row.try_get::<i64, _>(2)? != 0,
        is_guest: row.try_get::<i64, _>(3)? != 0,
        deactivated: row.try_get::<i64, _>(4)? != 0,
        displayname: row.try_get(5)?,
        avatar_url: row.try_get(6)?,
        appservice_id: row.try_get(7)?,
    })
}

impl Store {
    /// Creates an account; [`StoreError::Conflict`] when the id is taken.
    pub async fn create_user(&self, user: &NewUser<'_>) -> Result<()> {
        sqlx::query(
            "INSERT INTO users (user_id, password_hash, is_admin, is_guest, displayname, \
             appservice_id, created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.user_id)
        .bind(user.password_hash)
        .bind(i64::from(user.is_admin))
        .bind(i64::from(user.is_guest))
        .bind(user.displayname)
        .bind(user.appservice_id)
        .bind(now_ms())
        .execute(&self.writer)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    pub async fn user(&self, user_id: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE user_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(row_to_user).transpose()
    }

    pub async fn user_exists(&self, user_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.is_some())
    }

    pub async fn count_users(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await?;
        Ok(row.try_get(0)?)
    }

    pub async fn set_password_hash(&self, user_id: &str, hash: &str) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(hash)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn set_displayname(&self, user_id: &str, name: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE users SET displayname = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(name)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    pub async fn set_avatar_url(&self, user_id: &str, url: Option<&str>) -> Result<()> {
        sqlx::query("UPDATE users SET avatar_url = $2 WHERE user_id = $1")
            .bind(user_id)
            .bind(url)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Marks the account deactivated, clears its password and profile, and removes every device
    /// with its tokens, keys and pending to-device messages, in one transaction.
    pub async fn deactivate_user(&self, user_id: &str) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE users SET deactivated = 1, password_hash = NULL, displayname = NULL, \
             avatar_url = NULL WHERE user_id = $1",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        for table in super::devices::DEVICE_TABLES {
            sqlx::query(AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = $1"
            )))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.tokens.invalidate();
        Ok(())
    }
}

impl Store {
    /// Active accounts whose id or displayname contains `term` (case-insensitive).
    pub async fn search_users(&self, term: &str, limit: i64) -> Result<Vec<UserRow>> {
        let pattern = format!("%{}%", term.to_lowercase().replace(['\\', '%', '_'], ""));
        let sql = format!(
            "SELECT {COLUMNS} FROM users WHERE deactivated = 0 AND is_guest = 0 AND \
             (LOWER(user_id) LIKE $1 OR LOWER(COALESCE(displayname, '')) LIKE $1) ORDER BY user_id LIMIT $2"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(pattern)
            .bind(limit)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(row_to_user).collect()
    }
}
