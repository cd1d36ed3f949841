//! Backfill: inserting a portal's history with its original timestamps.
//!
//! If the homeserver advertises [`BATCH_SEND_FEATURE`] in `/versions` `unstable_features`,
//! events go in batches to
//! `POST /_matrix/client/unstable/fi.causeway.batch_send/rooms/{roomId}/batch_send`;
//! otherwise each event is sent on its own, in order, as its ghost with `?ts=`. Either way the
//! portal's backfill cursor advances as events land, so an interrupted backfill resumes
//! where it stopped, and events already bridged are not sent again.

use ruma::OwnedUserId;
use serde_json::{Value, json};

use crate::appservice::Appservice;
use crate::error::{Error, Result};
use crate::intent::{SendOptions, txn_id_for};
use crate::store::{MessageRecord, PortalRecord, Store};

/// The `/versions` unstable feature that announces batch sending.
pub const BATCH_SEND_FEATURE: &str = "fi.causeway.batch_send";

/// Events per batch-send request.
pub const BATCH_SIZE: usize = 100;

/// One historical event.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryEvent {
    /// The network's id for it; becomes the cursor.
    pub remote_id: String,
    /// The ghost (or bot) that sends it.
    pub sender: OwnedUserId,
    /// Event type, e.g. `m.room.message`.
    pub event_type: String,
    /// Content.
    pub content: Value,
    /// Original time, ms since the epoch.
    pub ts: u64,
    /// State key, for state events.
    pub state_key: Option<String>,
}

/// What a backfill did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillReport {
    /// Events sent now.
    pub sent: usize,
    /// Events skipped because an earlier run sent them.
    pub skipped: usize,
    /// Whether the batch endpoint was used.
    pub batched: bool,
}

/// Sends `history` (oldest first) into `portal`, resuming after the stored cursor.
///
/// ```no_run
/// # async fn demo(appservice: appservice_sdk::Appservice, store: appservice_sdk::store::Store,
/// #               portal: appservice_sdk::store::PortalRecord) -> appservice_sdk::Result<()> {
/// use appservice_sdk::backfill::{HistoryEvent, backfill};
/// let history = vec![HistoryEvent {
///     remote_id: "m1".to_owned(),
///     sender: appservice.user_id("echo_alice")?,
///     event_type: "m.room.message".to_owned(),
///     content: appservice_sdk::content::text("from last year"),
///     ts: 1_700_000_000_000,
///     state_key: None,
/// }];
/// let report = backfill(&appservice, &store, &portal, &history).await?;
/// println!("{} sent, batched: {}", report.sent, report.batched);
/// # Ok(()) }
/// ```
pub async fn backfill(
    appservice: &Appservice,
    store: &Store,
    portal: &PortalRecord,
    history: &[HistoryEvent],
) -> Result<BackfillReport> {
    let start = match store.backfill_cursor(&portal.remote_id).await? {
        Some(cursor) => history
            .iter()
            .position(|e| e.remote_id == cursor)
            .map_or(0, |i| i + 1),
        None => 0,
    };
    let mut report = BackfillReport {
        skipped: start,
        ..BackfillReport::default()
    };
    let mut pending = Vec::new();
    for event in &history[start..] {
        if store
            .message_by_remote_id(&portal.remote_id, &event.remote_id)
            .await?
            .is_some()
        {
            report.skipped += 1;
        } else {
            pending.push(event);
        }
    }
    report.batched = appservice
        .client()
        .versions()
        .has_feature(BATCH_SEND_FEATURE);
    if report.batched {
        for chunk in pending.chunks(BATCH_SIZE) {
            let event_ids = batch_send(appservice, portal, chunk).await?;
            for (event, event_id) in chunk.iter().zip(event_ids) {
                record(store, portal, event, &event_id).await?;
            }
            report.sent += chunk.len();
        }
    } else {
        for event in pending {
            let intent = appservice.intent(&event.sender);
            let options = SendOptions {
                ts: Some(event.ts),
                txn_id: Some(txn_id_for(&portal.remote_id, &event.remote_id)),
            };
            let event_id = match &event.state_key {
                Some(key) => {
                    intent
                        .send_state(
                            &portal.room_id,
                            &event.event_type,
                            key,
                            &event.content,
                            options,
                        )
                        .await?
                }
                None => {
                    intent
                        .send_event(&portal.room_id, &event.event_type, &event.content, options)
                        .await?
                }
            };
            record(store, portal, event, event_id.as_str()).await?;
            report.sent += 1;
        }
    }
    Ok(report)
}

async fn batch_send(
    appservice: &Appservice,
    portal: &PortalRecord,
    chunk: &[&HistoryEvent],
) -> Result<Vec<String>> {
    let events: Vec<Value> = chunk
        .iter()
        .map(|e| {
            let mut event = json!({
                "type": e.event_type,
                "sender": e.sender,
                "content": e.content,
                "origin_server_ts": e.ts,
            });
            if let Some(key) = &e.state_key {
                event["state_key"] = json!(key);
            }
            event
        })
        .collect();
    let path = format!(
        "/_matrix/client/unstable/fi.causeway.batch_send/rooms/{}/batch_send",
        url::form_urlencoded::byte_serialize(portal.room_id.as_str().as_bytes())
            .collect::<String>()
    );
    let answer = appservice
        .client()
        .send_json(
            reqwest::Method::POST,
            &path,
            None,
            Some(&json!({"events": events})),
        )
        .await?;
    let ids: Vec<String> = answer["event_ids"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if ids.len() != chunk.len() {
        return Err(Error::Protocol(format!(
            "batch_send answered {} event ids for {} events",
            ids.len(),
            chunk.len()
        )));
    }
    Ok(ids)
}

async fn record(
    store: &Store,
    portal: &PortalRecord,
    event: &HistoryEvent,
    event_id: &str,
) -> Result<()> {
    if event.state_key.is_none() {
        store
            .insert_message(&MessageRecord {
                portal_id: portal.remote_id.clone(),
                remote_id: event.remote_id.clone(),
                event_id: crate::store::parse_id("event_id", event_id.to_owned())?,
                sender: event.sender.clone(),
                ts: event.ts as i64,
            })
            .await?;
    }
    store
        .set_backfill_cursor(&portal.remote_id, &event.remote_id)
        .await
}
