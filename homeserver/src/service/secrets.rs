//! Random tokens, their stored hashes, and constant-time comparison.

use rand::{Rng, distr::Alphanumeric};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random alphanumeric string of `len` characters from the OS-seeded CSPRNG.
pub fn random_string(len: usize) -> String {
    rand::rng()
        .sample_iter(Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

/// A fresh access token, prefixed like Synapse's so operators can tell token kinds apart.
pub fn new_access_token() -> String {
    format!("syt_{}", random_string(40))
}

/// A fresh refresh token.
pub fn new_refresh_token() -> String {
    format!("syr_{}", random_string(40))
}

/// A fresh device id: ten upper-case letters, as Synapse makes them.
pub fn new_device_id() -> String {
    rand::rng()
        .sample_iter(rand::distr::Uniform::new_inclusive(b'A', b'Z').expect("valid range"))
        .take(10)
        .map(char::from)
        .collect()
}

/// What the database stores for a token: hex SHA-256. Looking a token up by its hash means the
/// comparison never touches the secret itself.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time equality for secrets.
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
