//! Tables `media`, `media_thumbnails` and `url_previews`: what the media repository knows about
//! the files it keeps under `media_store_path`.

use sqlx::{Row, any::AnyRow};

use super::{Result, Store, StoreError};

/// One `mxc://origin/media_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaRow {
    pub origin: String,
    pub media_id: String,
    pub user_id: Option<String>,
    pub content_type: Option<String>,
    pub file_name: Option<String>,
    /// `None` while an async upload awaits its bytes.
    pub sha256: Option<String>,
    pub size: Option<i64>,
    pub created_ts: i64,
    pub unused_expires_ts: Option<i64>,
    pub authenticated: bool,
}

/// A cached thumbnail of some content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThumbnailRow {
    pub content_type: String,
    pub sha256: String,
    pub size: i64,
}

const MEDIA_COLUMNS: &str = "origin, media_id, user_id, content_type, file_name, sha256, size, \
                             created_ts, unused_expires_ts, authenticated";

fn media_row(r: &AnyRow) -> Result<MediaRow> {
    Ok(MediaRow {
        origin: r.try_get(0)?,
        media_id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        content_type: r.try_get(3)?,
        file_name: r.try_get(4)?,
        sha256: r.try_get(5)?,
        size: r.try_get(6)?,
        created_ts: r.try_get(7)?,
        unused_expires_ts: r.try_get(8)?,
        authenticated: r.try_get::<i64, _>(9)? != 0,
    })
}

impl Store {
    /// Records a media row; `StoreError::Conflict` if the id is taken.
    pub async fn insert_media(&self, row: &MediaRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO media (origin, media_id, user_id, content_type, file_name, sha256, size, \
             created_ts, uploaded_ts, unused_expires_ts, authenticated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&row.origin)
        .bind(&row.media_id)
        .bind(&row.user_id)
        .bind(&row.content_type)
        .bind(&row.file_name)
        .bind(&row.sha256)
        .bind(row.size)
        .bind(row.created_ts)
        .bind(row.sha256.as_ref().map(|_| row.created_ts))
        .bind(row.unused_expires_ts)
        .bind(i64::from(row.authenticated))
        .execute(&self.writer)
        .await
        .map_err(StoreError::from_write)?;
        Ok(())
    }

    pub async fn media(&self, origin: &str, media_id: &str) -> Result<Option<MediaRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MEDIA_COLUMNS} FROM media WHERE origin = $1 AND media_id = $2"
        )))
        .bind(origin)
        .bind(media_id)
        .fetch_optional(&self.reader)
        .await?;
        row.as_ref().map(media_row).transpose()
    }

    /// Fills in the bytes (`sha256`, `size`), type and name of a pending async upload from
    /// `row`. False if it was not pending any more (another request won the race), so the caller
    /// answers `M_CANNOT_OVERWRITE_MEDIA`.
    pub async fn complete_pending_media(&self, row: &MediaRow, uploaded_ts: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE media SET content_type = $3, file_name = $4, sha256 = $5, size = $6, \
             uploaded_ts = $7, unused_expires_ts = NULL \
             WHERE origin = $1 AND media_id = $2 AND sha256 IS NULL",
        )
        .bind(&row.origin)
        .bind(&row.media_id)
        .bind(&row.content_type)
        .bind(&row.file_name)
        .bind(&row.sha256)
        .bind(row.size)
        .bind(uploaded_ts)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many async uploads a user has created and not yet filled that have not expired.
    pub async fn count_pending_media(&self, user_id: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM media WHERE user_id = $1 AND sha256 IS NULL \
             AND unused_expires_ts > $2",
        )
        .bind(user_id)
        .bind(now)
        .fetch_one(&self.reader)
        .await?
        .try_get(0)?)
    }

    pub async fn thumbnail(
        &self,
        source_sha256: &str,
        width: u32,
        height: u32,
        method: &str,
    ) -> Result<Option<ThumbnailRow>> {
        let row = sqlx::query(
            "SELECT content_type, sha256, size FROM media_thumbnails \
             WHERE source_sha256 = $1 AND width = $2 AND height = $3 AND method = $4",
        )
        .bind(source_sha256)
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(method)
        .fetch_optional(&self.reader)
        .await?;
        row.map(|r| {
            Ok(ThumbnailRow {
                content_type: r.try_get(0)?,
                sha256: r.try_get(1)?,
                size: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Remembers a thumbnail; a concurrent request that made the same one first wins quietly.
    pub async fn insert_thumbnail(
        &self,
        source_sha256: &str,
        width: u32,
        height: u32,
        method: &str,
        thumb: &ThumbnailRow,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO media_thumbnails \
             (source_sha256, width, height, method, content_type, sha256, size) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (source_sha256, width, height, method) DO NOTHING",
        )
        .bind(source_sha256)
        .bind(i64::from(width))
        .bind(i64::from(height))
        .bind(method)
        .bind(&thumb.content_type)
        .bind(&thumb.sha256)
        .bind(thumb.size)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// A cached preview (OpenGraph JSON text) that has not expired at `now`.
    pub async fn url_preview(&self, url: &str, now: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT og FROM url_previews WHERE url = $1 AND expires_ts > $2")
            .bind(url)
            .bind(now)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub async fn set_url_preview(
        &self,
        url: &str,
        og: &str,
        fetched_ts: i64,
        expires_ts: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO url_previews (url, og, fetched_ts, expires_ts) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (url) DO UPDATE SET og = $2, fetched_ts = $3, expires_ts = $4",
        )
        .bind(url)
        .bind(og)
        .bind(fetched_ts)
        .bind(expires_ts)
        .execute(&self.writer)
        .await?;
        Ok(())
    }
}
