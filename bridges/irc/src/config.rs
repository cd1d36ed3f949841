//! The bridge config: the SDK's mautrix-like sections (`homeserver`, `appservice`, `bridge`) plus `irc:`.
//!
//! ```yaml
//! irc:
//!   media_url: https://matrix.example.org   # where IRC users download Matrix media; default homeserver.address
//!   media_proxy:                 # optional: serve Matrix media from the bridge at signed links (see below)
//!     public_url: https://irc-media.example.org   # where IRC users reach the bridge's /_irc/media/ path
//!     signing_key_path: irc-media.key             # made (mode 0600) on first start if missing
//!     ttl: 604800                                 # seconds a link works; 0 = forever
//!   networks:
//!     libera:                      # the <network> in ghost ids and aliases: letters, digits, '-'
//!       host: irc.libera.chat
//!       port: 6697                 # default 6697 with TLS, 6667 without
//!       tls: true                  # default true
//!       password: null             # server password (PASS), optional
//!       sasl: {username: causeway, password: secret, mechanism: PLAIN}   # optional; or mechanism: EXTERNAL
//!       nick: causeway             # the relay bot's nick
//!       puppeting: true            # a connection per Matrix user; false = relay bot only
//!       nick_template: "{displayname}[m]"   # puppet nicks; {displayname} and {localpart}
//!       max_puppets: 100           # per-user connections at most; more users go through the relay bot
//!       puppet_idle_timeout: 86400 # seconds without Matrix activity before a puppet disconnects; 0 = never
//!       relay_template: "<{displayname}> {message}"   # Matrix users through the relay bot
//!       max_lines: 5               # longer Matrix messages go as a link to a text file
//!       messages_per_second: 2.0   # outgoing flood control, per connection
//!       burst: 5                   # messages sent at once before the rate applies
//!       netsplit_grace: 60         # seconds a user lost in a netsplit stays in rooms before leaving
//!       channels:                  # static mappings, optional: channel -> room alias or id
//!         "#rust": "#rust:example.org"
//!       channel_keys:              # keys of channels with mode +k, optional
//!         "#secret": "hunter2"
//! ```
//!
//! Values are checked once at start; a wrong one is an error naming the file, the key and the fix.
//! Unknown keys under `irc:` are warnings.
//!
//! `media_url` links go to the homeserver's unauthenticated `/_matrix/media/v3/download`, which a
//! homeserver with authenticated media on (Matrix 1.11, the default of Causeway and Synapse) does
//! not serve for new media. `media_proxy` makes the bridge serve them itself instead: each link
//! carries the media's `mxc://` server and id, an expiry and the file name, signed with a key only
//! the bridge has; the bridge checks it and fetches the file with its appservice token
//! ([`crate::media_proxy`]). With `media_proxy` set, `media_url` is not used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use appservice_sdk::config::BridgeConfig;
use serde::{Deserialize, Serialize};

use crate::convert::ids::is_channel;
use crate::convert::nick::is_valid_nick;

/// The whole config, as the SDK reads it (the network section stays YAML there).
pub type Config = BridgeConfig<serde_yaml_ng::Value>;

/// The `irc:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IrcConfig {
    /// Base URL IRC users download Matrix media from (`<media_url>/_matrix/media/v3/download/...`).
    /// Default: `homeserver.address`.
    #[serde(default)]
    pub media_url: Option<String>,
    /// Serve Matrix media from the bridge itself at signed links (needed when the homeserver
    /// requires authenticated media). Default none: links use `media_url`.
    #[serde(default)]
    pub media_proxy: Option<MediaProxyConfig>,
    /// The IRC networks, by name. At least one.
    pub networks: BTreeMap<String, NetworkConfig>,
}

/// `irc.media_proxy`: Matrix media served by the bridge at signed links,
/// `<public_url>/_irc/media/<signed part>/<file name>`, on the appservice listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaProxyConfig {
    /// The public base URL at which IRC users reach the bridge's `/_irc/media/` path (directly,
    /// or through a reverse proxy that forwards that path to `appservice.port`), e.g.
    /// `https://irc-media.example.org`. Required; http(s), no query or fragment. With a path
    /// (`https://example.org/irc`), links are `https://example.org/irc/_irc/media/...` and the
    /// reverse proxy must strip `/irc` before forwarding.
    pub public_url: String,
    /// The HMAC key that signs links: a file with 32 random bytes in base64, made with mode 0600
    /// on first start if missing. A relative path is relative to the working directory. Anyone
    /// with the key can make links to any media the bridge can read; a new key ends every link
    /// made before. Required.
    pub signing_key_path: PathBuf,
    /// Seconds a link works after it was posted; 0 = forever. Default 604800 (7 days).
    #[serde(default = "default_media_ttl")]
    pub ttl: u64,
}

/// One network under `irc.networks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Server host name. Required.
    pub host: String,
    /// Server port. Default 6697 with TLS, else 6667.
    #[serde(default)]
    pub port: Option<u16>,
    /// TLS. Default true.
    #[serde(default = "default_true")]
    pub tls: bool,
    /// Server password (`PASS`). Default none.
    #[serde(default)]
    pub password: Option<String>,
    /// SASL for the relay bot. Default none.
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
    /// The relay bot's nick. Default `causeway`.
    #[serde(default = "default_nick")]
    pub nick: String,
    /// Username (ident) of every connection. Default `causeway`.
    #[serde(default = "default_username")]
    pub username: String,
    /// A connection per Matrix user. Default true.
    #[serde(default = "default_true")]
    pub puppeting: bool,
    /// Puppet nick template. Default `{displayname}[m]`.
    #[serde(default = "default_nick_template")]
    pub nick_template: String,
    /// Longest nick the network accepts. Default 30.
    #[serde(default = "default_max_nick_len")]
    pub max_nick_len: usize,
    /// Per-user connections at most. Default 100.
    #[serde(default = "default_max_puppets")]
    pub max_puppets: usize,
    /// Seconds before an idle puppet disconnects; 0 = never. Default 86400.
    #[serde(default = "default_idle")]
    pub puppet_idle_timeout: u64,
    /// How relayed Matrix messages read: `{displayname}`, `{user_id}`, `{message}`.
    /// Default `<{displayname}> {message}`.
    #[serde(default = "default_relay_template")]
    pub relay_template: String,
    /// Matrix messages longer than this many IRC lines are sent as a link to a text file. Default 5.
    #[serde(default = "default_max_lines")]
    pub max_lines: usize,
    /// Outgoing messages per second per connection. Default 2.
    #[serde(default = "default_rate")]
    pub messages_per_second: f64,
    /// Messages sent back to back before the rate applies. Default 5.
    #[serde(default = "default_burst")]
    pub burst: u32,
    /// Seconds a user who left in a netsplit stays in rooms, in case they come back. Default 60.
    #[serde(default = "default_netsplit_grace")]
    pub netsplit_grace: u64,
    /// Longest wait between reconnection attempts, seconds. Default 300.
    #[serde(default = "default_max_backoff")]
    pub max_reconnect_delay: u64,
    /// Static channel -> room (alias or id) mappings. Default none.
    #[serde(default)]
    pub channels: BTreeMap<String, String>,
    /// Keys (`+k`) of channels that need one: channel -> key, used by the relay bot and every
    /// puppet. Default none.
    #[serde(default)]
    pub channel_keys: BTreeMap<String, String>,
}

/// `sasl:` of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaslConfig {
    /// `PLAIN` (default) or `EXTERNAL`.
    #[serde(default = "default_mechanism")]
    pub mechanism: String,
    /// Account name (PLAIN).
    #[serde(default)]
    pub username: String,
    /// Password (PLAIN).
    #[serde(default)]
    pub password: String,
}

impl NetworkConfig {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls { 6697 } else { 6667 })
    }
}

fn default_true() -> bool {
    true
}
fn default_nick() -> String {
    "causeway".to_owned()
}
fn default_username() -> String {
    "causeway".to_owned()
}
fn default_nick_template() -> String {
    "{displayname}[m]".to_owned()
}
fn default_max_nick_len() -> usize {
    30
}
fn default_max_puppets() -> usize {
    100
}
fn default_idle() -> u64 {
    86400
}
fn default_relay_template() -> String {
    "<{displayname}> {message}".to_owned()
}
fn default_max_lines() -> usize {
    5
}
fn default_rate() -> f64 {
    2.0
}
fn default_burst() -> u32 {
    5
}
fn default_netsplit_grace() -> u64 {
    60
}
fn default_max_backoff() -> u64 {
    300
}
fn default_media_ttl() -> u64 {
    7 * 24 * 3600
}
fn default_mechanism() -> String {
    "PLAIN".to_owned()
}

/// A config that cannot be used: where, what and how to fix it. Displayed on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {problem}{}", fix.as_ref().map(|f| format!("; fix: {f}")).unwrap_or_default())]
pub struct ConfigError {
    /// The config file.
    pub file: String,
    /// The key, dotted.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: Option<String>,
}

/// The loaded config, and warnings (unknown keys) to log once tracing is up.
#[derive(Debug)]
pub struct Loaded {
    /// The SDK's sections.
    pub config: Config,
    /// `irc:`.
    pub irc: IrcConfig,
    /// Unknown keys.
    pub warnings: Vec<String>,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        key: "(file)".to_owned(),
        problem: format!("cannot read it: {e}"),
        fix: Some(
            "pass the config with -c FILE, or write an example with --generate-config".to_owned(),
        ),
    })?;
    parse(&file, &text)
}

/// Parses and checks config text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Loaded, ConfigError> {
    let error = |key: &str, problem: String, fix: Option<&str>| ConfigError {
        file: file.to_owned(),
        key: key.to_owned(),
        problem,
        fix: fix.map(str::to_owned),
    };
    let config = Config::from_yaml(text).map_err(|e| {
        let message = match e {
            appservice_sdk::Error::Config { message, .. } => message,
            other => other.to_string(),
        };
        let (key, problem) = split_yaml_error(&message);
        error(
            &key,
            problem,
            Some("see the example config in bridges/irc/README.md"),
        )
    })?;
    #[derive(Deserialize)]
    struct Section {
        irc: Option<IrcConfig>,
    }
    let mut warnings = Vec::new();
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let section: Section = serde_ignored::deserialize(deserializer, |path| {
        let path = path.to_string().replace(".?.", ".");
        if path.starts_with("irc.") {
            warnings.push(format!("{file}: unknown key {path} is ignored"));
        }
    })
    .map_err(|e| {
        let (key, problem) = split_yaml_error(&e.to_string());
        error(&key, problem, None)
    })?;
    let Some(irc) = section.irc else {
        return Err(error(
            "irc",
            "the section is missing".to_owned(),
            Some("add `irc:` with `networks:` and at least one network with a `host:`"),
        ));
    };
    check(&irc).map_err(|(key, problem, fix)| error(&key, problem, Some(fix)))?;
    if irc.media_proxy.is_some() && irc.media_url.is_some() {
        warnings.push(format!(
            "{file}: irc.media_url is not used: irc.media_proxy serves media links"
        ));
    }
    if let serde_yaml_ng::Value::Mapping(rest) = &config.network {
        for key in rest
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| *k != "irc")
        {
            warnings.push(format!("{file}: unknown key {key} is ignored"));
        }
    }
    Ok(Loaded {
        config,
        irc,
        warnings,
    })
}

type Problem = (String, String, &'static str);

fn check(irc: &IrcConfig) -> Result<(), Problem> {
    if irc.networks.is_empty() {
        return Err((
            "irc.networks".to_owned(),
            "no network is configured".to_owned(),
            "add one, e.g. `libera: {host: irc.libera.chat}`",
        ));
    }
    if let Some(url) = &irc.media_url
        && !url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
    {
        return Err((
            "irc.media_url".to_owned(),
            format!("{url:?} is not an http(s) URL"),
            "use the public URL of the homeserver, e.g. https://matrix.example.org",
        ));
    }
    if let Some(proxy) = &irc.media_proxy {
        check_media_proxy(proxy)?;
    }
    for (name, net) in &irc.networks {
        let key = |k: &str| format!("irc.networks.{name}.{k}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err((
                format!("irc.networks.{name}"),
                "a network name may only have lowercase letters, digits and '-'".to_owned(),
                "rename it, e.g. `libera`; it appears in ghost ids and aliases",
            ));
        }
        if net.host.trim().is_empty() || net.host.contains(char::is_whitespace) {
            return Err((
                key("host"),
                format!("{:?} is not a host name", net.host),
                "use e.g. irc.libera.chat",
            ));
        }
        if net.port == Some(0) {
            return Err((
                key("port"),
                "0 is not a port".to_owned(),
                "use 6697 for TLS or 6667",
            ));
        }
        for (channel, channel_key) in &net.channel_keys {
            if !is_channel(channel) {
                return Err((
                    key("channel_keys"),
                    format!("{channel:?} is not a channel name"),
                    "channels start with # or &, e.g. \"#secret\": key",
                ));
            }
            if channel_key.is_empty() || channel_key.contains([' ', ',', '\r', '\n']) {
                return Err((
                    key(&format!("channel_keys.{channel}")),
                    "a channel key may not be empty or have spaces or commas".to_owned(),
                    "use the key exactly as set with MODE +k",
                ));
            }
        }
        if !is_valid_nick(&net.nick) || net.nick.len() > net.max_nick_len {
            return Err((
                key("nick"),
                format!("{:?} is not a valid IRC nick", net.nick),
                "use letters, digits and []\\`_^{|}- only, not starting with a digit or '-'",
            ));
        }
        if !net.nick_template.contains("{displayname}")
            && !net.nick_template.contains("{localpart}")
        {
            return Err((
                key("nick_template"),
                "must contain {displayname} or {localpart}".to_owned(),
                "use e.g. \"{displayname}[m]\"",
            ));
        }
        if !net.relay_template.contains("{message}") {
            return Err((
                key("relay_template"),
                "must contain {message}".to_owned(),
                "use e.g. \"<{displayname}> {message}\"",
            ));
        }
        if let Some(sasl) = &net.sasl {
            match sasl.mechanism.to_ascii_uppercase().as_str() {
                "PLAIN" if sasl.username.is_empty() || sasl.password.is_empty() => {
                    return Err((
                        key("sasl"),
                        "PLAIN needs a username and a password".to_owned(),
                        "add both, or use mechanism: EXTERNAL with a client certificate",
                    ));
                }
                "PLAIN" | "EXTERNAL" => {}
                other => {
                    return Err((
                        key("sasl.mechanism"),
                        format!("{other:?} is not supported"),
                        "use PLAIN or EXTERNAL",
                    ));
                }
            }
        }
        if !(net.messages_per_second > 0.0 && net.messages_per_second.is_finite()) || net.burst == 0
        {
            return Err((
                key("messages_per_second"),
                "the rate and the burst must be above 0".to_owned(),
                "use e.g. messages_per_second: 2 and burst: 5",
            ));
        }
        if net.max_lines == 0 {
            return Err((
                key("max_lines"),
                "0 would send every message as a file".to_owned(),
                "use e.g. 5",
            ));
        }
        if net.max_nick_len < 9 {
            return Err((
                key("max_nick_len"),
                "IRC allows at least 9".to_owned(),
                "use the server's NICKLEN, e.g. 30",
            ));
        }
        for (channel, room) in &net.channels {
            if !is_channel(channel) {
                return Err((
                    format!("irc.networks.{name}.channels.{channel}"),
                    "is not a channel name".to_owned(),
                    "channels start with # (quote them in YAML: \"#rust\")",
                ));
            }
            if !(room.starts_with('#') || room.starts_with('!')) || !room.contains(':') {
                return Err((
                    format!("irc.networks.{name}.channels.{channel}"),
                    format!("{room:?} is not a room alias or id"),
                    "use \"#alias:example.org\" or \"!roomid:example.org\"",
                ));
            }
        }
    }
    Ok(())
}

fn check_media_proxy(proxy: &MediaProxyConfig) -> Result<(), Problem> {
    let url = url::Url::parse(&proxy.public_url).ok();
    let usable = url.as_ref().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some_and(|h| !h.is_empty())
            && u.query().is_none()
            && u.fragment().is_none()
            && u.username().is_empty()
            && u.password().is_none()
    });
    if !usable {
        return Err((
            "irc.media_proxy.public_url".to_owned(),
            format!(
                "{:?} is not an http(s) URL without query, fragment or credentials",
                proxy.public_url
            ),
            "use the URL IRC users reach the bridge at, e.g. https://irc-media.example.org",
        ));
    }
    if proxy.signing_key_path.as_os_str().is_empty() {
        return Err((
            "irc.media_proxy.signing_key_path".to_owned(),
            "is empty".to_owned(),
            "name a file for the key, e.g. irc-media.key; it is made on first start",
        ));
    }
    Ok(())
}

/// serde_yaml errors read `path.to.key: problem at line L column C`; splits off the key.
fn split_yaml_error(message: &str) -> (String, String) {
    match message.split_once(": ") {
        Some((key, problem)) if !key.contains(' ') => (key.to_owned(), problem.to_owned()),
        _ => ("(document)".to_owned(), message.to_owned()),
    }
}

/// A commented example config (what `--generate-config` writes).
pub const EXAMPLE: &str = r##"homeserver:
  address: http://127.0.0.1:8008      # where the bridge reaches the homeserver
  domain: localhost                   # the server name in user ids
appservice:
  address: http://127.0.0.1:29318     # where the homeserver reaches the bridge
  hostname: 127.0.0.1
  port: 29318
  id: irc
  bot:
    username: ircbot
    displayname: IRC bridge
  database: sqlite:irc-bridge.db      # or postgres://user@host/db
bridge:
  permissions:                        # relay < user (own IRC connection) < admin
    "*": relay
    localhost: user
metrics:
  enabled: true                       # /metrics on the appservice port
irc:
  # Matrix media reach IRC as links. With authenticated media on the homeserver (the default),
  # let the bridge serve them at signed links on the appservice port (route /_irc/media/ there):
  # media_proxy:
  #   public_url: https://irc-media.example.org   # where IRC users reach this bridge
  #   signing_key_path: irc-media.key             # made (mode 0600) on first start
  #   ttl: 604800                                 # seconds a link works; 0 = forever
  # Without it, links go to the homeserver's unauthenticated media route on this base URL:
  # media_url: https://matrix.example.org         # default homeserver.address
  networks:
    libera:
      host: irc.libera.chat
      port: 6697
      tls: true
      nick: causeway
      # sasl: {username: causeway, password: CHANGE-ME}
      puppeting: true
      nick_template: "{displayname}[m]"
      max_puppets: 100
      puppet_idle_timeout: 86400
      channels:
        "#causeway": "#causeway:localhost"
      # channel_keys: {"#secret": CHANGE-ME}   # keys of channels with mode +k
"##;

#[cfg(test)]
mod tests {
    use super::*;

    fn with_irc(section: &str) -> String {
        let base = EXAMPLE.split("irc:\n").next().unwrap();
        format!("{base}irc:\n{section}")
    }

    #[test]
    fn the_example_config_loads_with_documented_defaults() {
        let loaded = parse("config.yaml", EXAMPLE).unwrap();
        let libera = &loaded.irc.networks["libera"];
        assert_eq!(libera.port(), 6697);
        assert_eq!(libera.channels["#causeway"], "#causeway:localhost");
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let minimal = parse(
            "c.yaml",
            &with_irc("  networks:\n    net: {host: irc.x, tls: false}\n"),
        )
        .unwrap();
        let net = &minimal.irc.networks["net"];
        assert_eq!(net.port(), 6667);
        assert_eq!(net.nick, "causeway");
        assert_eq!(net.nick_template, "{displayname}[m]");
        assert!(net.puppeting);
        assert_eq!(net.max_lines, 5);
    }

    #[test]
    fn a_bad_value_names_file_key_and_fix_on_one_line() {
        let err = parse(
            "/etc/irc.yaml",
            &with_irc("  networks:\n    net: {host: irc.x, nick: \"1bad\"}\n"),
        )
        .unwrap_err();
        let line = err.to_string();
        assert!(
            line.starts_with("/etc/irc.yaml: irc.networks.net.nick: "),
            "{line}"
        );
        assert!(line.contains("; fix: "), "{line}");
        assert!(!line.contains('\n'));
        let err = parse(
            "c.yaml",
            &with_irc("  networks:\n    net: {host: irc.x, channels: {rust: \"#r:x\"}}\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "irc.networks.net.channels.rust");
        let err = parse("c.yaml", &with_irc("  networks:\n    Net: {host: irc.x}\n")).unwrap_err();
        assert_eq!(err.key, "irc.networks.Net");
        let err = parse(
            "c.yaml",
            &with_irc("  networks:\n    net: {host: irc.x, sasl: {mechanism: PLAIN}}\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "irc.networks.net.sasl");
    }

    #[test]
    fn channel_keys_load_and_a_key_with_a_space_is_refused() {
        let loaded = parse(
            "c.yaml",
            &with_irc(
                "  networks:\n    net: {host: irc.x, channel_keys: {\"#secret\": hunter2}}\n",
            ),
        )
        .unwrap();
        assert_eq!(
            loaded.irc.networks["net"].channel_keys["#secret"],
            "hunter2"
        );
        let err = parse(
            "c.yaml",
            &with_irc(
                "  networks:\n    net: {host: irc.x, channel_keys: {\"#secret\": \"a b\"}}\n",
            ),
        )
        .unwrap_err();
        assert_eq!(err.key, "irc.networks.net.channel_keys.#secret");
        let err = parse(
            "c.yaml",
            &with_irc("  networks:\n    net: {host: irc.x, channel_keys: {secret: k}}\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "irc.networks.net.channel_keys");
    }

    #[test]
    fn the_media_proxy_loads_with_its_default_ttl_and_bad_values_name_their_key() {
        let nets = "  networks:\n    net: {host: irc.x}\n";
        let loaded = parse(
            "c.yaml",
            &with_irc(&format!(
                "  media_proxy: {{public_url: \"https://media.example.org/\", signing_key_path: k.key}}\n{nets}"
            )),
        )
        .unwrap();
        let proxy = loaded.irc.media_proxy.unwrap();
        assert_eq!(proxy.ttl, 604_800);
        assert_eq!(proxy.signing_key_path, PathBuf::from("k.key"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

        for (section, key) in [
            (
                "{public_url: \"ftp://x\", signing_key_path: k}",
                "irc.media_proxy.public_url",
            ),
            (
                "{public_url: \"https://x/?a=b\", signing_key_path: k}",
                "irc.media_proxy.public_url",
            ),
            (
                "{public_url: \"https://x\", signing_key_path: \"\"}",
                "irc.media_proxy.signing_key_path",
            ),
            (
                "{public_url: \"https://x\", signing_key_path: k, ttl: -1}",
                "irc.media_proxy.ttl",
            ),
            ("{signing_key_path: k}", "irc.media_proxy"),
        ] {
            let err = parse(
                "c.yaml",
                &with_irc(&format!("  media_proxy: {section}\n{nets}")),
            )
            .unwrap_err();
            assert_eq!(err.key, key, "{section}: {err}");
        }

        let both = parse(
            "c.yaml",
            &with_irc(&format!(
                "  media_url: https://hs.x\n  media_proxy: {{public_url: \"https://x\", signing_key_path: k, tls: 1}}\n{nets}"
            )),
        )
        .unwrap();
        assert_eq!(
            both.warnings,
            [
                "c.yaml: unknown key irc.media_proxy.tls is ignored",
                "c.yaml: irc.media_url is not used: irc.media_proxy serves media links"
            ]
        );
    }

    #[test]
    fn a_wrong_type_names_the_key_path() {
        let err = parse(
            "c.yaml",
            &with_irc("  networks:\n    net: {host: irc.x, port: many}\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "irc.networks.net.port", "{err}");
    }

    #[test]
    fn a_missing_section_or_network_is_an_error_and_unknown_keys_warn() {
        let base = EXAMPLE.split("irc:\n").next().unwrap();
        assert_eq!(parse("c.yaml", base).unwrap_err().key, "irc");
        assert_eq!(
            parse("c.yaml", &with_irc("  networks: {}\n"))
                .unwrap_err()
                .key,
            "irc.networks"
        );
        let loaded = parse(
            "c.yaml",
            &format!(
                "telegram: {{}}\n{}",
                with_irc("  networks:\n    net: {host: irc.x, hots: y}\n")
            ),
        )
        .unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "c.yaml: unknown key irc.networks.net.hots is ignored",
                "c.yaml: unknown key telegram is ignored"
            ]
        );
    }
}
