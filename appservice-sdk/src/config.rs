//! The bridge config, in mautrix's layout (DESIGN.md section 6).
//!
//! ```yaml
//! homeserver:
//!   address: http://127.0.0.1:8008   # where the bridge reaches the homeserver
//!   domain: example.org              # the server name in user ids
//! appservice:
//!   address: http://127.0.0.1:29330  # where the homeserver reaches the bridge
//!   hostname: 127.0.0.1              # where the bridge listens
//!   port: 29330
//!   id: echo
//!   bot:
//!     username: echobot
//!     displayname: Echo bridge
//!   database: sqlite:echo.db         # or postgres://user@host/db
//! bridge:
//!   permissions:
//!     "*": relay
//!     example.org: user
//!     "@admin:example.org": admin
//!   relay:
//!     enabled: true
//!     message_format: "{sender}: {body}"
//!   portal_power_levels:             # given in portal rooms (the bot has 100)
//!     "@ircbot:example.org": 100
//! echo: {}                           # the network's own section
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::{Error, Result};

/// A whole bridge config: the shared sections plus the network's own (`N`), which is every
/// top-level key other than `homeserver`, `appservice`, `bridge` and `metrics`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BridgeConfig<N = serde_yaml_ng::Value> {
    /// How to reach the homeserver.
    pub homeserver: HomeserverConfig,
    /// How the homeserver reaches the bridge, and the bridge's identity.
    pub appservice: AppserviceConfig,
    /// Bridge-wide behaviour.
    #[serde(default)]
    pub bridge: BridgeSection,
    /// Prometheus metrics; off unless given.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The network's own section(s).
    #[serde(flatten)]
    pub network: N,
}

/// `homeserver:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HomeserverConfig {
    /// Base URL of the client-server API, e.g. `http://127.0.0.1:8008`.
    pub address: String,
    /// The server name, e.g. `example.org`.
    pub domain: String,
}

/// `appservice:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppserviceConfig {
    /// URL the homeserver uses to reach the bridge, e.g. `http://127.0.0.1:29330`.
    pub address: String,
    /// Address to listen on. Default `127.0.0.1`.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Port to listen on. Default `29330`.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The appservice id in the registration.
    pub id: String,
    /// The bridge bot.
    pub bot: BotConfig,
    /// `sqlite:PATH` or `postgres://...`. Default `sqlite:bridge.db`.
    #[serde(default = "default_database")]
    pub database: String,
    /// Ask for ephemeral events (typing, receipts). Default `true`.
    #[serde(default = "default_true")]
    pub ephemeral_events: bool,
}

/// `appservice.bot:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BotConfig {
    /// Localpart of the bot user.
    pub username: String,
    /// Displayname set on the bot at start; none if absent.
    #[serde(default)]
    pub displayname: Option<String>,
}

/// `bridge:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BridgeSection {
    /// Who may do what: keys are `*`, a server name or a user id; the most specific key wins.
    /// Default: nobody may use the bridge.
    #[serde(default)]
    pub permissions: BTreeMap<String, Permission>,
    /// Relay mode.
    #[serde(default)]
    pub relay: RelayConfig,
    /// Prefix of management commands in portal rooms. Default `!bridge`.
    #[serde(default = "default_command_prefix")]
    pub command_prefix: String,
    /// Power levels the bot gives in the portal rooms of this bridge, by user id: when it creates
    /// one, and when one of these users is invited to or joins one (where the bot has the power
    /// to). For another bridge's bot sharing the rooms, e.g. `"@ircbot:example.org": 100` so that
    /// IRC ops and voice can be mirrored in rooms the Telegram bridge made. Default: none.
    #[serde(default)]
    pub portal_power_levels: BTreeMap<String, i64>,
}

/// `bridge.relay:` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RelayConfig {
    /// Whether portals may turn relay mode on. Default `false`.
    #[serde(default)]
    pub enabled: bool,
    /// How a relayed message reads on the remote side: `{sender}` (display name or user id),
    /// `{sender_id}` and `{body}` are replaced. Default `{sender}: {body}`.
    #[serde(default = "default_relay_format")]
    pub message_format: String,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            message_format: default_relay_format(),
        }
    }
}

/// `metrics:` section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MetricsConfig {
    /// Serve `/metrics` and `/status` on the appservice listener. Default `false`.
    #[serde(default)]
    pub enabled: bool,
}

/// What a Matrix user may do with the bridge; later variants include the earlier ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Nothing: the bridge ignores the user.
    None,
    /// Messages are relayed through the bot in portals with relay mode on.
    Relay,
    /// May log in and use the bridge with their own remote account.
    User,
    /// May manage the bridge (relay mode, link/unlink any room).
    Admin,
}

impl BridgeSection {
    /// The permission of `user_id`: the entry for the user id, else for its server name, else `*`.
    ///
    /// ```
    /// use appservice_sdk::config::{BridgeSection, Permission};
    /// let mut section = BridgeSection::default();
    /// section.permissions.insert("*".to_owned(), Permission::Relay);
    /// section.permissions.insert("example.org".to_owned(), Permission::User);
    /// section.permissions.insert("@boss:example.org".to_owned(), Permission::Admin);
    /// assert_eq!(section.permission_of("@boss:example.org"), Permission::Admin);
    /// assert_eq!(section.permission_of("@bob:example.org"), Permission::User);
    /// assert_eq!(section.permission_of("@eve:elsewhere.net"), Permission::Relay);
    /// ```
    pub fn permission_of(&self, user_id: &str) -> Permission {
        if let Some(p) = self.permissions.get(user_id) {
            return *p;
        }
        let server = user_id
            .split_once(':')
            .map(|(_, server)| server)
            .unwrap_or_default();
        if let Some(p) = self.permissions.get(server) {
            return *p;
        }
        self.permissions
            .get("*")
            .copied()
            .unwrap_or(Permission::None)
    }
}

impl<N> BridgeConfig<N>
where
    N: DeserializeOwned,
{
    /// Reads and parses a YAML config file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
            path: path.display().to_string(),
            error,
        })?;
        Self::from_yaml(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Config {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Parses a YAML config.
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| Error::Config {
            path: "config".to_owned(),
            message: e.to_string(),
        })
    }
}

impl<N> BridgeConfig<N> {
    /// The bot's full user id, `@<bot.username>:<domain>`.
    pub fn bot_user_id(&self) -> String {
        format!(
            "@{}:{}",
            self.appservice.bot.username, self.homeserver.domain
        )
    }
}

fn default_hostname() -> String {
    "127.0.0.1".to_owned()
}
fn default_port() -> u16 {
    29330
}
fn default_database() -> String {
    "sqlite:bridge.db".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_command_prefix() -> String {
    "!bridge".to_owned()
}
fn default_relay_format() -> String {
    "{sender}: {body}".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
homeserver: {address: "http://127.0.0.1:8008", domain: example.org}
appservice:
  address: http://127.0.0.1:29330
  id: echo
  bot: {username: echobot}
bridge:
  permissions: {"*": relay, "@a:example.org": admin}
echo:
  greeting: hi
"#;

    #[derive(Debug, Deserialize)]
    struct EchoSection {
        echo: Echo,
    }
    #[derive(Debug, Deserialize)]
    struct Echo {
        greeting: String,
    }

    #[test]
    fn a_minimal_config_gets_documented_defaults_and_the_network_section() {
        let config = BridgeConfig::<EchoSection>::from_yaml(EXAMPLE).unwrap();
        assert_eq!(config.appservice.port, 29330);
        assert_eq!(config.appservice.hostname, "127.0.0.1");
        assert_eq!(config.appservice.database, "sqlite:bridge.db");
        assert_eq!(config.bridge.command_prefix, "!bridge");
        assert!(!config.bridge.relay.enabled);
        assert_eq!(config.network.echo.greeting, "hi");
        assert_eq!(config.bot_user_id(), "@echobot:example.org");
        assert_eq!(
            config.bridge.permission_of("@a:example.org"),
            Permission::Admin
        );
        assert_eq!(
            config.bridge.permission_of("@b:example.org"),
            Permission::Relay
        );
    }

    #[test]
    fn a_wrong_value_names_the_key() {
        let bad = EXAMPLE.replace("relay, \"@a", "superuser, \"@a");
        let err = BridgeConfig::<serde_yaml_ng::Value>::from_yaml(&bad).unwrap_err();
        assert!(err.to_string().contains("superuser"), "{err}");
    }

    #[test]
    fn nobody_has_permissions_by_default() {
        assert_eq!(
            BridgeSection::default().permission_of("@x:y"),
            Permission::None
        );
    }
}
