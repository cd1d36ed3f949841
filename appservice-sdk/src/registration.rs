//! The appservice registration file the homeserver loads (`app_service_config_files`).
//!
//! [Spec: registration](https://spec.matrix.org/latest/application-service-api/#registration)

use std::path::Path;

use rand::{Rng, distr::Alphanumeric};
use serde::{Deserialize, Serialize};

use crate::config::BridgeConfig;
use crate::error::{Error, Result};

/// An appservice registration, as the spec's YAML shape, plus the MSC2409 key Synapse reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Unique, never changing id of the appservice.
    pub id: String,
    /// Where the homeserver sends transactions; `None` for no traffic.
    pub url: Option<String>,
    /// Token the bridge presents to the homeserver.
    pub as_token: String,
    /// Token the homeserver presents to the bridge.
    pub hs_token: String,
    /// Localpart of the bridge bot.
    pub sender_localpart: String,
    /// The users, aliases and rooms the appservice is interested in.
    pub namespaces: Namespaces,
    /// Whether masqueraded users are rate limited.
    #[serde(default)]
    pub rate_limited: Option<bool>,
    /// External protocols the appservice provides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocols: Vec<String>,
    /// Whether ephemeral events (typing, receipts, presence) are pushed (spec v1.13).
    #[serde(default)]
    pub receive_ephemeral: bool,
    /// The pre-v1.13 name of `receive_ephemeral` (MSC2409), which Synapse reads.
    #[serde(
        rename = "de.sorunome.msc2409.push_ephemeral",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub msc2409_push_ephemeral: Option<bool>,
}

/// The namespaces of a registration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespaces {
    /// User id namespaces.
    #[serde(default)]
    pub users: Vec<Namespace>,
    /// Room alias namespaces.
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    /// Room id namespaces.
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

/// One namespace: a regex and whether the appservice claims it exclusively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Whether only this appservice may create ids in the namespace.
    pub exclusive: bool,
    /// The regex ids are matched against.
    pub regex: String,
}

/// What a network claims: ghost user ids and room aliases starting with these localpart prefixes.
#[derive(Debug, Clone, Default)]
pub struct Prefixes {
    /// Ghost localparts start with this, e.g. `irc_` for `@irc_libera_alice:example.org`.
    pub user: String,
    /// Alias localparts start with this, e.g. `irc_` for `#irc_libera_#rust:example.org`;
    /// `None` if the network has no aliases.
    pub alias: Option<String>,
}

impl Registration {
    /// A fresh registration for a bridge: random 64-character tokens, exclusive namespaces for
    /// the bot, the ghosts and the aliases, `receive_ephemeral` from the config.
    ///
    /// ```
    /// use appservice_sdk::config::BridgeConfig;
    /// use appservice_sdk::registration::{Prefixes, Registration};
    /// let config: BridgeConfig = BridgeConfig::from_yaml(r#"
    /// homeserver: {address: "http://hs:8008", domain: example.org}
    /// appservice: {address: "http://bridge:29330", id: echo, bot: {username: echobot}}
    /// "#).unwrap();
    /// let prefixes = Prefixes { user: "echo_".to_owned(), alias: None };
    /// let reg = Registration::generate(&config, &prefixes);
    /// assert_eq!(reg.namespaces.users[1].regex, r"@echo_.*:example\.org");
    /// assert_ne!(reg.as_token, reg.hs_token);
    /// ```
    pub fn generate<N>(config: &BridgeConfig<N>, prefixes: &Prefixes) -> Self {
        let domain = regex_escape(&config.homeserver.domain);
        let mut namespaces = Namespaces::default();
        namespaces.users.push(Namespace {
            exclusive: true,
            regex: format!(
                "@{}:{domain}",
                regex_escape(&config.appservice.bot.username)
            ),
        });
        namespaces.users.push(Namespace {
            exclusive: true,
            regex: format!("@{}.*:{domain}", regex_escape(&prefixes.user)),
        });
        if let Some(alias) = &prefixes.alias {
            namespaces.aliases.push(Namespace {
                exclusive: true,
                regex: format!("#{}.*:{domain}", regex_escape(alias)),
            });
        }
        let ephemeral = config.appservice.ephemeral_events;
        Self {
            id: config.appservice.id.clone(),
            url: Some(config.appservice.address.clone()),
            as_token: random_token(),
            hs_token: random_token(),
            sender_localpart: config.appservice.bot.username.clone(),
            namespaces,
            rate_limited: Some(false),
            protocols: Vec::new(),
            receive_ephemeral: ephemeral,
            msc2409_push_ephemeral: ephemeral.then_some(true),
        }
    }

    /// Parses a registration from YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| Error::Config {
            path: "registration".to_owned(),
            message: e.to_string(),
        })
    }

    /// The registration as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a registration always serializes")
    }

    /// Reads a registration file.
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

    /// Writes the registration file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, self.to_yaml()).map_err(|error| Error::Io {
            path: path.display().to_string(),
            error,
        })
    }

    /// Whether ephemeral events were asked for under either key.
    pub fn wants_ephemeral(&self) -> bool {
        self.receive_ephemeral || self.msc2409_push_ephemeral == Some(true)
    }
}

fn random_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(64)
        .map(char::from)
        .collect()
}

/// Escapes regex metacharacters so a literal (domain, prefix) can sit inside a namespace regex.
fn regex_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len());
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BridgeConfig {
        BridgeConfig::from_yaml(
            r#"
homeserver: {address: "http://hs:8008", domain: my.example.org}
appservice: {address: "http://bridge:29330", id: irc, bot: {username: ircbot}, ephemeral_events: true}
"#,
        )
        .unwrap()
    }

    #[test]
    fn generated_registration_claims_bot_ghosts_and_aliases_exclusively() {
        let prefixes = Prefixes {
            user: "irc_".to_owned(),
            alias: Some("irc_".to_owned()),
        };
        let reg = Registration::generate(&config(), &prefixes);
        assert_eq!(reg.id, "irc");
        assert_eq!(reg.url.as_deref(), Some("http://bridge:29330"));
        assert_eq!(reg.sender_localpart, "ircbot");
        let users: Vec<_> = reg
            .namespaces
            .users
            .iter()
            .map(|n| n.regex.as_str())
            .collect();
        assert_eq!(
            users,
            [r"@ircbot:my\.example\.org", r"@irc_.*:my\.example\.org"]
        );
        assert_eq!(reg.namespaces.aliases[0].regex, r"#irc_.*:my\.example\.org");
        assert!(reg.namespaces.users.iter().all(|n| n.exclusive));
        assert!(reg.receive_ephemeral);
        assert_eq!(reg.msc2409_push_ephemeral, Some(true));
    }

    #[test]
    fn tokens_are_long_random_and_distinct() {
        let a = Registration::generate(&config(), &Prefixes::default());
        let b = Registration::generate(&config(), &Prefixes::default());
        assert_eq!(a.as_token.len(), 64);
        assert_ne!(a.as_token, a.hs_token);
        assert_ne!(a.as_token, b.as_token);
    }

    #[test]
    fn a_saved_registration_loads_back_identical() {
        let reg = Registration::generate(&config(), &Prefixes::default());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registration.yaml");
        reg.save(&path).unwrap();
        assert_eq!(Registration::load(&path).unwrap(), reg);
        let yaml = std::fs::read_to_string(&path).unwrap();
        assert!(yaml.contains("receive_ephemeral: true"), "{yaml}");
    }

    #[test]
    fn a_spec_example_registration_loads() {
        let reg = Registration::from_yaml(
            r##"
id: "IRC Bridge"
url: "http://127.0.0.1:1234"
as_token: "30c05ae90a248a4188e620216fa72e349803310ec83e2a77b34fe90be6081f46"
hs_token: "312df522183efd404ec1cd22d2ffa4bbc76a8c1ccf541dd692eef281356bb74e"
sender_localpart: "_irc_bot"
namespaces:
  users:
    - exclusive: true
      regex: "@_irc_bridge_.*"
  aliases:
    - exclusive: false
      regex: "#_irc_bridge_.*"
  rooms: []
"##,
        )
        .unwrap();
        assert_eq!(reg.sender_localpart, "_irc_bot");
        assert!(!reg.wants_ephemeral());
        assert!(!reg.namespaces.aliases[0].exclusive);
    }
}
