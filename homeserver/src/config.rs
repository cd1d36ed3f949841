//! `homeserver.yaml`: Synapse's keys, so existing files and guides keep working.
//!
//! Every field has a documented default. Unknown keys are logged as warnings; a value of the wrong
//! shape is fatal and names the key. Validation happens once, in [`Config::load`].

mod generate;
mod ratelimit;

use std::{net::IpAddr, path::Path};

use serde::{Deserialize, Serialize};

pub use generate::{GenerateOptions, generate};
pub use ratelimit::{RateLimit, RcLogin};

use crate::store::Backend;

/// Why a config could not be used. Printed as one line, then the process exits with status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: key `{key}`: {expected}")]
    BadValue {
        file: String,
        key: String,
        expected: String,
    },
}

/// The whole configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Config {
    /// The domain in user ids (`@alice:server_name`). Required.
    pub server_name: String,
    /// The public URL clients reach us at; enables `/.well-known/matrix/client`.
    pub public_baseurl: Option<String>,
    /// Where to listen. Default: one HTTP listener on 127.0.0.1:8008 serving client and federation.
    pub listeners: Vec<Listener>,
    /// Database. Default: SQLite at `homeserver.db`.
    pub database: Database,
    /// Media files. Default: `media_store`.
    pub media_store_path: String,
    /// Biggest upload, e.g. `50M`. Default `50M`.
    pub max_upload_size: ByteSize,
    /// The server's ed25519 signing key file. Default `<server_name>.signing.key`.
    pub signing_key_path: Option<String>,
    /// Open registration. Default false.
    pub enable_registration: bool,
    /// Synapse insists on this beside open registration without email/captcha; accepted and unused.
    pub enable_registration_without_verification: bool,
    /// Secret for `/_synapse/admin/v1/register`. Default: none (shared-secret registration off).
    pub registration_shared_secret: Option<String>,
    /// Guest accounts. Default false.
    pub allow_guest_access: bool,
    /// Application service registration files. Default none.
    pub app_service_config_files: Vec<String>,
    /// URL previews. Default false.
    pub url_preview_enabled: bool,
    /// CIDR ranges URL previews may never reach. Default: none configured (the media module
    /// applies its built-in private-range list).
    pub url_preview_ip_range_blacklist: Option<Vec<String>>,
    /// User directory settings.
    pub user_directory: UserDirectory,
    /// Presence settings.
    pub presence: Presence,
    /// TURN servers handed to clients. Default none.
    pub turn_uris: Vec<String>,
    /// TURN shared secret. Default none.
    pub turn_shared_secret: Option<String>,
    /// TURN credential lifetime, e.g. `1h`. Default `1h`.
    pub turn_user_lifetime: Duration,
    /// Serve `/.well-known/matrix/server`. Default false.
    pub serve_server_wellknown: bool,
    /// Message sending limit per user. Default 0.2/s, burst 10.
    pub rc_message: RateLimit,
    /// Registration limit per IP. Default 0.17/s, burst 3.
    pub rc_registration: RateLimit,
    /// Login limits (per IP, per account, per failed attempt). Default 0.17/s, burst 3 each.
    pub rc_login: RcLogin,
    /// Lifetime of access tokens issued with a refresh token. Default `5m`.
    pub refreshable_access_token_lifetime: Duration,
    /// Largest JSON request body accepted, e.g. `1M`. Default `1M` (not a Synapse key).
    pub max_request_body_size: ByteSize,
    /// Media uploaded while this is on is served only by the authenticated
    /// `/_matrix/client/v1/media/*` routes; media uploaded before stays reachable on the legacy
    /// `/_matrix/media/v3/*` ones (the spec's "freeze"). Default true, as Synapse.
    pub enable_authenticated_media: bool,
    /// Largest image, in pixels, we decode to thumbnail, e.g. `32M`; bigger ones get `M_TOO_LARGE`
    /// instead of costing gigabytes of memory. Default `32M`, as Synapse.
    pub max_image_pixels: ByteSize,
    /// How many thumbnails are made at once (each holds a decoded image in memory). Default 2
    /// (not a Synapse key).
    pub max_thumbnail_workers: usize,
    /// Record Prometheus metrics, served at `/_synapse/metrics` by `type: metrics` listeners and
    /// by HTTP listeners that list the `metrics` resource. Default false, as Synapse.
    pub enable_metrics: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server_name: String::new(),
            public_baseurl: None,
            listeners: vec![Listener::default()],
            database: Database::default(),
            media_store_path: "media_store".to_owned(),
            max_upload_size: ByteSize(50 * 1024 * 1024),
            signing_key_path: None,
            enable_registration: false,
            enable_registration_without_verification: false,
            registration_shared_secret: None,
            allow_guest_access: false,
            app_service_config_files: Vec::new(),
            url_preview_enabled: false,
            url_preview_ip_range_blacklist: None,
            user_directory: UserDirectory::default(),
            presence: Presence::default(),
            turn_uris: Vec::new(),
            turn_shared_secret: None,
            turn_user_lifetime: Duration(3_600_000),
            serve_server_wellknown: false,
            rc_message: RateLimit {
                per_second: 0.2,
                burst_count: 10.0,
            },
            rc_registration: RateLimit {
                per_second: 0.17,
                burst_count: 3.0,
            },
            rc_login: RcLogin::default(),
            refreshable_access_token_lifetime: Duration(300_000),
            max_request_body_size: ByteSize(1024 * 1024),
            enable_authenticated_media: true,
            max_image_pixels: ByteSize(32 * 1024 * 1024),
            max_thumbnail_workers: 2,
            enable_metrics: false,
        }
    }
}

/// One `listeners` entry.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Listener {
    pub port: u16,
    pub bind_addresses: Vec<IpAddr>,
    #[serde(rename = "type")]
    pub kind: String,
    pub tls: bool,
    pub x_forwarded: bool,
    pub resources: Vec<ListenerResource>,
}

impl Default for Listener {
    fn default() -> Self {
        Self {
            port: 8008,
            bind_addresses: vec![IpAddr::from([127, 0, 0, 1])],
            kind: "http".to_owned(),
            tls: false,
            x_forwarded: false,
            resources: vec![ListenerResource {
                names: vec!["client".to_owned(), "federation".to_owned()],
                compress: false,
            }],
        }
    }
}

impl Listener {
    /// Whether one of this listener's `resources` names `name` (`client`, `metrics`, ...).
    pub fn serves(&self, name: &str) -> bool {
        self.resources
            .iter()
            .any(|r| r.names.iter().any(|n| n == name))
    }

    /// The socket addresses this listener binds.
    pub fn addresses(&self) -> Vec<std::net::SocketAddr> {
        self.bind_addresses
            .iter()
            .map(|ip| std::net::SocketAddr::new(*ip, self.port))
            .collect()
    }
}

/// One `listeners[].resources` entry.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ListenerResource {
    pub names: Vec<String>,
    pub compress: bool,
}

/// `database`: `name: sqlite3` or `name: psycopg2`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Database {
    pub name: String,
    pub args: DatabaseArgs,
}

impl Default for Database {
    fn default() -> Self {
        Self {
            name: "sqlite3".to_owned(),
            args: DatabaseArgs::default(),
        }
    }
}

/// `database.args`, the keys Synapse passes to the driver.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct DatabaseArgs {
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub cp_min: Option<u32>,
    pub cp_max: Option<u32>,
}

/// `user_directory`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct UserDirectory {
    pub enabled: bool,
    pub search_all_users: bool,
}

impl Default for UserDirectory {
    fn default() -> Self {
        Self {
            enabled: true,
            search_all_users: false,
        }
    }
}

/// `presence`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default)]
pub struct Presence {
    pub enabled: bool,
}

impl Default for Presence {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// A size as Synapse writes it: a number of bytes or `10K`, `50M`, `1G`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = NumberOrString::deserialize(d)?;
        parse_with_suffix(
            &raw,
            &[("K", 1024), ("M", 1024 * 1024), ("G", 1024 * 1024 * 1024)],
        )
        .map(ByteSize)
        .ok_or_else(|| serde::de::Error::custom("expected a size such as 1048576, 512K, 50M or 1G"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// A duration as Synapse writes it: milliseconds, or `30s`, `5m`, `1h`, `2d`, `1w`, `1y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration(pub u64);

impl Duration {
    pub fn as_millis(self) -> u64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = NumberOrString::deserialize(d)?;
        let units = [
            ("ms", 1),
            ("s", 1000),
            ("m", 60_000),
            ("h", 3_600_000),
            ("d", 86_400_000),
            ("w", 604_800_000),
            ("y", 31_536_000_000),
        ];
        parse_with_suffix(&raw, &units)
            .map(Duration)
            .ok_or_else(|| {
                serde::de::Error::custom("expected a duration such as 60000, 30s, 5m, 1h or 2d")
            })
    }
}

impl Serialize for Duration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrString {
    Number(u64),
    String(String),
}

fn parse_with_suffix(raw: &NumberOrString, units: &[(&str, u64)]) -> Option<u64> {
    match raw {
        NumberOrString::Number(n) => Some(*n),
        NumberOrString::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse() {
                return Some(n);
            }
            // Longest suffix first, so "ms" wins over "s".
            let mut sorted = units.to_vec();
            sorted.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
            sorted.iter().find_map(|(suffix, factor)| {
                s.strip_suffix(suffix)
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .map(|n| n * factor)
            })
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file, logging unknown keys as warnings.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Self::parse(&text, &file)
    }

    /// Parses config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        // Two passes: serde_path_to_error names the key of a bad value, serde_ignored lists unknown
        // keys; stacked in one pass, the path is lost.
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let message = e.into_inner().to_string();
            if key == "." {
                ConfigError::Invalid {
                    file: file.to_owned(),
                    message,
                }
            } else {
                ConfigError::BadValue {
                    file: file.to_owned(),
                    key,
                    expected: message,
                }
            }
        })?;
        let mut unknown = Vec::new();
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let _: Result<Config, _> =
            serde_ignored::deserialize(de, |path| unknown.push(path.to_string()));
        for key in unknown {
            tracing::warn!(file, key, "unknown config key ignored");
        }
        config.validate(file)?;
        for warning in config.warnings() {
            tracing::warn!(file, "{warning}");
        }
        Ok(config)
    }

    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, expected: &str| ConfigError::BadValue {
            file: file.to_owned(),
            key: key.to_owned(),
            expected: expected.to_owned(),
        };
        if self.server_name.is_empty() {
            return Err(bad(
                "server_name",
                "required: the domain of your user ids, e.g. `example.org`",
            ));
        }
        if ruma::ServerName::parse(&self.server_name).is_err() {
            return Err(bad(
                "server_name",
                "expected a server name such as `example.org` or `localhost:8448`",
            ));
        }
        if let Some(url) = &self.public_baseurl
            && url::Url::parse(url)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            return Err(bad(
                "public_baseurl",
                "expected an http(s) URL such as `https://matrix.example.org/`",
            ));
        }
        if !self.listeners.iter().any(|l| l.kind == "http") {
            return Err(bad(
                "listeners",
                "expected at least one listener with `type: http`",
            ));
        }
        for (i, l) in self.listeners.iter().enumerate() {
            if l.kind != "http" && l.kind != "metrics" && l.kind != "manhole" {
                return Err(bad(
                    &format!("listeners[{i}].type"),
                    "expected `http` or `metrics`",
                ));
            }
            if l.tls {
                return Err(bad(
                    &format!("listeners[{i}].tls"),
                    "TLS is terminated by a reverse proxy; set `tls: false` and put nginx or Caddy in front",
                ));
            }
            for (j, r) in l.resources.iter().enumerate() {
                for name in &r.names {
                    if !matches!(
                        name.as_str(),
                        "client"
                            | "federation"
                            | "media"
                            | "keys"
                            | "metrics"
                            | "health"
                            | "static"
                            | "openid"
                            | "replication"
                    ) {
                        return Err(bad(
                            &format!("listeners[{i}].resources[{j}].names"),
                            "expected names among `client`, `federation`, `media`, `metrics`",
                        ));
                    }
                }
            }
        }
        match self.database.name.as_str() {
            "sqlite3" => {}
            "psycopg2" => {
                if self.database.args.database.is_none() {
                    return Err(bad(
                        "database.args.database",
                        "required with `name: psycopg2`: the PostgreSQL database name",
                    ));
                }
            }
            _ => return Err(bad("database.name", "expected `sqlite3` or `psycopg2`")),
        }
        for (key, limit) in [
            ("rc_message", &self.rc_message),
            ("rc_registration", &self.rc_registration),
        ] {
            limit.validate().map_err(|e| bad(key, e))?;
        }
        self.rc_login
            .validate()
            .map_err(|(k, e)| bad(&format!("rc_login.{k}"), e))?;
        if let Some(ranges) = &self.url_preview_ip_range_blacklist {
            for (i, range) in ranges.iter().enumerate() {
                crate::service::media::IpRange::parse(range)
                    .map_err(|e| bad(&format!("url_preview_ip_range_blacklist[{i}]"), &e))?;
            }
        }
        if self.max_thumbnail_workers == 0 {
            return Err(bad("max_thumbnail_workers", "must be at least 1"));
        }
        if let Some(secret) = &self.registration_shared_secret
            && secret.is_empty()
        {
            return Err(bad(
                "registration_shared_secret",
                "must not be empty; remove the key to disable",
            ));
        }
        Ok(())
    }

    /// The database to open.
    pub fn backend(&self) -> Backend {
        let args = &self.database.args;
        match self.database.name.as_str() {
            "psycopg2" => {
                let mut url = url::Url::parse("postgres://localhost").expect("static URL");
                let _ = url.set_host(Some(args.host.as_deref().unwrap_or("localhost")));
                let _ = url.set_port(Some(args.port.unwrap_or(5432)));
                let _ = url.set_username(args.user.as_deref().unwrap_or("postgres"));
                let _ = url.set_password(args.password.as_deref());
                url.set_path(args.database.as_deref().unwrap_or("synapse"));
                Backend::Postgres {
                    url: url.to_string(),
                    max_connections: args.cp_max.unwrap_or(10),
                    min_connections: args.cp_min.unwrap_or(5),
                }
            }
            _ => Backend::Sqlite {
                path: args
                    .database
                    .clone()
                    .unwrap_or_else(|| "homeserver.db".to_owned()),
            },
        }
    }

    /// What a valid config asks for but will not get; each is logged at start.
    ///
    /// As Synapse: a `metrics` listener or resource while `enable_metrics` is false is not
    /// served (Synapse warns about the listener and says nothing about the resource; we warn
    /// about both).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for (i, l) in self.listeners.iter().enumerate() {
            match l.kind.as_str() {
                "metrics" if !self.enable_metrics => warnings.push(format!(
                    "listeners[{i}]: a metrics listener is configured but `enable_metrics` is not true; it is not started"
                )),
                "manhole" => warnings.push(format!(
                    "listeners[{i}]: manhole listeners are not supported; it is not started"
                )),
                "http" if !self.enable_metrics && l.serves("metrics") => warnings.push(format!(
                    "listeners[{i}]: the `metrics` resource is listed but `enable_metrics` is not true; /_synapse/metrics is not served"
                )),
                _ => {}
            }
        }
        warnings
    }

    /// Socket addresses of every HTTP listener.
    pub fn http_addresses(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter(|l| l.kind == "http")
            .flat_map(|l| {
                l.bind_addresses
                    .iter()
                    .map(move |ip| std::net::SocketAddr::new(*ip, l.port))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
