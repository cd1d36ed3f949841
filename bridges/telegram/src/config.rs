//! The bridge config: the SDK's mautrix-like sections (`homeserver`, `appservice`, `bridge`) plus `telegram:`.
//!
//! ```yaml
//! telegram:
//!   bot_token: "123456:ABC-DEF"              # from @BotFather (required)
//!   api_url: https://api.telegram.org        # or a local Bot API server, or fake-bot-api
//!   message_template: "<b>{displayname}</b>: {message}"
//!   emote_template: "* <b>{displayname}</b> {message}"
//!   poll_timeout: 30                          # getUpdates long-poll seconds
//!   link_code_ttl: 600                        # seconds a /bridge code stays valid
//! ```
//!
//! Values are checked once at start; a wrong one is an error naming the file, the key and the fix.
//! Unknown keys under `telegram:` are warnings.

use std::path::Path;

use appservice_sdk::config::BridgeConfig;
use serde::{Deserialize, Serialize};

use crate::convert::relay::{self, DEFAULT_EMOTE_TEMPLATE, DEFAULT_MESSAGE_TEMPLATE};

/// The whole config, as the SDK reads it (the network section stays YAML there).
pub type Config = BridgeConfig<serde_yaml_ng::Value>;

/// The `telegram:` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TelegramConfig {
    /// The bot's token from @BotFather, `<bot id>:<secret>`. Required.
    pub bot_token: String,
    /// Base URL of the Bot API. Default `https://api.telegram.org`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// How a Matrix message reads in Telegram (Telegram HTML); `{displayname}`, `{user_id}`, `{message}`.
    /// Default `<b>{displayname}</b>: {message}`.
    #[serde(default = "default_message_template")]
    pub message_template: String,
    /// Same for `m.emote`. Default `* <b>{displayname}</b> {message}`.
    #[serde(default = "default_emote_template")]
    pub emote_template: String,
    /// Seconds a `getUpdates` long poll waits. Default 30; 1 to 50.
    #[serde(default = "default_poll_timeout")]
    pub poll_timeout: u32,
    /// Seconds a `/bridge` link code stays valid. Default 600.
    #[serde(default = "default_link_code_ttl")]
    pub link_code_ttl: u64,
}

fn default_api_url() -> String {
    "https://api.telegram.org".to_owned()
}
fn default_message_template() -> String {
    DEFAULT_MESSAGE_TEMPLATE.to_owned()
}
fn default_emote_template() -> String {
    DEFAULT_EMOTE_TEMPLATE.to_owned()
}
fn default_poll_timeout() -> u32 {
    30
}
fn default_link_code_ttl() -> u64 {
    600
}

/// A config that cannot be used: where, what and how to fix it. Displayed on one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {key}: {problem}{}", fix.as_ref().map(|f| format!("; fix: {f}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
    pub fix: Option<String>,
}

/// The loaded config, and warnings (unknown keys) to log once tracing is up.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub telegram: TelegramConfig,
    pub warnings: Vec<String>,
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: file.clone(),
        key: "(file)".to_owned(),
        problem: format!("cannot read it: {e}"),
        fix: Some("pass the config with -c FILE".to_owned()),
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
            Some("see the example config in bridges/telegram/README.md"),
        )
    })?;
    #[derive(Deserialize)]
    struct Section {
        telegram: Option<TelegramConfig>,
    }
    let mut warnings = Vec::new();
    let deserializer = serde_yaml_ng::Deserializer::from_str(text);
    let section: Section = serde_ignored::deserialize(deserializer, |path| {
        // `telegram` is an Option, which serde_ignored shows as a `?` segment.
        let path = path.to_string().replace(".?.", ".");
        if path.starts_with("telegram.") {
            warnings.push(format!("{file}: unknown key {path} is ignored"));
        }
    })
    .map_err(|e| {
        let (key, problem) = split_yaml_error(&e.to_string());
        error(&key, problem, None)
    })?;
    let Some(telegram) = section.telegram else {
        return Err(error(
            "telegram",
            "the section is missing".to_owned(),
            Some("add `telegram:` with at least `bot_token: \"<token from @BotFather>\"`"),
        ));
    };
    check(&telegram).map_err(|(key, problem, fix)| error(key, problem, Some(fix)))?;
    // The SDK keeps every top-level key it does not know as the network's; only `telegram` is ours.
    if let serde_yaml_ng::Value::Mapping(rest) = &config.network {
        for key in rest
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| *k != "telegram")
        {
            warnings.push(format!("{file}: unknown key {key} is ignored"));
        }
    }
    Ok(Loaded {
        config,
        telegram,
        warnings,
    })
}

type Problem = (&'static str, String, &'static str);

fn check(t: &TelegramConfig) -> Result<(), Problem> {
    let token_ok = t.bot_token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.chars().all(|c| c.is_ascii_digit())
            && !secret.is_empty()
            && secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    });
    if !token_ok {
        return Err((
            "telegram.bot_token",
            "is not a bot token".to_owned(),
            "use the token @BotFather gave you, like \"123456789:AAH-abc_DEF\" (quoted)",
        ));
    }
    match url::Url::parse(&t.api_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => {
            return Err((
                "telegram.api_url",
                format!("{:?} is not an http(s) URL", t.api_url),
                "use https://api.telegram.org, or the http://host:port of a local Bot API server or fake-bot-api",
            ));
        }
    }
    relay::check(&t.message_template).map_err(|p| {
        (
            "telegram.message_template",
            p,
            "use Telegram HTML with {message}, e.g. \"<b>{displayname}</b>: {message}\"",
        )
    })?;
    relay::check(&t.emote_template).map_err(|p| {
        (
            "telegram.emote_template",
            p,
            "use Telegram HTML with {message}, e.g. \"* <b>{displayname}</b> {message}\"",
        )
    })?;
    if !(1..=50).contains(&t.poll_timeout) {
        return Err((
            "telegram.poll_timeout",
            format!("{} is out of range", t.poll_timeout),
            "use 1 to 50 seconds (Telegram ends long polls after about 50 s)",
        ));
    }
    if t.link_code_ttl == 0 {
        return Err((
            "telegram.link_code_ttl",
            "0 makes every link code expire at once".to_owned(),
            "use a number of seconds such as 600",
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
pub const EXAMPLE: &str = r#"homeserver:
  address: http://127.0.0.1:8008      # where the bridge reaches the homeserver
  domain: localhost                   # the server name in user ids
appservice:
  address: http://127.0.0.1:29317     # where the homeserver reaches the bridge
  hostname: 127.0.0.1
  port: 29317
  id: telegram
  bot:
    username: telegrambot
    displayname: Telegram bridge
  database: sqlite:telegram-bridge.db # or postgres://user@host/db
bridge:
  permissions:                        # relay < user (may link chats) < admin
    "*": relay
    localhost: user
  # portal_power_levels:              # power the bot gives in the portal rooms it makes, e.g. to
  #   "@ircbot:localhost": 100        # the IRC bridge's bot, to mirror IRC ops in shared rooms
telegram:
  bot_token: "123456:CHANGE-ME"       # from @BotFather
  api_url: https://api.telegram.org   # or http://127.0.0.1:8081 for fake-bot-api
  message_template: "<b>{displayname}</b>: {message}"
  emote_template: "* <b>{displayname}</b> {message}"
  poll_timeout: 30
  link_code_ttl: 600
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn with_telegram(section: &str) -> String {
        let base = EXAMPLE.split("telegram:\n").next().unwrap();
        format!("{base}telegram:\n{section}")
    }

    #[test]
    fn the_example_config_loads_with_documented_defaults() {
        let loaded = parse("config.yaml", EXAMPLE).unwrap();
        assert_eq!(loaded.telegram.api_url, "https://api.telegram.org");
        assert_eq!(loaded.config.appservice.id, "telegram");
        let minimal = parse("c.yaml", &with_telegram("  bot_token: \"1:a\"\n")).unwrap();
        assert_eq!(minimal.telegram.message_template, DEFAULT_MESSAGE_TEMPLATE);
        assert_eq!(minimal.telegram.poll_timeout, 30);
        assert!(minimal.warnings.is_empty());
    }

    #[test]
    fn a_bad_token_names_file_key_and_fix() {
        let err = parse("/etc/tg.yaml", &with_telegram("  bot_token: hello\n")).unwrap_err();
        let line = err.to_string();
        assert!(
            line.starts_with("/etc/tg.yaml: telegram.bot_token: is not a bot token; fix: "),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn a_wrong_type_names_the_key_path() {
        let err = parse(
            "c.yaml",
            &with_telegram("  bot_token: \"1:a\"\n  poll_timeout: soon\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "telegram.poll_timeout", "{err}");
        let err = parse(
            "c.yaml",
            &with_telegram("  bot_token: \"1:a\"\n  poll_timeout: 90\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "telegram.poll_timeout");
        assert!(err.fix.unwrap().contains("1 to 50"));
    }

    #[test]
    fn bad_urls_and_templates_are_refused() {
        let err = parse(
            "c.yaml",
            &with_telegram("  bot_token: \"1:a\"\n  api_url: ftp://x\n"),
        )
        .unwrap_err();
        assert_eq!(err.key, "telegram.api_url");
        let err = parse(
            "c.yaml",
            &with_telegram(
                "  bot_token: \"1:a\"\n  message_template: \"{displayname}<br>{message}\"\n",
            ),
        )
        .unwrap_err();
        assert_eq!(err.key, "telegram.message_template");
        assert!(err.problem.contains("Unsupported start tag"), "{err}");
        let err = parse(
            "c.yaml",
            &with_telegram("  bot_token: \"1:a\"\n  emote_template: \"{displayname}\"\n"),
        )
        .unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.problem.as_str()),
            ("telegram.emote_template", "must contain {message}")
        );
    }

    #[test]
    fn a_missing_section_or_shared_key_is_an_error_and_unknown_keys_warn() {
        let base = EXAMPLE.split("telegram:\n").next().unwrap();
        let err = parse("c.yaml", base).unwrap_err();
        assert_eq!(err.key, "telegram");
        let err = parse("c.yaml", &EXAMPLE.replace("  id: telegram\n", "")).unwrap_err();
        assert!(err.to_string().contains("id"), "{err}");
        let loaded = parse(
            "c.yaml",
            &format!(
                "irc: {{}}\n{}",
                with_telegram("  bot_token: \"1:a\"\n  bot_tokne: x\n")
            ),
        )
        .unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "c.yaml: unknown key telegram.bot_tokne is ignored",
                "c.yaml: unknown key irc is ignored"
            ]
        );
    }
}
