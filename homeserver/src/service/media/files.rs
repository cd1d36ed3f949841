//! The bytes on disk: content-addressed files under `media_store_path`.
//!
//! A file's name is the sha256 of its bytes (`content/ab/cd/abcd…`), so identical uploads, and
//! identical thumbnails, are stored once. An upload streams into `tmp/` while it is hashed and
//! counted, and is renamed into place only when complete: a reader never sees a partial file, and
//! an aborted or oversized upload leaves nothing behind.

use std::path::PathBuf;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Why storing a stream failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreFileError {
    #[error("the content is larger than {0} bytes")]
    TooLarge(u64),
    #[error("reading the upload failed: {0}")]
    Body(String),
    #[error("writing the media store failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A file now in the store.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

/// The media store directory.
#[derive(Debug)]
pub(crate) struct Files {
    root: PathBuf,
}

impl Files {
    pub(crate) fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where the content with this hash lives. `sha256` is always our own lowercase hex, never
    /// client input, so it cannot traverse out of the store.
    pub(crate) fn path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("content")
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256)
    }

    /// Streams `body` into the store, refusing it as soon as it passes `limit` bytes. Memory use
    /// is one chunk at a time whatever the size.
    pub(crate) async fn store_stream<S, E>(
        &self,
        body: S,
        limit: u64,
    ) -> Result<Stored, StoreFileError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: std::fmt::Display,
    {
        let tmp_dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir).await?;
        let tmp = TempFile(tmp_dir.join(random_name()));
        let mut file =
            tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::create(&tmp.0).await?);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| StoreFileError::Body(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(StoreFileError::TooLarge(limit));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.into_inner().sync_all().await?;
        let sha256 = hex::encode(hasher.finalize());
        self.commit(tmp, &sha256).await?;
        Ok(Stored { sha256, size })
    }

    /// Stores bytes already in memory (thumbnails, preview images, both small and bounded).
    pub(crate) async fn store_bytes(&self, bytes: &[u8]) -> Result<Stored, StoreFileError> {
        let chunk = Bytes::copy_from_slice(bytes);
        let stream = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(chunk) });
        self.store_stream(stream, u64::MAX).await
    }

    /// Moves a complete temp file to its content address, unless identical content is there.
    async fn commit(&self, tmp: TempFile, sha256: &str) -> std::io::Result<()> {
        let dest = self.path(sha256);
        if tokio::fs::try_exists(&dest).await? {
            return Ok(()); // `tmp` is removed on drop: the bytes are already stored once.
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await?;
        }
        tokio::fs::rename(&tmp.0, &dest).await?;
        std::mem::forget(tmp);
        Ok(())
    }

    /// Removes temp files older than `age`: uploads cut off by a crash. Only old ones, because
    /// several homeserver processes may share the store and be receiving uploads right now.
    pub(crate) fn remove_stale_temp_files(&self, age: std::time::Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|elapsed| elapsed > age);
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Opens stored content for reading.
    pub(crate) async fn open(&self, sha256: &str) -> std::io::Result<tokio::fs::File> {
        tokio::fs::File::open(self.path(sha256)).await
    }
}

/// A temp file removed when dropped, so every early return cleans up.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn random_name() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 24)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + use<> {
        let parts: Vec<_> = parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        futures::stream::iter(parts)
    }

    #[tokio::test]
    async fn identical_content_is_stored_once_under_its_hash() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path());
        let a = files
            .store_stream(chunks(&[b"hello ", b"world"]), 100)
            .await
            .unwrap();
        let b = files
            .store_stream(chunks(&[b"hello world"]), 100)
            .await
            .unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(a.size, 11);
        assert_eq!(
            std::fs::read(files.path(&a.sha256)).unwrap(),
            b"hello world"
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn only_old_temp_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path());
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("in-flight"), b"another process is writing this").unwrap();
        let old = std::fs::File::create(tmp.join("crashed")).unwrap();
        let two_days = std::time::Duration::from_secs(2 * 24 * 3600);
        old.set_modified(std::time::SystemTime::now() - two_days)
            .unwrap();
        assert_eq!(files.remove_stale_temp_files(two_days / 2), 1);
        assert!(tmp.join("in-flight").exists());
        assert!(!tmp.join("crashed").exists());
    }

    #[tokio::test]
    async fn an_oversized_stream_is_refused_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::new(dir.path());
        let err = files
            .store_stream(chunks(&[b"12345", b"67890"]), 8)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreFileError::TooLarge(8)));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
        assert!(!dir.path().join("content").exists());
    }
}
