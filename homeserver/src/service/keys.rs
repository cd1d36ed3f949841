//! The server's ed25519 signing key, in Synapse's file format (`ed25519 <version> <base64 seed>`).

use base64::Engine;
use ruma::signatures::Ed25519KeyPair;

use crate::config::Config;

/// PKCS#8 v1 prefix of an ed25519 private key; the 32-byte seed follows.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Loads the key named by `signing_key_path`, or, without one, a fresh key for this process only
/// (fine for tests; a real server generates its config with a key file).
pub fn load(config: &Config) -> anyhow::Result<Ed25519KeyPair> {
    let Some(path) = &config.signing_key_path else {
        tracing::warn!("no signing_key_path configured; using a temporary signing key");
        return from_seed(&rand::random::<[u8; 32]>(), "a_temp");
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read signing key {path}: {e}"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with("ed25519 "))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{path}: expected a line `ed25519 <version> <base64 seed>` (Synapse's format)"
            )
        })?;
    let mut parts = line.split_whitespace().skip(1);
    let (Some(version), Some(seed)) = (parts.next(), parts.next()) else {
        anyhow::bail!("{path}: expected `ed25519 <version> <base64 seed>`");
    };
    let seed = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(seed.trim_end_matches('='))
        .map_err(|e| anyhow::anyhow!("{path}: the seed is not base64: {e}"))?;
    let seed: [u8; 32] = seed
        .try_into()
        .map_err(|_| anyhow::anyhow!("{path}: the seed must be 32 bytes"))?;
    from_seed(&seed, version)
}

fn from_seed(seed: &[u8; 32], version: &str) -> anyhow::Result<Ed25519KeyPair> {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(seed);
    Ed25519KeyPair::from_der(&der, version.to_owned())
        .map_err(|e| anyhow::anyhow!("invalid signing key: {e}"))
}
