//! The media repository: uploads (direct and async), downloads, thumbnails, URL previews.
//!
//! Bytes live in [`files`] (content-addressed: identical content is stored once), metadata in the
//! `media` table. Uploads stream to disk and are never held in memory whole. Thumbnails are made
//! on the blocking pool, at most `max_thumbnail_workers` at a time, each under the decoder limits
//! of [`thumbnail`]. Remote media (over federation) is not fetched yet: [`Services::local_media_only`]
//! is the one place that decides.

mod files;
mod preview;
mod thumbnail;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::Stream;
use ruma::api::error::ErrorKind;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

pub use preview::{Blacklist, IpRange};
pub use thumbnail::Method;

use crate::{
    config::Config,
    error::{Error, Result},
    service::Services,
    store::{MediaRow, ThumbnailRow, now_ms},
};
use files::{Files, StoreFileError};
use preview::{Fetcher, PreviewError};
use thumbnail::{Thumbnail, ThumbnailError};

/// An async upload (`/create`) must receive its bytes within this time, as Synapse's default.
const UNUSED_EXPIRATION: Duration = Duration::from_secs(24 * 3600);
/// Async uploads a user may have waiting at once, as Synapse's default.
const MAX_PENDING_UPLOADS: i64 = 5;
/// The longest a download waits for an async upload's bytes (`timeout_ms` is capped to this).
const MAX_DOWNLOAD_WAIT: Duration = Duration::from_secs(60);
/// How long a URL preview is reused.
const PREVIEW_TTL_MS: i64 = 3600 * 1000;
/// The most of a page we read to preview it.
const MAX_PREVIEW_PAGE: usize = 4 * 1024 * 1024;

/// State of the media repository. Cheap to share behind `Services`.
pub struct Media {
    files: Files,
    thumbnailers: Arc<Semaphore>,
    fetcher: Option<Fetcher>,
}

impl Media {
    pub fn new(config: &Config) -> Self {
        let fetcher = config.url_preview_enabled.then(|| {
            Fetcher::new(Blacklist::new(
                config.url_preview_ip_range_blacklist.as_deref(),
            ))
        });
        let files = Files::new(&config.media_store_path);
        let swept = files.remove_stale_temp_files(Duration::from_secs(24 * 3600));
        if swept > 0 {
            tracing::info!(
                swept,
                "removed temp files of uploads interrupted by a restart"
            );
        }
        Self {
            files,
            thumbnailers: Arc::new(Semaphore::new(config.max_thumbnail_workers)),
            fetcher,
        }
    }
}

/// What the uploader told us about a file.
#[derive(Clone, Debug, Default)]
pub struct UploadInfo<'a> {
    pub content_type: Option<&'a str>,
    pub file_name: Option<&'a str>,
    /// The `Content-Length` the client announced, to refuse an oversized upload before reading it.
    pub declared_length: Option<u64>,
}

/// Which route a download came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `/_matrix/client/v1/media/*`, with an access token.
    Authenticated,
    /// `/_matrix/media/v3/*`, without one: only media from before authenticated media was on.
    Legacy,
}

/// Content ready to send: an open file and what to say about it.
#[derive(Debug)]
pub struct Content {
    pub file: tokio::fs::File,
    pub size: u64,
    pub content_type: String,
    pub file_name: Option<String>,
}

/// A thumbnail request.
#[derive(Clone, Copy, Debug)]
pub struct ThumbnailRequest {
    pub width: u32,
    pub height: u32,
    pub method: Method,
}

impl Services {
    /// Remote media arrives with federation. Until then, a media id of another server is
    /// `M_NOT_FOUND`; this is the one place that will learn to fetch it.
    pub fn local_media_only(&self, server_name: &str) -> Result<()> {
        if server_name == self.config.server_name {
            Ok(())
        } else {
            Err(Error::not_found(
                "Remote media is not available on this server yet",
            ))
        }
    }

    fn mxc(&self, media_id: &str) -> String {
        format!("mxc://{}/{media_id}", self.config.server_name)
    }

    /// `POST /upload`: streams the body to the store and returns the new `mxc://` URI.
    pub async fn upload_media<S, E>(
        &self,
        user_id: &str,
        info: UploadInfo<'_>,
        body: S,
    ) -> Result<String>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let stored = self.store_upload(&info, body).await?;
        let media_id = new_media_id();
        let now = now_ms();
        self.store
            .insert_media(&MediaRow {
                origin: self.config.server_name.clone(),
                media_id: media_id.clone(),
                user_id: Some(user_id.to_owned()),
                content_type: info.content_type.map(str::to_owned),
                file_name: info.file_name.map(str::to_owned),
                sha256: Some(stored.sha256.clone()),
                size: Some(stored.size as i64),
                created_ts: now,
                unused_expires_ts: None,
                authenticated: self.config.enable_authenticated_media,
            })
            .await?;
        tracing::info!(
            user_id,
            media_id,
            size = stored.size,
            sha256 = %stored.sha256,
            content_type = info.content_type,
            "media uploaded"
        );
        Ok(self.mxc(&media_id))
    }

    /// `POST /_matrix/media/v1/create`: reserves an `mxc://` URI for bytes to come; returns it and
    /// when it expires unused.
    pub async fn create_pending_media(&self, user_id: &str) -> Result<(String, i64)> {
        let now = now_ms();
        if self.store.count_pending_media(user_id, now).await? >= MAX_PENDING_UPLOADS {
            tracing::info!(user_id, "async upload refused: too many pending");
            return Err(Error::limit_exceeded(Duration::from_secs(60)));
        }
        let media_id = new_media_id();
        let expires = now + UNUSED_EXPIRATION.as_millis() as i64;
        self.store
            .insert_media(&MediaRow {
                origin: self.config.server_name.clone(),
                media_id: media_id.clone(),
                user_id: Some(user_id.to_owned()),
                content_type: None,
                file_name: None,
                sha256: None,
                size: None,
                created_ts: now,
                unused_expires_ts: Some(expires),
                authenticated: self.config.enable_authenticated_media,
            })
            .await?;
        tracing::info!(user_id, media_id, "async upload created");
        Ok((self.mxc(&media_id), expires))
    }

    /// `PUT /_matrix/media/v3/upload/{serverName}/{mediaId}`: the bytes of an async upload.
    pub async fn upload_pending_media<S, E>(
        &self,
        user_id: &str,
        server_name: &str,
        media_id: &str,
        info: UploadInfo<'_>,
        body: S,
    ) -> Result<()>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        if server_name != self.config.server_name || !valid_media_id(media_id) {
            return Err(Error::not_found("Unknown media ID"));
        }
        let row = self
            .store
            .media(server_name, media_id)
            .await?
            .filter(|r| r.sha256.is_some() || r.unused_expires_ts.is_some_and(|t| t > now_ms()))
            .ok_or_else(|| Error::not_found("Unknown or expired media ID"))?;
        if row.user_id.as_deref() != Some(user_id) {
            return Err(Error::forbidden(
                "This media ID was created by another user",
            ));
        }
        if row.sha256.is_some() {
            return Err(cannot_overwrite());
        }
        let stored = self.store_upload(&info, body).await?;
        let completed = MediaRow {
            content_type: info.content_type.map(str::to_owned),
            file_name: info.file_name.map(str::to_owned),
            sha256: Some(stored.sha256.clone()),
            size: Some(stored.size as i64),
            ..row
        };
        let done = self
            .store
            .complete_pending_media(&completed, now_ms())
            .await?;
        if !done {
            return Err(cannot_overwrite());
        }
        tracing::info!(
            user_id,
            media_id,
            size = stored.size,
            "async upload completed"
        );
        Ok(())
    }

    async fn store_upload<S, E>(&self, info: &UploadInfo<'_>, body: S) -> Result<files::Stored>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let limit = self.config.max_upload_size.0;
        if info.declared_length.is_some_and(|l| l > limit) {
            return Err(too_large(limit));
        }
        self.media
            .files
            .store_stream(body, limit)
            .await
            .map_err(|e| match e {
                StoreFileError::TooLarge(limit) => too_large(limit),
                StoreFileError::Body(m) => Error::new(ErrorKind::Unknown, m),
                StoreFileError::Io(e) => Error::internal(format!("media store: {e}")),
            })
    }

    /// The row of a local media id that has its bytes, waiting up to `wait` for an async upload.
    async fn uploaded_media(
        &self,
        server_name: &str,
        media_id: &str,
        access: Access,
        wait: Duration,
    ) -> Result<MediaRow> {
        self.local_media_only(server_name)?;
        if !valid_media_id(media_id) {
            return Err(Error::not_found("Unknown media ID"));
        }
        let deadline = tokio::time::Instant::now() + wait.min(MAX_DOWNLOAD_WAIT);
        loop {
            let row = self
                .store
                .media(server_name, media_id)
                .await?
                .ok_or_else(|| Error::not_found("Media not found"))?;
            if access == Access::Legacy && row.authenticated {
                // The spec's freeze: new media only on the authenticated routes.
                return Err(Error::not_found("Media not found"));
            }
            if row.sha256.is_some() {
                return Ok(row);
            }
            if row.unused_expires_ts.is_some_and(|t| t <= now_ms()) {
                return Err(Error::not_found("Media not found"));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::NotYetUploaded,
                    "Media has not been uploaded yet",
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The bytes of `mxc://server_name/media_id`.
    pub async fn media_content(
        &self,
        server_name: &str,
        media_id: &str,
        access: Access,
        wait: Duration,
    ) -> Result<Content> {
        let row = self
            .uploaded_media(server_name, media_id, access, wait)
            .await?;
        self.open_content(
            row.sha256.as_deref().unwrap_or_default(),
            row.content_type.unwrap_or_else(octet_stream),
            row.file_name,
        )
        .await
    }

    async fn open_content(
        &self,
        sha256: &str,
        content_type: String,
        file_name: Option<String>,
    ) -> Result<Content> {
        let file = self.media.files.open(sha256).await.map_err(|e| {
            Error::internal(format!("media file {sha256} missing from the store: {e}"))
        })?;
        let size = file
            .metadata()
            .await
            .map_err(|e| Error::internal(format!("media file {sha256}: {e}")))?
            .len();
        Ok(Content {
            file,
            size,
            content_type,
            file_name,
        })
    }

    /// A thumbnail of `mxc://server_name/media_id`, made once per content and size, then reused.
    pub async fn media_thumbnail(
        &self,
        server_name: &str,
        media_id: &str,
        request: ThumbnailRequest,
        access: Access,
        wait: Duration,
    ) -> Result<Content> {
        if request.width == 0 || request.height == 0 {
            return Err(Error::invalid_param("width and height must be positive"));
        }
        let row = self
            .uploaded_media(server_name, media_id, access, wait)
            .await?;
        let sha256 = row.sha256.clone().unwrap_or_default();
        let original = |row: MediaRow| {
            self.open_content(
                &sha256,
                row.content_type.unwrap_or_else(octet_stream),
                row.file_name,
            )
        };
        let Some((width, height)) =
            thumbnail::choose_size(request.width, request.height, request.method)
        else {
            return original(row).await;
        };
        let method = request.method.as_str();
        if let Some(t) = self.store.thumbnail(&sha256, width, height, method).await? {
            return self.open_content(&t.sha256, t.content_type, None).await;
        }
        let made = self
            .make_thumbnail(&sha256, width, height, request.method)
            .await;
        match made {
            Ok(Thumbnail::Original) => original(row).await,
            Ok(Thumbnail::Made {
                bytes,
                content_type,
            }) => {
                let stored = self
                    .media
                    .files
                    .store_bytes(&bytes)
                    .await
                    .map_err(|e| Error::internal(format!("storing a thumbnail: {e}")))?;
                let thumb = ThumbnailRow {
                    content_type: content_type.to_owned(),
                    sha256: stored.sha256,
                    size: stored.size as i64,
                };
                self.store
                    .insert_thumbnail(&sha256, width, height, method, &thumb)
                    .await?;
                tracing::debug!(media_id, width, height, method, "thumbnail made");
                self.open_content(&thumb.sha256, thumb.content_type, None)
                    .await
            }
            Err(e) => {
                tracing::info!(media_id, error = %e, "no thumbnail");
                Err(match e {
                    ThumbnailError::TooLarge { .. } => Error::new(
                        ErrorKind::TooLarge,
                        format!("Content is too large to thumbnail: {e}"),
                    ),
                    ThumbnailError::Unsupported | ThumbnailError::Corrupt(_) => Error::new(
                        ErrorKind::Unknown,
                        format!("Cannot generate thumbnails for the requested content: {e}"),
                    ),
                    ThumbnailError::Io(e) => Error::internal(format!("thumbnailing: {e}")),
                })
            }
        }
    }

    /// Runs the decoder on the blocking pool, at most `max_thumbnail_workers` at once.
    async fn make_thumbnail(
        &self,
        sha256: &str,
        width: u32,
        height: u32,
        method: Method,
    ) -> Result<Thumbnail, ThumbnailError> {
        let _permit = self
            .media
            .thumbnailers
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let path = self.media.files.path(sha256);
        let max_pixels = self.config.max_image_pixels.0;
        tokio::task::spawn_blocking(move || {
            thumbnail::make(&path, width, height, method, max_pixels)
        })
        .await
        .unwrap_or_else(|e| {
            Err(ThumbnailError::Corrupt(format!(
                "the decoder panicked: {e}"
            )))
        })
    }

    /// `GET /_matrix/client/v1/media/preview_url`: the page's OpenGraph data, its image stored as
    /// media of `user_id`. Cached for an hour for everyone.
    pub async fn preview_url(&self, user_id: &str, url: &str) -> Result<Map<String, Value>> {
        let Some(fetcher) = &self.media.fetcher else {
            return Err(Error::unrecognized(
                "URL previews are disabled on this server",
            ));
        };
        let now = now_ms();
        if let Some(cached) = self.store.url_preview(url, now).await?
            && let Ok(Value::Object(og)) = serde_json::from_str(&cached)
        {
            return Ok(og);
        }
        let page = fetcher
            .fetch(url, MAX_PREVIEW_PAGE)
            .await
            .map_err(|e| preview_error(url, user_id, e))?;
        let mut og = Map::new();
        let media_type = page
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if media_type == "text/html" || media_type == "application/xhtml+xml" {
            let html = String::from_utf8_lossy(&page.body);
            og = preview::opengraph(&html, &page.url);
            if let Some(Value::String(image_url)) = og.remove("og:image") {
                match self.preview_image(fetcher, user_id, &image_url).await {
                    Ok(image) => og.extend(image),
                    Err(e) => tracing::info!(url, image_url, error = %e, "preview image skipped"),
                }
            }
        } else if media_type.starts_with("image/") {
            og = self
                .store_preview_image(user_id, &page.body, &media_type)
                .await?;
        }
        og.entry("og:url")
            .or_insert_with(|| Value::String(page.url.to_string()));
        self.store
            .set_url_preview(
                url,
                &Value::Object(og.clone()).to_string(),
                now,
                now + PREVIEW_TTL_MS,
            )
            .await?;
        tracing::info!(user_id, url, "URL previewed");
        Ok(og)
    }

    async fn preview_image(
        &self,
        fetcher: &Fetcher,
        user_id: &str,
        image_url: &str,
    ) -> Result<Map<String, Value>> {
        let limit = usize::try_from(self.config.max_upload_size.0).unwrap_or(usize::MAX);
        let image = fetcher
            .fetch(image_url, limit.min(MAX_PREVIEW_PAGE * 4))
            .await
            .map_err(|e| preview_error(image_url, user_id, e))?;
        let media_type = image
            .content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        self.store_preview_image(user_id, &image.body, &media_type)
            .await
    }

    /// Stores a previewed image as media and describes it the way the spec's preview response does.
    async fn store_preview_image(
        &self,
        user_id: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> Result<Map<String, Value>> {
        let Ok(format) = image::guess_format(bytes) else {
            return Ok(Map::new());
        };
        let content_type = if content_type.starts_with("image/") {
            content_type.to_owned()
        } else {
            format.to_mime_type().to_owned()
        };
        let chunk = Bytes::copy_from_slice(bytes);
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(chunk) });
        let info = UploadInfo {
            content_type: Some(&content_type),
            ..UploadInfo::default()
        };
        let mxc = self.upload_media(user_id, info, stream).await?;
        let mut og = Map::new();
        og.insert("og:image".to_owned(), Value::String(mxc));
        og.insert("og:image:type".to_owned(), Value::String(content_type));
        og.insert(
            "matrix:image:size".to_owned(),
            Value::from(bytes.len() as u64),
        );
        // Only the header is read here: no decoding of an image nobody asked to thumbnail.
        let reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
        if let Ok((w, h)) = reader.into_dimensions() {
            og.insert("og:image:width".to_owned(), Value::from(w));
            og.insert("og:image:height".to_owned(), Value::from(h));
        }
        Ok(og)
    }
}

fn preview_error(url: &str, user_id: &str, err: PreviewError) -> Error {
    tracing::info!(user_id, url, error = %err, "URL preview failed");
    match err {
        PreviewError::Blocked(m) => Error::forbidden(m),
        PreviewError::BadUrl(m) => Error::invalid_param(m),
        PreviewError::TooLarge(_) => Error::new(ErrorKind::TooLarge, err.to_string()),
        PreviewError::Fetch(_) | PreviewError::Status(_) => {
            Error::new(ErrorKind::ConnectionFailed, err.to_string())
        }
    }
}

fn too_large(limit: u64) -> Error {
    Error::new(
        ErrorKind::TooLarge,
        format!("Upload is larger than the limit of {limit} bytes"),
    )
}

fn cannot_overwrite() -> Error {
    Error::new(
        ErrorKind::CannotOverwriteMedia,
        "Media ID already has content",
    )
}

fn octet_stream() -> String {
    "application/octet-stream".to_owned()
}

/// The spec allows only `A-Za-z0-9_-` in media ids: anything else could traverse paths.
pub fn valid_media_id(media_id: &str) -> bool {
    !media_id.is_empty()
        && media_id.len() <= 255
        && media_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn new_media_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}
