//! Redactions: the `m.room.redaction` event, then the target's stored JSON pruned.

use ruma::{CanonicalJsonObject, canonical_json::RedactedBecause};
use serde_json::json;

use super::{EventSpec, build::Sent};
use crate::{
    error::{Error, Result},
    service::Services,
};

impl Services {
    /// Redacts `event_id` in `room_id` as `sender`. Others' events need the `redact` power level.
    pub async fn redact(
        &self,
        room_id: &str,
        sender: &str,
        event_id: &str,
        reason: Option<&str>,
        txn: Option<(String, String)>,
    ) -> Result<Sent> {
        let target = self
            .store
            .event(event_id)
            .await?
            .filter(|e| e.room_id == room_id);
        let target = target.ok_or_else(|| Error::not_found("Event not found"))?;
        let handle = self
            .rooms
            .get(&self.store, room_id)
            .await?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        let mut room = handle.lock().await;
        if room.membership(sender).as_deref() != Some("join") {
            return Err(Error::forbidden("You are not in this room"));
        }
        if target.sender != sender {
            let power = room
                .get("m.room.power_levels", "")
                .map(|p| p.content_value())
                .unwrap_or_default();
            let level = power["users"][sender]
                .as_i64()
                .unwrap_or_else(|| power["users_default"].as_i64().unwrap_or(0));
            if level < power["redact"].as_i64().unwrap_or(50) {
                return Err(Error::forbidden("You may not redact other users' events"));
            }
        }
        let mut content = json!({"redacts": event_id});
        if let Some(reason) = reason {
            content["reason"] = json!(reason);
        }
        let mut spec = EventSpec::message("m.room.redaction", content);
        spec.txn = txn;
        let sent = self.build_and_send(&mut room, sender, spec).await?;
        let rules = room.rules.redaction.clone();
        drop(room);
        if target.redacted_by.is_none() {
            let obj: CanonicalJsonObject =
                serde_json::from_str(&target.json).map_err(Error::internal)?;
            let redaction_row = self
                .store
                .event(sent.event_id.as_str())
                .await?
                .ok_or_else(|| Error::internal("redaction vanished"))?;
            let because_json =
                crate::service::client_event::client_event(&redaction_row, Default::default());
            let because: CanonicalJsonObject =
                serde_json::from_value(because_json).map_err(Error::internal)?;
            let pruned = ruma::canonical_json::redact(
                obj,
                &rules,
                Some(RedactedBecause::from_json(because)),
            )
            .map_err(Error::internal)?;
            let pruned = serde_json::to_string(&pruned).map_err(Error::internal)?;
            self.store
                .redact_event(event_id, &pruned, sent.event_id.as_str())
                .await?;
            self.recent.forget_room(room_id);
            tracing::info!(room_id, sender, event_id, "event redacted");
        }
        Ok(sent)
    }
}
