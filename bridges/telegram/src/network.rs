//! The teloxide adapter: Telegram as an `appservice_sdk::Network`.
//!
//! - [`api`]: Bot API calls with `retry_after` and retries.
//! - [`poll`]: the `getUpdates` loop; the offset is saved only after Matrix accepted each update.
//! - [`to_matrix`]: carries out what an update means ([`crate::updates`]) in the portal.
//! - [`to_telegram`]: Matrix messages, edits, redactions, reactions and typing, relayed by the bot.
//! - [`commands`]: `bridge CODE`, `link CHAT_ID` and `unlink` in Matrix management rooms and portals.

pub mod api;
mod commands;
mod poll;
mod to_matrix;
mod to_telegram;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use appservice_sdk::bridge::{
    Bridge, MatrixEdit, MatrixMessage, MatrixReaction, MatrixRedaction, Network, NetworkInfo,
};
use appservice_sdk::commands::{CommandContext, CommandHelp};
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use async_trait::async_trait;
use ruma::UserId;
use tokio::sync::watch;

use crate::config::TelegramConfig;
use crate::link_codes::LinkCodes;

use self::api::{Api, RetryPolicy};

/// The ghost localpart prefix: Telegram user 42 is `@telegram_42:domain`.
pub const GHOST_PREFIX: &str = "telegram_";

/// At most this many avatar checks (and typing times) are cached.
const CACHE_LIMIT: usize = 10_000;
/// Telegram shows a chat action for about 5 s; no need to send it more often.
const TYPING_INTERVAL: Duration = Duration::from_secs(4);

/// Telegram, seen by the bridge framework.
pub struct TelegramNetwork {
    inner: Arc<Shared>,
}

/// What the network's tasks share.
struct Shared {
    api: Api,
    config: TelegramConfig,
    bridge: OnceLock<Bridge>,
    bot_username: OnceLock<String>,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
    poller: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Small caches, all bounded; the lock is never held across an `.await`.
struct State {
    link_codes: LinkCodes,
    /// Telegram users whose avatar was checked since start.
    avatars_checked: HashSet<i64>,
    /// Chats known to be forums (topics are threads).
    forums: HashSet<i64>,
    last_typing: HashMap<i64, Instant>,
}

impl TelegramNetwork {
    /// A network for `config`; fails only for an `api_url` that is not a URL (checked with the config).
    pub fn new(config: TelegramConfig) -> std::result::Result<Self, url::ParseError> {
        Self::with_retry(config, RetryPolicy::default())
    }

    /// Same, with a retry policy (tests make it fast).
    pub fn with_retry(
        config: TelegramConfig,
        retry: RetryPolicy,
    ) -> std::result::Result<Self, url::ParseError> {
        let api = Api::new(&config.bot_token, &config.api_url, retry)?;
        let link_codes = LinkCodes::new(Duration::from_secs(config.link_code_ttl));
        let state = State {
            link_codes,
            avatars_checked: HashSet::new(),
            forums: HashSet::new(),
            last_typing: HashMap::new(),
        };
        let inner = Shared {
            api,
            config,
            bridge: OnceLock::new(),
            bot_username: OnceLock::new(),
            state: Mutex::new(state),
            stop: watch::channel(false).0,
            poller: Mutex::new(None),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bridge(&self) -> Result<&Bridge> {
        self.bridge
            .get()
            .ok_or_else(|| Error::Network("the Telegram network is not started".to_owned()))
    }
}

/// A portal's Telegram chat id.
fn chat_id(portal: &PortalRecord) -> Result<i64> {
    portal.remote_id.parse().map_err(|_| {
        Error::Network(format!(
            "portal {} is not a Telegram chat id",
            portal.remote_id
        ))
    })
}

#[async_trait]
impl Network for TelegramNetwork {
    fn info(&self) -> NetworkInfo {
        NetworkInfo::new("telegram", "Telegram", GHOST_PREFIX)
    }

    /// Checks the token and the privacy mode, clears a webhook that would block polling, and starts polling.
    async fn start(&self, bridge: Bridge) -> Result<()> {
        self.inner.start(bridge).await
    }

    async fn stop(&self) -> Result<()> {
        self.inner.stop().await
    }

    async fn handle_matrix_message(
        &self,
        portal: &PortalRecord,
        message: &MatrixMessage,
    ) -> Result<Option<String>> {
        self.inner.send_matrix_message(portal, message).await
    }

    async fn handle_matrix_edit(&self, portal: &PortalRecord, edit: &MatrixEdit) -> Result<()> {
        self.inner.send_matrix_edit(portal, edit).await
    }

    async fn handle_matrix_redaction(
        &self,
        portal: &PortalRecord,
        redaction: &MatrixRedaction,
    ) -> Result<()> {
        self.inner.send_matrix_redaction(portal, redaction).await
    }

    async fn handle_matrix_reaction(
        &self,
        portal: &PortalRecord,
        reaction: &MatrixReaction,
    ) -> Result<()> {
        self.inner.send_matrix_reaction(portal, reaction).await
    }

    async fn handle_matrix_typing(
        &self,
        portal: &PortalRecord,
        _user_id: &UserId,
        typing: bool,
    ) -> Result<()> {
        self.inner.send_typing(portal, typing).await
    }

    fn commands(&self) -> Vec<CommandHelp> {
        commands::help()
    }

    async fn handle_command(
        &self,
        context: &CommandContext<'_>,
        command: &str,
        args: &[&str],
    ) -> Result<Option<String>> {
        self.inner.command(context, command, args).await
    }
}

impl Shared {
    async fn start(self: &Arc<Self>, bridge: Bridge) -> Result<()> {
        let me = self.api.get_me().await.map_err(|e| {
            Error::Network(format!(
                "cannot use the Bot API at {}: {e}; fix: check telegram.bot_token and telegram.api_url",
                self.config.api_url
            ))
        })?;
        let username = me.user.username.clone().unwrap_or_default();
        tracing::info!(bot = %username, id = me.user.id.0, "Telegram bot ready");
        if !me.can_read_all_group_messages {
            tracing::warn!(
                "the bot is in privacy mode: in groups it only sees commands and replies to it. Fix: in \
                 @BotFather send /setprivacy, choose the bot, Disable; then remove and re-add it to each group"
            );
        }
        match self.api.webhook_url().await {
            Ok(url) if !url.is_empty() => {
                tracing::warn!(%url, "a webhook is set, which blocks getUpdates; deleting it");
                self.api.delete_webhook().await?;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the webhook info"),
        }
        let _ = self.bot_username.set(username);
        let _ = self.bridge.set(bridge.clone());
        let _ = self.stop.send(false);
        let poller = tokio::spawn(poll::run(self.clone(), bridge, self.stop.subscribe()));
        *self
            .poller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(poller);
        Ok(())
    }

    /// Stops polling between two updates, so nothing is half done.
    async fn stop(&self) -> Result<()> {
        let _ = self.stop.send(true);
        let poller = self
            .poller
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(poller) = poller
            && tokio::time::timeout(Duration::from_secs(30), poller)
                .await
                .is_err()
        {
            tracing::warn!("the update poller did not stop within 30 s");
        }
        Ok(())
    }

    async fn send_typing(&self, portal: &PortalRecord, typing: bool) -> Result<()> {
        let chat = chat_id(portal)?;
        let due = {
            let mut state = self.state();
            let now = Instant::now();
            let due = typing
                && state
                    .last_typing
                    .get(&chat)
                    .is_none_or(|at| now.duration_since(*at) >= TYPING_INTERVAL);
            if due {
                if state.last_typing.len() >= CACHE_LIMIT {
                    state.last_typing.clear();
                }
                state.last_typing.insert(chat, now);
            }
            due
        };
        if due {
            self.api.typing(chat).await?;
        }
        Ok(())
    }
}
