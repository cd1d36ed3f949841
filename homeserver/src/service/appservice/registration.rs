//! Registration files: the spec's YAML plus the ephemeral (MSC2409) and device (MSC4190) keys.

use serde::Deserialize;

use crate::config::ConfigError;

/// One application service, as its registration file describes it.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Registration {
    pub id: String,
    /// Where transactions go; `null` means the appservice only uses the client API.
    pub url: Option<String>,
    pub as_token: String,
    pub hs_token: String,
    pub sender_localpart: String,
    #[serde(default)]
    pub namespaces: Namespaces,
    /// Whether its requests count against rate limits. Default true, as the spec says.
    #[serde(default = "yes")]
    pub rate_limited: bool,
    /// Third-party protocols it bridges.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// MSC2409: also send typing, receipts and presence.
    #[serde(default)]
    pub receive_ephemeral: bool,
    #[serde(default, rename = "de.sorunome.msc2409.push_ephemeral")]
    pub push_ephemeral_msc2409: bool,
    /// MSC4190: the appservice manages its users' devices with its `as_token`.
    #[serde(default, rename = "io.element.msc4190")]
    pub device_management_msc4190: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct Namespaces {
    #[serde(default)]
    pub users: Vec<Namespace>,
    #[serde(default)]
    pub aliases: Vec<Namespace>,
    #[serde(default)]
    pub rooms: Vec<Namespace>,
}

/// A regex over user ids, aliases or room ids. Matched from the start of the value, as Synapse
/// does, so registrations written for Synapse keep their meaning.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "RawNamespace")]
pub struct Namespace {
    pub exclusive: bool,
    pub regex: String,
    compiled: regex::Regex,
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Self) -> bool {
        self.exclusive == other.exclusive && self.regex == other.regex
    }
}

impl Namespace {
    pub fn is_match(&self, value: &str) -> bool {
        self.compiled.is_match(value)
    }
}

#[derive(Deserialize)]
struct RawNamespace {
    #[serde(default)]
    exclusive: bool,
    regex: String,
}

impl TryFrom<RawNamespace> for Namespace {
    type Error = String;
    fn try_from(raw: RawNamespace) -> Result<Self, String> {
        let compiled = regex::Regex::new(&format!("^(?:{})", raw.regex))
            .map_err(|e| format!("invalid regex `{}`: {e}", raw.regex))?;
        Ok(Self {
            exclusive: raw.exclusive,
            regex: raw.regex,
            compiled,
        })
    }
}

impl Registration {
    /// The appservice's own user, `@sender_localpart:server_name`.
    pub fn sender(&self, server_name: &str) -> String {
        format!("@{}:{server_name}", self.sender_localpart)
    }

    /// Whether `user_id` is its sender or in its user namespaces.
    pub fn is_user_ours(&self, user_id: &str, server_name: &str) -> bool {
        user_id == self.sender(server_name)
            || self.namespaces.users.iter().any(|n| n.is_match(user_id))
    }

    pub fn is_alias_ours(&self, alias: &str) -> bool {
        self.namespaces.aliases.iter().any(|n| n.is_match(alias))
    }

    pub fn is_room_ours(&self, room_id: &str) -> bool {
        self.namespaces.rooms.iter().any(|n| n.is_match(room_id))
    }

    /// Whether it opted in to ephemeral events, under either key.
    pub fn wants_ephemeral(&self) -> bool {
        self.receive_ephemeral || self.push_ephemeral_msc2409
    }

    /// Parses one registration; errors name the file and the key.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let reg: Registration = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let expected = e.into_inner().to_string();
            if key == "." {
                ConfigError::Invalid {
                    file: file.to_owned(),
                    message: expected,
                }
            } else {
                ConfigError::BadValue {
                    file: file.to_owned(),
                    key,
                    expected,
                }
            }
        })?;
        let bad = |key: &str, expected: &str| ConfigError::BadValue {
            file: file.to_owned(),
            key: key.to_owned(),
            expected: expected.to_owned(),
        };
        for (key, value) in [
            ("id", &reg.id),
            ("as_token", &reg.as_token),
            ("hs_token", &reg.hs_token),
            ("sender_localpart", &reg.sender_localpart),
        ] {
            if value.is_empty() {
                return Err(bad(key, "required, and not empty"));
            }
        }
        if let Some(url) = &reg.url
            && url::Url::parse(url)
                .map(|u| !matches!(u.scheme(), "http" | "https"))
                .unwrap_or(true)
        {
            return Err(bad("url", "expected an http(s) URL or null"));
        }
        Ok(reg)
    }
}

/// Reads every registration file. Duplicate ids, `as_token`s or `hs_token`s are refused: a token
/// must say unambiguously which appservice is calling, and ids key the durable queues.
pub fn load_files(files: &[String]) -> Result<Vec<Registration>, ConfigError> {
    let mut out: Vec<Registration> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let reg = Registration::parse(&text, file)?;
        let dup = |key: &str, other: &Registration| ConfigError::BadValue {
            file: file.clone(),
            key: key.to_owned(),
            expected: format!("already used by application service `{}`", other.id),
        };
        for other in &out {
            if other.id == reg.id {
                return Err(dup("id", other));
            }
            if other.as_token == reg.as_token || other.hs_token == reg.as_token {
                return Err(dup("as_token", other));
            }
            if other.hs_token == reg.hs_token || other.as_token == reg.hs_token {
                return Err(dup("hs_token", other));
            }
        }
        out.push(reg);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "id: irc\nurl: http://127.0.0.1:9000\nas_token: a\nhs_token: h\n\
        sender_localpart: ircbot\nnamespaces:\n  users:\n    - exclusive: true\n      regex: '@_irc_.*'\n";

    #[test]
    fn a_registration_parses_with_spec_defaults() {
        let r = Registration::parse(GOOD, "irc.yaml").unwrap();
        assert!(r.rate_limited);
        assert!(r.namespaces.users[0].is_match("@_irc_bob:hs"));
        assert!(!r.namespaces.users[0].is_match("@bob:hs"));
        assert!(r.is_user_ours("@ircbot:hs", "hs"));
    }

    #[test]
    fn a_bad_regex_names_the_file_and_key() {
        let text = GOOD.replace("'@_irc_.*'", "'@_irc_(('");
        let err = Registration::parse(&text, "irc.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("irc.yaml"), "{err}");
        assert!(err.contains("namespaces.users[0]"), "{err}");
    }

    #[test]
    fn a_missing_token_names_the_key() {
        let text = GOOD.replace("as_token: a\n", "");
        let err = Registration::parse(&text, "irc.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("as_token"), "{err}");
    }

    #[test]
    fn duplicate_ids_and_tokens_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, GOOD).unwrap();
        std::fs::write(&b, GOOD.replace("id: irc", "id: other")).unwrap();
        let files = [a.display().to_string(), b.display().to_string()];
        let err = load_files(&files).unwrap_err().to_string();
        assert!(err.contains("b.yaml") && err.contains("as_token"), "{err}");
        std::fs::write(
            &b,
            GOOD.replace("as_token: a", "as_token: z")
                .replace("hs_token: h", "hs_token: y"),
        )
        .unwrap();
        let err = load_files(&files).unwrap_err().to_string();
        assert!(err.contains("`id`"), "{err}");
    }
}
