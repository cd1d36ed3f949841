//! `getUpdates` (long polling) and the webhook methods.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::fake_bot_api::FakeBotApi;
use crate::fake_bot_api::error::ApiError;
use crate::fake_bot_api::params::Params;
use crate::fake_bot_api::world::World;

/// Telegram answers long polls after at most about this long whatever `timeout` asks.
const MAX_TIMEOUT_SECS: i64 = 50;

pub(super) async fn get_updates(state: &FakeBotApi, p: &Params) -> Result<Value, ApiError> {
    let offset = p.int("offset")?;
    let limit = usize::try_from(p.int("limit")?.unwrap_or(100).clamp(1, 100)).unwrap_or(100);
    let timeout = p.int("timeout")?.unwrap_or(0).clamp(0, MAX_TIMEOUT_SECS);
    let allowed = match p.json("allowed_updates")? {
        None => None,
        Some(v) => Some(
            serde_json::from_value::<Vec<String>>(v)
                .map_err(|_| ApiError::bad_request("can't parse allowed_updates JSON array"))?,
        ),
    };
    let deadline = Instant::now() + Duration::from_secs(timeout.unsigned_abs());
    let generation = {
        let mut w = state.lock();
        if !w.webhook_url.is_empty() {
            return Err(ApiError::conflict(
                "can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            ));
        }
        w.set_allowed_updates(allowed);
        w.poll_generation += 1;
        w.poll_generation
    };
    // Wake an older long poll so it can see it was replaced.
    state.updates.notify_waiters();
    loop {
        let notified = state.updates.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut w = state.lock();
            if w.poll_generation != generation {
                return Err(ApiError::conflict(
                    "terminated by other getUpdates request; make sure that only one bot instance is running",
                ));
            }
            let updates = w.take_updates(offset, limit);
            if !updates.is_empty() || Instant::now() >= deadline {
                return Ok(updates.into());
            }
        }
        let _ = tokio::time::timeout_at(deadline, notified).await;
    }
}

pub(super) fn set_webhook(w: &mut World, p: &Params) -> Result<Value, ApiError> {
    let url = p.string("url").unwrap_or_default();
    if !url.is_empty() && !url.starts_with("https://") {
        return Err(ApiError::bad_request(
            "bad webhook: An HTTPS URL must be provided for webhook",
        ));
    }
    if p.bool("drop_pending_updates")? {
        w.drop_pending_updates();
    }
    w.webhook_url = url;
    Ok(true.into())
}

pub(super) fn delete_webhook(w: &mut World, p: &Params) -> Result<Value, ApiError> {
    if p.bool("drop_pending_updates")? {
        w.drop_pending_updates();
    }
    w.webhook_url.clear();
    Ok(true.into())
}

pub(super) fn get_webhook_info(w: &World) -> Value {
    json!({
        "url": w.webhook_url,
        "has_custom_certificate": false,
        "pending_update_count": w.pending_update_count(),
    })
}
