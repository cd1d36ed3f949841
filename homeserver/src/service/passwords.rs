//! Password hashing: argon2id for new hashes; bcrypt hashes (as Synapse stores them) still verify.

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};

/// Hashes a password with argon2id (PHC string). CPU-heavy: call from a blocking thread.
pub fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters cannot fail")
        .to_string()
}

/// Checks a password against a stored hash of either kind. CPU-heavy: call from a blocking thread.
pub fn verify(password: &str, stored: &str) -> bool {
    if stored.starts_with("$2") {
        // Synapse appends its `password_config.pepper` (empty by default) before bcrypt.
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// [`hash`] on the blocking pool.
pub async fn hash_async(password: String) -> String {
    tokio::task::spawn_blocking(move || hash(&password))
        .await
        .expect("hashing does not panic")
}

/// [`verify`] on the blocking pool.
pub async fn verify_async(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || verify(&password, &stored))
        .await
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_reject_wrong_passwords() {
        let h = hash("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify("correct horse", &h));
        assert!(!verify("wrong", &h));
    }

    #[test]
    fn synapse_bcrypt_hashes_still_verify() {
        let h = bcrypt::hash("hunter2", 4).unwrap();
        assert!(verify("hunter2", &h));
        assert!(!verify("hunter3", &h));
        assert!(!verify("x", "not a hash"));
    }
}
