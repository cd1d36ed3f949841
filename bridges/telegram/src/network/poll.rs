//! The `getUpdates` loop. Telegram keeps updates for 24 hours until a call with a higher `offset` confirms
//! them, so the offset is saved only after each update was carried out in Matrix: a crash or a stop replays
//! what was not confirmed (the SDK makes sends idempotent by remote id) and loses nothing.

use std::sync::Arc;
use std::time::Duration;

use appservice_sdk::Bridge;
use appservice_sdk::status::BridgeState;
use teloxide::payloads::GetUpdatesSetters;
use teloxide::prelude::Requester;
use teloxide::types::{AllowedUpdate, Update};
use tokio::sync::watch;

use super::Shared;
use crate::updates::classify;

/// Where the next offset is kept: the SDK's cursor table, under a key no chat id can take.
pub(crate) const OFFSET_KEY: &str = "fi.causeway.telegram/getUpdates";

/// Reactions and member changes are not sent unless asked for.
const ALLOWED_UPDATES: [AllowedUpdate; 6] = [
    AllowedUpdate::Message,
    AllowedUpdate::EditedMessage,
    AllowedUpdate::ChannelPost,
    AllowedUpdate::EditedChannelPost,
    AllowedUpdate::MessageReaction,
    AllowedUpdate::ChatMember,
];

const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Polls until `stop` turns true; each update is handled completely before the next.
pub(super) async fn run(net: Arc<Shared>, bridge: Bridge, mut stop: watch::Receiver<bool>) {
    let mut offset = load_offset(&bridge).await;
    let mut backoff = Duration::from_secs(1);
    let timeout = net.config.poll_timeout;
    tracing::info!(?offset, "polling Telegram for updates");
    while !*stop.borrow() {
        let request = net.api.call("getUpdates", |bot| {
            let mut request = bot
                .get_updates()
                .timeout(timeout)
                .allowed_updates(ALLOWED_UPDATES);
            if let Some(offset) = offset {
                request = request.offset(offset);
            }
            async move { request.await }
        });
        let updates = tokio::select! {
            result = request => result,
            _ = stop.changed() => return,
        };
        let updates = match updates {
            Ok(updates) => {
                if backoff > Duration::from_secs(1) {
                    bridge.set_status(BridgeState::Connected, None).await;
                }
                backoff = Duration::from_secs(1);
                updates
            }
            Err(e) => {
                // teloxide words Telegram's 401 "Unauthorized" as "Invalid bot token".
                let (state, problem) = if e.description.contains("Invalid bot token") {
                    (
                        BridgeState::BadCredentials,
                        "Telegram refused the bot token; fix: check telegram.bot_token",
                    )
                } else if e.description.contains("Conflict") {
                    (
                        BridgeState::TransientDisconnect,
                        "another client polls this bot; fix: run one telegram-bridge per bot token",
                    )
                } else {
                    (
                        BridgeState::TransientDisconnect,
                        "Telegram is not reachable; retrying",
                    )
                };
                tracing::warn!(error = %e, "getUpdates failed: {problem}");
                bridge
                    .set_status(state, Some(format!("{problem} ({e})")))
                    .await;
                if sleep_or_stop(backoff, &mut stop).await {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        for update in updates {
            if !net.handle_update(&bridge, &update, &mut stop).await {
                return;
            }
            offset = Some(update.id.as_offset());
            if !save_offset(&bridge, update.id.as_offset(), &mut stop).await {
                return;
            }
        }
    }
}

impl Shared {
    /// Carries out one update; transient failures (homeserver or database away) are retried until they pass
    /// or the bridge stops (then `false`); other failures are logged and the update is skipped.
    async fn handle_update(
        &self,
        bridge: &Bridge,
        update: &Update,
        stop: &mut watch::Receiver<bool>,
    ) -> bool {
        let bot_username = self
            .bot_username
            .get()
            .map(String::as_str)
            .unwrap_or_default();
        let mentions = super::to_matrix::GhostMentions::new(bridge);
        if let teloxide::types::UpdateKind::Error(raw) = &update.kind {
            // Telegram sent something teloxide cannot read (a new field shape, a missing mime_type): say so.
            tracing::warn!(update_id = update.id.0, %raw, "an update teloxide cannot parse is skipped");
        }
        let actions = classify(update, bot_username, &mentions);
        for action in actions {
            let mut wait = Duration::from_millis(500);
            loop {
                match self.apply(bridge, &action).await {
                    Ok(()) => break,
                    Err(e) if e.is_transient() => {
                        tracing::warn!(update_id = update.id.0, error = %e, "Matrix is not reachable; retrying");
                        if sleep_or_stop(wait, stop).await {
                            return false;
                        }
                        wait = (wait * 2).min(MAX_BACKOFF);
                    }
                    Err(e) => {
                        tracing::warn!(update_id = update.id.0, error = %e, "update not bridged");
                        break;
                    }
                }
            }
        }
        true
    }
}

/// Sleeps; true if the bridge is stopping.
async fn sleep_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(wait) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

async fn load_offset(bridge: &Bridge) -> Option<i32> {
    match bridge.store().backfill_cursor(OFFSET_KEY).await {
        Ok(cursor) => cursor.and_then(|c| c.parse().ok()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the saved update offset; starting from Telegram's queue");
            None
        }
    }
}

async fn save_offset(bridge: &Bridge, offset: i32, stop: &mut watch::Receiver<bool>) -> bool {
    let mut wait = Duration::from_millis(200);
    loop {
        match bridge
            .store()
            .set_backfill_cursor(OFFSET_KEY, &offset.to_string())
            .await
        {
            Ok(()) => return true,
            Err(e) => {
                tracing::warn!(error = %e, offset, "cannot save the update offset; retrying");
                if sleep_or_stop(wait, stop).await {
                    return false;
                }
                wait = (wait * 2).min(MAX_BACKOFF);
            }
        }
    }
}
