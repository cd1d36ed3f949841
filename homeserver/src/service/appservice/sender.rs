//! Delivers events to appservices: `PUT {url}/_matrix/app/v1/transactions/{txnId}`.
//!
//! Each appservice with a `url` has one task. It reads the events table in stream order up to
//! [`Stream::safe`](crate::service::stream::Stream::safe) (so an event that commits late is never
//! skipped), keeps the ones the appservice is interested in, and queues them as a transaction of at
//! most [`MAX_EVENTS`] in the database in the same commit that moves its cursor. Only then is the
//! transaction sent; it leaves the queue when the appservice answers 2xx. A failed send is retried
//! with the same txnId and body after a capped exponential backoff, and nothing newer goes out
//! before it, so an outage or a restart delays events but never drops or reorders them.
//!
//! Ephemeral data (MSC2409, `receive_ephemeral` or `de.sorunome.msc2409.push_ephemeral`) goes in
//! the same transactions under `ephemeral`, to appservices that opted in:
//! - receipts and presence live on the shared stream, so they are read with the events of the same
//!   stretch of the stream and queued with them: durable and in order, like events. A receipt
//!   replaced before it was queued is sent as its latest version.
//! - typing lives only in memory, so it is best-effort, as in Synapse: a change is sent with the
//!   next transaction as the room's typing users at that moment; changes made while the homeserver
//!   was down, or that a sender too far behind missed ([`TYPING_BACKLOG`]), are not replayed.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    time::{Duration, Instant},
};

use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::Registration;
use crate::{
    service::{
        Services,
        client_event::{Viewing, client_event},
        presence::presence_event,
    },
    store::{EventRow, PresenceRow, QueuedTxn, ReceiptRow, StoreError, now_ms},
};

/// Most events in one transaction, as Synapse sends.
pub const MAX_EVENTS: usize = 100;
/// Most receipts, and most presence updates, in one transaction (Synapse's ephemeral cap).
pub const MAX_EPHEMERAL: usize = 100;
/// Typing changes a sender may fall behind by before it misses some (they are best-effort).
pub(crate) const TYPING_BACKLOG: usize = 1024;
/// First retry delay after a failed delivery.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between retries, so a recovered appservice catches up within this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long one transaction request may take.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the delivery tasks, and restarts them whenever the registrations change.
pub(crate) fn spawn(services: Services) {
    tokio::spawn(async move {
        let mut changed = services.appservices.subscribe();
        loop {
            let mut tasks = tokio::task::JoinSet::new();
            for reg in services.appservices.all().iter() {
                if reg.url.is_some() {
                    tasks.spawn(deliver(services.clone(), reg.clone()));
                }
            }
            tokio::select! {
                r = changed.changed() => {
                    if r.is_err() { return; }
                    tasks.shutdown().await;
                }
                // Every sender stopped: the store closed (shutdown, or a test's restart).
                _ = async { while tasks.join_next().await.is_some() {} }, if !tasks.is_empty() => {
                    return;
                }
            }
        }
    });
}

/// Why a delivery loop stops.
enum Stop {
    StoreClosed,
}

async fn deliver(services: Services, reg: Registration) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match deliver_once(&services, &reg, &mut backoff).await {
            Ok(Stop::StoreClosed) => return,
            Err(StoreError::Db(sqlx::Error::PoolClosed)) => return,
            Err(e) => {
                tracing::error!(appservice = reg.id, error = %e, "appservice delivery: database error; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn deliver_once(
    services: &Services,
    reg: &Registration,
    backoff: &mut Duration,
) -> Result<Stop, StoreError> {
    let store = &services.store;
    let mut wake = services.stream.subscribe();
    let mut typing = reg
        .wants_ephemeral()
        .then(|| services.appservices.typing.subscribe());
    let mut typing_rooms: BTreeSet<String> = BTreeSet::new();
    let (mut position, mut last_txn) = store
        .appservice_position(&reg.id, services.stream.safe())
        .await?;
    let client = &services.appservice_http;
    // Transactions queued before this task started are read back from the database; the ones it
    // queues itself are sent straight from memory (they are already committed), which saves a
    // round trip per transaction. Either way one is sent only once every older one was acknowledged.
    let mut backlog_in_db = true;
    let mut next: Option<QueuedTxn> = None;
    loop {
        // The queue first: nothing newer goes out before the oldest unacknowledged transaction.
        loop {
            let txn = match next.take() {
                Some(txn) => txn,
                None if backlog_in_db => match store.oldest_appservice_txn(&reg.id).await? {
                    Some(txn) => txn,
                    None => {
                        backlog_in_db = false;
                        break;
                    }
                },
                None => break,
            };
            match put_transaction(client, reg, &txn).await {
                Ok(()) => {
                    store.delete_appservice_txn(&reg.id, txn.txn_id).await?;
                    *backoff = FIRST_BACKOFF;
                }
                Err(reason) => {
                    tracing::warn!(
                        appservice = reg.id,
                        txn_id = txn.txn_id,
                        events = txn.event_count,
                        retry_in_ms = backoff.as_millis() as u64,
                        reason,
                        "transaction not delivered; will retry the same txnId"
                    );
                    tokio::time::sleep(*backoff).await;
                    *backoff = (*backoff * 2).min(MAX_BACKOFF);
                    next = Some(txn);
                }
            }
        }
        if let Some(rx) = &mut typing {
            drain_typing(rx, &mut typing_rooms, &reg.id);
        }
        let safe = services.stream.safe();
        if safe <= position && typing_rooms.is_empty() {
            wake.borrow_and_update();
            if services.stream.safe() <= position {
                tokio::select! {
                    r = wake.changed() => if r.is_err() { return Ok(Stop::StoreClosed) },
                    Some(room) = next_typing(&mut typing) => { typing_rooms.insert(room); }
                }
            }
            continue;
        }
        let batch = next_batch(services, reg, position, safe).await?;
        let upto = batch.upto;
        let events = interesting(services, reg, &batch.events).await?;
        let mut ephemeral = Vec::new();
        if reg.wants_ephemeral() {
            ephemeral = interesting_ephemeral(services, reg, &batch).await?;
            let rooms = std::mem::take(&mut typing_rooms);
            ephemeral.extend(interesting_typing(services, reg, rooms).await?);
        }
        if events.is_empty() && ephemeral.is_empty() {
            if upto > position {
                store.advance_appservice_position(&reg.id, upto).await?;
            }
        } else {
            let mut body = json!({ "events": events });
            if !ephemeral.is_empty() {
                // The spec's key only: MSC2409's `de.sorunome.msc2409.ephemeral` is not sent.
                body["ephemeral"] = Value::Array(ephemeral);
            }
            let txn = QueuedTxn {
                txn_id: last_txn + 1,
                event_count: events.len() as i64,
                body: body.to_string(),
            };
            store
                .enqueue_appservice_txn(&reg.id, &txn, upto, now_ms())
                .await?;
            last_txn = txn.txn_id;
            next = Some(txn);
        }
        position = upto;
    }
}

/// One stretch `(after, upto]` of the stream: its events, and its receipts and presence for
/// appservices that receive ephemeral data.
struct Batch {
    upto: i64,
    events: Vec<EventRow>,
    receipts: Vec<ReceiptRow>,
    presence: Vec<PresenceRow>,
}

/// The next stretch after `after`: at most [`MAX_EVENTS`] events and [`MAX_EPHEMERAL`] receipts
/// and presence updates, ending where the first of them runs out so nothing is skipped.
async fn next_batch(
    services: &Services,
    reg: &Registration,
    after: i64,
    safe: i64,
) -> Result<Batch, StoreError> {
    let store = &services.store;
    if safe <= after {
        return Ok(Batch {
            upto: after,
            events: Vec::new(),
            receipts: Vec::new(),
            presence: Vec::new(),
        });
    }
    let mut events = store
        .events_in_range(after, safe, MAX_EVENTS as i64)
        .await?;
    let mut upto = match events.last() {
        Some(last) if events.len() == MAX_EVENTS => last.stream_ordering,
        _ => safe,
    };
    let mut receipts = Vec::new();
    let mut presence = Vec::new();
    if reg.wants_ephemeral() {
        receipts = store
            .receipts_in_range(after, upto, MAX_EPHEMERAL as i64)
            .await?;
        if let Some(last) = receipts.last()
            && receipts.len() == MAX_EPHEMERAL
        {
            upto = last.stream_ordering;
        }
        if services.config.presence.enabled {
            presence = store
                .presence_in_range(after, upto, MAX_EPHEMERAL as i64)
                .await?;
            if let Some(last) = presence.last()
                && presence.len() == MAX_EPHEMERAL
            {
                upto = last.stream_ordering;
            }
        }
        events.retain(|e| e.stream_ordering <= upto);
        receipts.retain(|r| r.stream_ordering <= upto);
    }
    Ok(Batch {
        upto,
        events,
        receipts,
        presence,
    })
}

/// Takes every typing change waiting for this sender.
fn drain_typing(rx: &mut broadcast::Receiver<String>, rooms: &mut BTreeSet<String>, as_id: &str) {
    loop {
        match rx.try_recv() {
            Ok(room) => {
                rooms.insert(room);
            }
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                tracing::warn!(
                    appservice = as_id,
                    missed = n,
                    "appservice sender fell behind on typing changes; some are not sent"
                );
            }
            Err(_) => return,
        }
    }
}

/// The next typing change, or never for appservices that do not receive ephemeral data.
async fn next_typing(rx: &mut Option<broadcast::Receiver<String>>) -> Option<String> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(room) => return Some(room),
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return std::future::pending().await,
        }
    }
}

/// An `m.receipt` content: event id -> receipt type -> user id -> data.
type ReceiptContent = BTreeMap<String, Map<String, Value>>;

/// Receipts and presence of `batch` the appservice is interested in, in `/sync` format with a
/// top-level `room_id` on receipts, in stream order.
async fn interesting_ephemeral(
    services: &Services,
    reg: &Registration,
    batch: &Batch,
) -> Result<Vec<Value>, StoreError> {
    let server = &services.config.server_name;
    let mut rooms: HashMap<String, bool> = HashMap::new();
    // (stream position, event), so receipts and presence interleave in stream order.
    let mut out: Vec<(i64, Value)> = Vec::new();
    // Receipts grouped per room into one `m.receipt` each, placed at the room's first receipt.
    let mut receipts: BTreeMap<String, (i64, ReceiptContent)> = BTreeMap::new();
    for r in &batch.receipts {
        // `m.fully_read` is a private read marker (account data), not a receipt to share.
        if r.receipt_type == "m.fully_read" {
            continue;
        }
        // The spec: private receipts only for the appservice's own users.
        if r.receipt_type == "m.read.private" && !reg.is_user_ours(&r.user_id, server) {
            continue;
        }
        if !cached_room_interest(services, reg, &mut rooms, &r.room_id).await? {
            continue;
        }
        let mut data = json!({"ts": r.ts});
        if !r.thread_id.is_empty() {
            data["thread_id"] = json!(r.thread_id);
        }
        let (_, content) = receipts
            .entry(r.room_id.clone())
            .or_insert_with(|| (r.stream_ordering, BTreeMap::new()));
        let by_type = content.entry(r.event_id.clone()).or_default();
        let users = by_type
            .entry(r.receipt_type.clone())
            .or_insert_with(|| json!({}));
        users[&r.user_id] = data;
    }
    for (room_id, (at, content)) in receipts {
        out.push((
            at,
            json!({"type": "m.receipt", "room_id": room_id, "content": content}),
        ));
    }
    for p in &batch.presence {
        if presence_is_interesting(services, reg, &mut rooms, &p.user_id).await? {
            out.push((p.stream_ordering, presence_event(p)));
        }
    }
    out.sort_by_key(|(at, _)| *at);
    Ok(out.into_iter().map(|(_, e)| e).collect())
}

/// The spec: presence of a user in the appservice's namespaces, or who shares a room with it.
async fn presence_is_interesting(
    services: &Services,
    reg: &Registration,
    rooms: &mut HashMap<String, bool>,
    user_id: &str,
) -> Result<bool, StoreError> {
    if reg.is_user_ours(user_id, &services.config.server_name) {
        return Ok(true);
    }
    let memberships = services.store.memberships_of_user(user_id).await?;
    for m in memberships.iter().filter(|m| m.membership == "join") {
        if cached_room_interest(services, reg, rooms, &m.room_id).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `m.typing` for each changed room the appservice is interested in: who types there now.
async fn interesting_typing(
    services: &Services,
    reg: &Registration,
    changed: BTreeSet<String>,
) -> Result<Vec<Value>, StoreError> {
    let mut rooms = HashMap::new();
    let mut out = Vec::new();
    for room_id in changed {
        if cached_room_interest(services, reg, &mut rooms, &room_id).await? {
            let user_ids = services.typing.typing_in(&room_id);
            out.push(
                json!({"type": "m.typing", "room_id": room_id, "content": {"user_ids": user_ids}}),
            );
        }
    }
    Ok(out)
}

async fn cached_room_interest(
    services: &Services,
    reg: &Registration,
    rooms: &mut HashMap<String, bool>,
    room_id: &str,
) -> Result<bool, StoreError> {
    if let Some(known) = rooms.get(room_id) {
        return Ok(*known);
    }
    let known = room_is_interesting(services, reg, room_id).await?;
    rooms.insert(room_id.to_owned(), known);
    Ok(known)
}

/// The events of `rows` the appservice is interested in, in client format: its users sent them or
/// are their subject, or the room matches its room or alias namespaces or has one of its users
/// joined.
async fn interesting(
    services: &Services,
    reg: &Registration,
    rows: &[EventRow],
) -> Result<Vec<Value>, StoreError> {
    let server = &services.config.server_name;
    let mut rooms: HashMap<&str, bool> = HashMap::new();
    let mut out = Vec::new();
    for row in rows {
        let subject_ours = row.event_type == "m.room.member"
            && row
                .state_key
                .as_deref()
                .is_some_and(|k| reg.is_user_ours(k, server));
        let direct = subject_ours || reg.is_user_ours(&row.sender, server);
        let room_interesting = match rooms.get(row.room_id.as_str()) {
            Some(known) => *known,
            None => {
                let known = room_is_interesting(services, reg, &row.room_id).await?;
                rooms.insert(&row.room_id, known);
                known
            }
        };
        if direct && !room_interesting {
            // One of its users is now part of the room: later events there are for it too.
            rooms.insert(&row.room_id, true);
        }
        if direct || room_interesting {
            out.push(client_event(
                row,
                Viewing {
                    user_id: &row.sender,
                    device_id: "",
                },
            ));
        }
    }
    Ok(out)
}

async fn room_is_interesting(
    services: &Services,
    reg: &Registration,
    room_id: &str,
) -> Result<bool, StoreError> {
    if reg.is_room_ours(room_id) {
        return Ok(true);
    }
    if !reg.namespaces.aliases.is_empty() {
        let aliases = services.store.room_aliases(room_id).await?;
        if aliases.iter().any(|a| reg.is_alias_ours(a)) {
            return Ok(true);
        }
    }
    let server = &services.config.server_name;
    let members = services.store.room_members(room_id, "join").await?;
    Ok(members.iter().any(|m| reg.is_user_ours(m, server)))
}

/// One attempt at delivering a transaction; `Err` says why it failed.
async fn put_transaction(
    client: &reqwest::Client,
    reg: &Registration,
    txn: &QueuedTxn,
) -> Result<(), String> {
    let Some(url) = &reg.url else {
        return Err("no url".to_owned());
    };
    let url = format!(
        "{}/_matrix/app/v1/transactions/{}",
        url.trim_end_matches('/'),
        txn.txn_id
    );
    let started = Instant::now();
    let response = client
        .put(&url)
        .bearer_auth(&reg.hs_token)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(txn.body.clone())
        .timeout(TXN_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = response.status();
    if status.is_success() {
        tracing::debug!(
            appservice = reg.id,
            txn_id = txn.txn_id,
            events = txn.event_count,
            ms = started.elapsed().as_millis() as u64,
            "transaction delivered"
        );
        Ok(())
    } else {
        Err(format!("appservice answered {status}"))
    }
}
