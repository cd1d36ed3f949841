//! What every bridge binary's `main` needs around the [`crate::bridge::Bridge`]: waiting for the
//! signal to stop, and writing a new example config without overwriting one.

use std::{io::Write, path::Path};

/// Resolves on Ctrl-C or SIGTERM (Ctrl-C only where SIGTERM cannot be watched); pass it to
/// [`crate::bridge::Bridge::run`].
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// Writes `text` to a file that must not exist yet (`--generate-config`); an existing file is an
/// error naming it, never overwritten.
pub fn write_new_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("{} (refusing to overwrite): {e}", path.display()),
            )
        })?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::write_new_file;

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        write_new_file(&path, "first").unwrap();
        let err = write_new_file(&path, "second").unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first");
    }
}
