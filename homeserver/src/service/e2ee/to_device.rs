//! To-device messages: queued per device on the shared stream, delivered by `/sync` in order,
//! and dropped once the device syncs past them (the spec's acknowledgement).

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::{
    error::{Error, Result},
    service::{Services, accounts::Requester, sync::MAX_TO_DEVICE},
    store::ToDeviceRow,
};

/// One message of a `sendToDevice` request: the recipient's user, device (`*` = every device
/// of theirs) and content.
#[derive(Debug)]
pub struct Outgoing {
    pub user_id: String,
    pub device_id: String,
    pub content: Value,
}

impl Services {
    /// Queues messages of `event_type` from the requester's device. A repeated `txn_id` (per
    /// device) sends nothing again. Recipients on other servers and devices that do not exist
    /// are skipped (no federation yet).
    pub async fn send_to_device(
        &self,
        who: &Requester,
        event_type: &str,
        txn_id: &str,
        messages: Vec<Outgoing>,
    ) -> Result<()> {
        let suffix = format!(":{}", self.config.server_name);
        let mut rows = Vec::new();
        let mut existing: HashMap<String, Vec<String>> = HashMap::new();
        for m in messages {
            if !m.user_id.ends_with(&suffix) {
                continue;
            }
            // Only devices that exist: a message for an unknown device would wait forever.
            if !existing.contains_key(&m.user_id) {
                let ids = self.store.devices(&m.user_id).await?;
                let ids = ids.into_iter().map(|d| d.device_id).collect();
                existing.insert(m.user_id.clone(), ids);
            }
            let devices: Vec<String> = existing[&m.user_id]
                .iter()
                .filter(|d| m.device_id == "*" || **d == m.device_id)
                .cloned()
                .collect();
            for device_id in devices {
                rows.push(ToDeviceRow {
                    user_id: m.user_id.clone(),
                    device_id,
                    stream_id: 0,
                    sender: who.user_id.clone(),
                    event_type: event_type.to_owned(),
                    content: m.content.to_string(),
                });
            }
        }
        // The position is reserved only now, so the device lookups above hold back no reader.
        let reservation = self.stream.reserve();
        for row in &mut rows {
            row.stream_id = reservation.position;
        }
        let queued = self
            .store
            .queue_to_device(&who.user_id, &who.device_id, txn_id, &rows)
            .await?;
        if queued {
            let mut users: Vec<&str> = rows.iter().map(|r| r.user_id.as_str()).collect();
            users.sort_unstable();
            users.dedup();
            for user in users {
                self.activity.to_device_queued(user, reservation.position);
            }
        }
        Ok(())
    }

    /// The device's messages to deliver in a sync from `since` up to `upto`, at most
    /// [`MAX_TO_DEVICE`]: those after `since`; the ones up to `since` were delivered before and
    /// are dropped now. Also the position delivered up to when some were held back.
    pub(crate) async fn to_device_for_sync(
        &self,
        user_id: &str,
        device_id: &str,
        since: Option<i64>,
        upto: i64,
    ) -> Result<(Vec<Value>, Option<i64>)> {
        // Known to have nothing pending, and nothing queued for the user since: no query.
        if let Some(empty_at) = self.device_cache.to_device_empty_at(user_id, device_id)
            && !self.activity.to_device_may_have_changed(user_id, empty_at)
        {
            return Ok((Vec::new(), None));
        }
        let since = since.unwrap_or(0);
        if since > 0 {
            self.store
                .delete_to_device_messages(user_id, device_id, since)
                .await?;
        }
        let mut pending = self
            .store
            .to_device_messages(user_id, device_id, since, upto, MAX_TO_DEVICE as i64 + 1)
            .await?;
        let held_back = pending.len() > MAX_TO_DEVICE;
        pending.truncate(MAX_TO_DEVICE);
        if pending.is_empty() {
            // Everything up to `upto` was read, and what was acknowledged is deleted now.
            self.device_cache
                .set_to_device_empty(user_id, device_id, upto);
        } else {
            self.device_cache.forget_to_device(user_id, device_id);
        }
        let delivered_upto = held_back
            .then(|| pending.last().map(|m| m.stream_id))
            .flatten();
        let events = pending
            .into_iter()
            .map(|m| {
                let content: Value = serde_json::from_str(&m.content).map_err(Error::internal)?;
                Ok(json!({"sender": m.sender, "type": m.event_type, "content": content}))
            })
            .collect::<Result<_>>()?;
        Ok((events, delivered_upto))
    }
}
