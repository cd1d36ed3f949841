//! Matrix media for IRC users, served by the bridge at signed links (`irc.media_proxy`).
//!
//! IRC users have no Matrix account, and a homeserver with authenticated media on (Matrix 1.11,
//! MSC3916) serves new media only with an access token. So the bridge posts links to itself,
//! `<public_url>/_irc/media/<signed part>/<file name>`, signed with a key only it has
//! ([`link`]), and serves them on its appservice listener ([`serve`]): it checks the signature
//! and the expiry, then streams the file from the homeserver's
//! `/_matrix/client/v1/media/download/{serverName}/{mediaId}` with its appservice token, as
//! matrix-appservice-irc's media proxy and mautrix's public media do.
//!
//! - [`link`]: the signed part of a link, signing and checking (pure).
//! - [`key`]: the signing key file, made on first start.
//! - [`serve`]: the HTTP route.

pub mod key;
pub mod link;
pub mod serve;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::{ConfigError, MediaProxyConfig};

use self::link::{PATH_PREFIX, SigningKey};

/// The media proxy: makes links, and serves them once it knows the homeserver.
#[derive(Debug)]
pub struct MediaProxy {
    key: SigningKey,
    /// `public_url` without a trailing `/`.
    public_url: String,
    ttl: Option<Duration>,
    upstream: OnceLock<serve::Upstream>,
    http: reqwest::Client,
}

impl MediaProxy {
    /// A proxy signing with `key`, making links on `public_url` that work for `ttl` (`None`:
    /// forever).
    pub fn new(key: SigningKey, public_url: &str, ttl: Option<Duration>) -> Self {
        Self {
            key,
            public_url: public_url.trim_end_matches('/').to_owned(),
            ttl,
            upstream: OnceLock::new(),
            http: serve::upstream_client(),
        }
    }

    /// The proxy `irc.media_proxy` asks for, its key read from `signing_key_path` or made there.
    /// `config_file` names the config in errors.
    pub fn from_config(config: &MediaProxyConfig, config_file: &Path) -> Result<Self, ConfigError> {
        let path = &config.signing_key_path;
        let (key, created) = key::load_or_create(path).map_err(|e| ConfigError {
            file: config_file.display().to_string(),
            key: "irc.media_proxy.signing_key_path".to_owned(),
            problem: e.to_string(),
            fix: Some(match e {
                key::KeyError::Io { .. } => {
                    "make the file readable (and its folder writable for a new key), or name another path".to_owned()
                }
                key::KeyError::NotAKey { .. } => {
                    "remove the file to have a new key made on start (links made before stop working)".to_owned()
                }
            }),
        })?;
        if created {
            tracing::info!(path = %path.display(), "made a new media link signing key");
        } else if key::readable_by_others(path) {
            tracing::warn!(path = %path.display(), "the media link signing key is readable by others; chmod 600 it");
        }
        let ttl = (config.ttl > 0).then(|| Duration::from_secs(config.ttl));
        Ok(Self::new(key, &config.public_url, ttl))
    }

    /// A link for `mxc://server/id` named `filename` (the event's `filename` or `body`), valid
    /// from now for the configured time. `None` for a URI that is not `mxc://`.
    pub fn link(&self, mxc: &str, filename: &str) -> Option<String> {
        let (server, media_id) = mxc.strip_prefix("mxc://")?.split_once('/')?;
        let expires = self.ttl.map(|ttl| unix_now() + ttl.as_secs());
        let path = self.key.sign(server, media_id, expires, filename)?;
        Some(format!("{}{PATH_PREFIX}/{path}", self.public_url))
    }

    /// Tells the proxy where to fetch media, and with which appservice token; until then it
    /// answers 503.
    pub fn set_upstream(&self, homeserver_url: &str, as_token: &str) {
        let _ = self.upstream.set(serve::Upstream {
            base_url: homeserver_url.trim_end_matches('/').to_owned(),
            as_token: as_token.to_owned(),
        });
    }
}

/// Seconds since the Unix epoch.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
