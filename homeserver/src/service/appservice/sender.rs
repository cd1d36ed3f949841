//! Delivers events to appservices: `PUT {url}/_matrix/app/v1/transactions/{txnId}`.
//!
//! Each appservice with a `url` has one task. It reads the events table in stream order up to
//! [`Stream::safe`](crate::service::stream::Stream::safe) (so an event that commits late is never
//! skipped), keeps the ones the appservice is interested in, and queues them as a transaction of at
//! most [`MAX_EVENTS`] in the database in the same commit that moves its cursor. Only then is the
//! transaction sent; it leaves the queue when the appservice answers 2xx. A failed send is retried
//! with the same txnId and body after a capped exponential backoff, and nothing newer goes out
//! before it, so an outage or a restart delays events but never drops or reorders them.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::Registration;
use crate::{
    service::{
        Services,
        client_event::{Viewing, client_event},
    },
    store::{EventRow, QueuedTxn, StoreError, now_ms},
};

/// Most events in one transaction, as Synapse sends.
pub const MAX_EVENTS: usize = 100;
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
    let (mut position, mut last_txn) = store
        .appservice_position(&reg.id, services.stream.safe())
        .await?;
    let client = &services.appservice_http;
    loop {
        // The queue first: nothing newer goes out before the oldest unacknowledged transaction.
        while let Some(txn) = store.oldest_appservice_txn(&reg.id).await? {
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
                }
            }
        }
        let safe = services.stream.safe();
        if safe <= position {
            wake.borrow_and_update();
            if services.stream.safe() <= position && wake.changed().await.is_err() {
                return Ok(Stop::StoreClosed);
            }
            continue;
        }
        let rows = store
            .events_in_range(position, safe, MAX_EVENTS as i64)
            .await?;
        let upto = match rows.last() {
            Some(last) if rows.len() == MAX_EVENTS => last.stream_ordering,
            _ => safe,
        };
        let events = interesting(services, reg, &rows).await?;
        if events.is_empty() {
            store.advance_appservice_position(&reg.id, upto).await?;
        } else {
            let txn = QueuedTxn {
                txn_id: last_txn + 1,
                event_count: events.len() as i64,
                body: json!({ "events": events }).to_string(),
            };
            store
                .enqueue_appservice_txn(&reg.id, &txn, upto, now_ms())
                .await?;
            last_txn = txn.txn_id;
        }
        position = upto;
    }
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
