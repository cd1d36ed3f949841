//! IRC -> Matrix: jobs run one after the other per portal, so a room sees IRC in the order IRC
//! said it. Messages go as the speaker's ghost with IRC's time; a history replay goes through the
//! SDK's backfill (batch send where the homeserver offers it), minus what was bridged before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use appservice_sdk::backfill::{HistoryEvent, backfill};
use appservice_sdk::bridge::{Bridge, RemoteEvent, RemoteEventKind, RemoteSender};
use appservice_sdk::intent::SendOptions;
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use ruma::{OwnedUserId, RoomId, UserId};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::relay::ChatLine;
use super::{Net, Shared};
use crate::convert::ids::PortalId;
use crate::convert::irc_to_matrix::content;
use crate::convert::nick::ghost_remote_id;

/// Something IRC did in a portal.
#[derive(Debug)]
pub(crate) enum Job {
    /// A chat line.
    Message(ChatLine),
    /// A history replay (InspIRCd's `chanhistory`, or CHATHISTORY), oldest first.
    History(Vec<ChatLine>),
    Join {
        nick: String,
    },
    Leave {
        nick: String,
        reason: Option<String>,
    },
    NickChange {
        old: String,
        new: String,
    },
    /// An IRC user kicked another IRC user.
    Kick {
        by: String,
        nick: String,
        reason: String,
    },
    /// An IRC user kicked a Matrix user's puppet: the Matrix user is kicked from the room.
    KickMatrixUser {
        user_id: OwnedUserId,
        by: String,
        reason: String,
    },
    Topic {
        by: Option<String>,
        topic: String,
    },
    /// Ops and voice as power levels; `None` takes it away.
    Power {
        nick: String,
        level: Option<i64>,
    },
    /// A notice from the bridge bot (failures).
    Notice(String),
    /// An IRC user deleted a line (`draft/message-redaction`).
    Redact {
        by: String,
        msgid: String,
        reason: Option<String>,
    },
    /// A private message to a Matrix user's puppet.
    Private {
        user_id: OwnedUserId,
        line: ChatLine,
    },
}

/// Per-portal ordered workers; each job goes with when the IRC line behind it was read.
#[derive(Default)]
pub(crate) struct Workers {
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<(Job, Instant)>>>,
}

impl Workers {
    /// Queues a job behind the portal's earlier jobs. Unbounded, so the IRC reader never waits
    /// and the order always holds (a bounded queue that was full had each job wait on a task of
    /// its own, and those tasks could enqueue out of order); what bounds it is the IRC server's
    /// own flood control on what it sends.
    pub(crate) fn push(&self, shared: &Arc<Shared>, portal_id: &str, job: Job) {
        let sender = {
            let mut queues = self
                .queues
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            queues
                .entry(portal_id.to_owned())
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(worker(shared.clone(), portal_id.to_owned(), rx));
                    tx
                })
                .clone()
        };
        if sender.send((job, Instant::now())).is_err() {
            tracing::error!(
                portal = portal_id,
                "the portal's worker is gone; IRC event not bridged"
            );
        }
    }
}

async fn worker(
    shared: Arc<Shared>,
    portal_id: String,
    mut rx: mpsc::UnboundedReceiver<(Job, Instant)>,
) {
    while let Some((job, read_at)) = rx.recv().await {
        let live_message = matches!(job, Job::Message(_));
        let result = run(&shared, &portal_id, job).await;
        let Ok(bridge) = shared.bridge() else {
            continue;
        };
        match result {
            // From the IRC line read to the homeserver's answer to the send, in the SDK's
            // latency histogram (`bridge_event_latency_seconds`) beside Matrix -> IRC handling.
            Ok(()) if live_message => {
                let took = read_at.elapsed();
                bridge.metrics().observe_latency(took);
                tracing::debug!(target: "irc_bridge::timing", portal = %portal_id, ms = took.as_secs_f64() * 1000.0, "IRC line bridged");
            }
            Ok(()) => {}
            Err(e) => {
                bridge.metrics().error();
                tracing::warn!(portal = %portal_id, error = %e, "IRC event not bridged");
            }
        }
    }
}

async fn run(shared: &Arc<Shared>, portal_id: &str, job: Job) -> Result<()> {
    let bridge = shared.bridge()?.clone();
    let Some(id) = PortalId::parse(portal_id) else {
        return Ok(());
    };
    let net = shared.net(id.network())?.clone();
    if let Job::Private { user_id, line } = job {
        let portal =
            super::portals::private_portal(shared, &bridge, &net, &line.nick, &user_id).await?;
        return message(shared, &bridge, &net, &portal, line).await;
    }
    let Some(portal) = find_portal(&bridge, &net, &id, portal_id).await? else {
        tracing::debug!(portal = %portal_id, "no portal; IRC event dropped");
        return Ok(());
    };
    let room = portal.room_id.clone();
    match job {
        Job::Message(line) => message(shared, &bridge, &net, &portal, line).await,
        Job::History(lines) => history(shared, &bridge, &net, &portal, lines).await,
        Job::Join { nick } => {
            ghost(&bridge, &net, &nick)
                .await?
                .ensure_joined(&room)
                .await
        }
        Job::Leave { nick, reason } => leave(&bridge, &net, &room, &nick, reason.as_deref()).await,
        Job::NickChange { old, new } => {
            leave(
                &bridge,
                &net,
                &room,
                &old,
                Some(&format!("is now known as {new}")),
            )
            .await?;
            ghost(&bridge, &net, &new).await?.ensure_joined(&room).await
        }
        Job::Kick { by, nick, reason } => {
            let target = ghost(&bridge, &net, &nick).await?;
            let reason = format!("kicked by {by}: {reason}");
            kick(&bridge, &room, target.user_id(), &reason).await
        }
        Job::KickMatrixUser {
            user_id,
            by,
            reason,
        } => {
            kick(
                &bridge,
                &room,
                &user_id,
                &format!("kicked on IRC by {by}: {reason}"),
            )
            .await
        }
        Job::Topic { by, topic } => set_topic(&bridge, &room, by.as_deref(), &topic).await,
        Job::Power { nick, level } => {
            let user = ghost(&bridge, &net, &nick).await?;
            set_power(&bridge, &room, user.user_id(), level).await
        }
        Job::Notice(text) => {
            bridge
                .appservice()
                .bot()
                .send_notice(&room, &text, SendOptions::default())
                .await?;
            Ok(())
        }
        Job::Redact { by, msgid, reason } => {
            redact(&bridge, &net, &portal, &by, &msgid, reason.as_deref()).await
        }
        Job::Private { .. } => Ok(()),
    }
}

/// An IRC user deleted a line: an IRC user's line is redacted by the deleter's ghost (the
/// bot where the ghost may not), a Matrix user's line by the bot.
async fn redact(
    bridge: &Bridge,
    net: &Net,
    portal: &PortalRecord,
    by: &str,
    msgid: &str,
    reason: Option<&str>,
) -> Result<()> {
    let store = bridge.store();
    let reason = match reason {
        Some(reason) => format!("deleted on IRC by {by}: {reason}"),
        None => format!("deleted on IRC by {by}"),
    };
    let options = || SendOptions {
        ts: None,
        txn_id: Some(appservice_sdk::intent::txn_id_for(
            &portal.remote_id,
            &format!("redact:{msgid}"),
        )),
    };
    let bot = bridge.appservice().bot();
    let room = &portal.room_id;
    if let Some(message) = store
        .message_by_remote_id(&portal.remote_id, &format!("msgid:{msgid}"))
        .await?
    {
        let deleter = ghost(bridge, net, by).await?;
        match deleter
            .redact(room, &message.event_id, Some(reason.as_str()), options())
            .await
        {
            Ok(_) => {}
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
                bot.redact(room, &message.event_id, Some(reason.as_str()), options())
                    .await?;
            }
            Err(e) => return Err(e),
        }
        store.delete_message(message.event_id.as_str()).await?;
        return Ok(());
    }
    let Some(event_id) = super::redaction::event_of_msgid(store, &net.name, msgid).await? else {
        tracing::debug!(portal = %portal.remote_id, msgid, "REDACT of a line the bridge does not know");
        return Ok(());
    };
    let event_id = ruma::EventId::parse(&event_id)
        .map_err(|e| Error::Protocol(format!("stored event id {event_id}: {e}")))?;
    bot.redact(room, &event_id, Some(reason.as_str()), options())
        .await?;
    super::redaction::forget(store, &net.name, event_id.as_str()).await?;
    store.delete_message(event_id.as_str()).await?;
    Ok(())
}

/// The portal of a job. A portal being created (its alias was just looked up) may not be stored
/// yet when the relay bot's join brings the channel's first lines: wait for it a little.
async fn find_portal(
    bridge: &Bridge,
    net: &Net,
    id: &PortalId,
    portal_id: &str,
) -> Result<Option<PortalRecord>> {
    for _ in 0..50 {
        if let Some(portal) = bridge.store().portal_by_remote_id(portal_id).await? {
            return Ok(Some(portal));
        }
        let wanted = match id {
            PortalId::Channel { channel, .. } => net.relay.get().is_some_and(|r| r.wants(channel)),
            PortalId::Private { .. } => false,
        };
        if !wanted {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(None)
}

fn sender(net: &Net, nick: &str) -> RemoteSender {
    RemoteSender {
        id: ghost_remote_id(&net.name, nick),
        displayname: Some(nick.to_owned()),
    }
}

async fn ghost(bridge: &Bridge, net: &Net, nick: &str) -> Result<appservice_sdk::intent::Intent> {
    bridge.ghost(&sender(net, nick)).await
}

/// Pills for Matrix users mentioned by their puppet's nick.
fn mention_of<'a>(
    shared: &'a Shared,
    net: &'a Net,
) -> impl Fn(&str) -> Option<(String, String)> + 'a {
    move |word: &str| {
        let user = net.user_of_nick(word)?;
        let name = shared
            .displaynames
            .lock()
            .ok()
            .and_then(|c| c.get(&user).map(|(n, _)| n.clone()))
            .unwrap_or_else(|| user.localpart().to_owned());
        Some((user.to_string(), name))
    }
}

async fn message(
    shared: &Shared,
    bridge: &Bridge,
    net: &Net,
    portal: &PortalRecord,
    line: ChatLine,
) -> Result<()> {
    let content = content(line.kind, &line.text, mention_of(shared, net));
    let event = RemoteEvent {
        id: line.id,
        sender: sender(net, &line.nick),
        ts: line.ts,
        kind: RemoteEventKind::Message {
            content,
            reply_to: None,
        },
    };
    bridge.handle_remote_event(portal, event).await?;
    Ok(())
}

/// A replay: lines not bridged before go in, in order, with their IRC times.
async fn history(
    shared: &Shared,
    bridge: &Bridge,
    net: &Net,
    portal: &PortalRecord,
    lines: Vec<ChatLine>,
) -> Result<()> {
    let store = bridge.store();
    let mut events = Vec::with_capacity(lines.len());
    for line in lines {
        if store
            .message_by_remote_id(&portal.remote_id, &line.id)
            .await?
            .is_some()
        {
            continue;
        }
        let intent = ghost(bridge, net, &line.nick).await?;
        intent.ensure_joined(&portal.room_id).await?;
        events.push(HistoryEvent {
            remote_id: line.id,
            sender: intent.user_id().to_owned(),
            event_type: "m.room.message".to_owned(),
            content: content(line.kind, &line.text, mention_of(shared, net)),
            ts: line.ts.unwrap_or_else(super::relay::now_ms),
            state_key: None,
        });
    }
    if events.is_empty() {
        return Ok(());
    }
    let report = backfill(bridge.appservice(), store, portal, &events).await?;
    tracing::info!(portal = %portal.remote_id, sent = report.sent, skipped = report.skipped, batched = report.batched, "IRC history backfilled");
    Ok(())
}

async fn leave(
    bridge: &Bridge,
    net: &Net,
    room: &RoomId,
    nick: &str,
    reason: Option<&str>,
) -> Result<()> {
    let intent = ghost(bridge, net, nick).await?;
    let path = format!("/_matrix/client/v3/rooms/{}/leave", enc(room.as_str()));
    let body = json!({"reason": reason.unwrap_or_default()});
    let client = bridge.appservice().client();
    match client
        .send_json(
            reqwest::Method::POST,
            &path,
            Some(intent.user_id()),
            Some(&body),
        )
        .await
    {
        Ok(_) => {}
        // Never joined on the Matrix side (ghosts join when they first speak or join).
        Err(e) if e.errcode() == Some("M_FORBIDDEN") || e.errcode() == Some("M_NOT_FOUND") => {}
        Err(e) => return Err(e),
    }
    bridge
        .appservice()
        .set_joined(room, intent.user_id(), false);
    Ok(())
}

async fn kick(bridge: &Bridge, room: &RoomId, user: &UserId, reason: &str) -> Result<()> {
    let path = format!("/_matrix/client/v3/rooms/{}/kick", enc(room.as_str()));
    let body = json!({"user_id": user, "reason": reason});
    let client = bridge.appservice().client();
    match client
        .send_json(reqwest::Method::POST, &path, None, Some(&body))
        .await
    {
        Ok(_) => {}
        Err(e) if e.errcode() == Some("M_FORBIDDEN") => {
            tracing::debug!(%room, %user, error = %e, "kick refused (not in the room?)");
        }
        Err(e) => return Err(e),
    }
    bridge.appservice().set_joined(room, user, false);
    Ok(())
}

async fn state(bridge: &Bridge, room: &RoomId, event_type: &str) -> Result<Value> {
    let path = format!(
        "/_matrix/client/v3/rooms/{}/state/{event_type}/",
        enc(room.as_str())
    );
    match bridge
        .appservice()
        .client()
        .send_json(reqwest::Method::GET, &path, None, None)
        .await
    {
        Ok(v) => Ok(v),
        Err(e) if e.errcode() == Some("M_NOT_FOUND") => Ok(json!({})),
        Err(e) => Err(e),
    }
}

async fn set_topic(bridge: &Bridge, room: &RoomId, by: Option<&str>, topic: &str) -> Result<()> {
    let current = state(bridge, room, "m.room.topic").await?;
    if current["topic"].as_str() == Some(topic) {
        return Ok(());
    }
    let bot = bridge.appservice().bot();
    bot.send_state(
        room,
        "m.room.topic",
        "",
        &json!({"topic": topic}),
        SendOptions::default(),
    )
    .await?;
    if let Some(by) = by {
        tracing::debug!(%room, by, "topic mirrored");
    }
    Ok(())
}

async fn set_power(
    bridge: &Bridge,
    room: &RoomId,
    user: &UserId,
    level: Option<i64>,
) -> Result<()> {
    let mut levels = state(bridge, room, "m.room.power_levels").await?;
    let current = levels["users"][user.as_str()].as_i64();
    if current == level || (level.is_none() && current.is_none()) {
        return Ok(());
    }
    if !levels["users"].is_object() {
        levels["users"] = json!({});
    }
    let users = levels["users"]
        .as_object_mut()
        .ok_or_else(|| Error::Protocol("power levels without users".to_owned()))?;
    match level {
        Some(level) => users.insert(user.to_string(), json!(level)),
        None => users.remove(user.as_str()),
    };
    let bot = bridge.appservice().bot();
    bot.send_state(
        room,
        "m.room.power_levels",
        "",
        &levels,
        SendOptions::default(),
    )
    .await?;
    Ok(())
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
