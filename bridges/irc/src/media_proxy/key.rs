//! The signing key file: 32 random bytes in base64 on one line, made with mode 0600 when missing.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngCore;

use super::link::SigningKey;

/// Bytes in a new key, and the fewest an existing key file must hold.
pub const KEY_BYTES: usize = 32;

/// Why the key file cannot be used; the caller names the config key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("{path}: {action}: {error}")]
    Io {
        /// The file.
        path: String,
        /// What was being done.
        action: &'static str,
        /// The error.
        error: std::io::Error,
    },
    /// The file is not a key.
    #[error("{path}: {problem}")]
    NotAKey {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

/// Reads the key at `path`, or makes a new one there (mode 0600, and its folder if missing).
/// Returns the key and whether it was made now.
pub fn load_or_create(path: &Path) -> Result<(SigningKey, bool), KeyError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text)
            .map(|key| (key, false))
            .map_err(|problem| KeyError::NotAKey {
                path: shown,
                problem,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path).map(|key| (key, true)),
        Err(error) => Err(KeyError::Io {
            path: shown,
            action: "cannot read it",
            error,
        }),
    }
}

/// Whether others than the owner may read the file (unix), to warn about it.
pub fn readable_by_others(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

fn parse(text: &str) -> Result<SigningKey, String> {
    let text = text.trim();
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .ok_or_else(|| "is not base64 (a key file holds 32 random bytes in base64)".to_owned())?;
    if bytes.len() < KEY_BYTES {
        return Err(format!(
            "holds {} bytes; a key needs at least {KEY_BYTES}",
            bytes.len()
        ));
    }
    Ok(SigningKey::new(bytes))
}

fn create(path: &Path) -> Result<SigningKey, KeyError> {
    let io = |action, error| KeyError::Io {
        path: path.display().to_string(),
        action,
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io("cannot make its folder", e))?;
    }
    let mut bytes = vec![0u8; KEY_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| io("cannot create it", e))?;
    writeln!(file, "{}", STANDARD.encode(&bytes))
        .and_then(|()| file.sync_all())
        .map_err(|e| io("cannot write it", e))?;
    Ok(SigningKey::new(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_key_is_made_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/media.key");
        let (made, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert!(!readable_by_others(&path));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (read, created) = load_or_create(&path).unwrap();
        assert!(!created);
        // The same key: a link one signs, the other accepts.
        let link = made.sign("x.org", "m", None, "a.txt").unwrap();
        let (signed, name) = link.split_once('/').unwrap();
        assert!(read.verify(signed, name, 0).is_ok());
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("media.key");
        std::fs::write(&path, "not base64 at all!\n").unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("is not base64"), "{err}");
        std::fs::write(&path, format!("{}\n", STANDARD.encode([7u8; 16]))).unwrap();
        let err = load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("holds 16 bytes"), "{err}");
        std::fs::write(&path, format!("{}\n", URL_SAFE_NO_PAD.encode([7u8; 48]))).unwrap();
        assert!(load_or_create(&path).is_ok());
    }
}
