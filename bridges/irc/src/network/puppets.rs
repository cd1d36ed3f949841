//! A connection per Matrix user: nick from the template (kept across restarts in the store),
//! collision fallback, a limit on how many, an idle timeout. Private messages to a puppet
//! become the Matrix user's private chat with the sender.

use std::sync::Arc;
use std::time::{Duration, Instant};

use appservice_sdk::Result;
use appservice_sdk::bridge::Bridge;
use appservice_sdk::config::Permission;
use async_trait::async_trait;
use ruma::{OwnedUserId, UserId};

use super::connection::{Connection, IrcHandler};
use super::jobs::Job;
use super::line::Line;
use super::relay::ChatLine;
use super::{Net, Shared};
use crate::convert::ids::{PortalId, is_channel};
use crate::convert::nick::{alternative_nicks, irc_lower, puppet_nick};

/// How long a new puppet may take to register before its user goes through the relay bot.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);

/// A Matrix user's own connection.
pub(crate) struct Puppet {
    pub(crate) conn: Connection,
    last_active: Instant,
}

pub(super) fn nicks_namespace(net: &Net) -> String {
    format!("irc:{}:nicks", net.name)
}

/// Nicks Matrix users chose with the `nick` command: used instead of the template's.
pub(super) fn chosen_nicks_namespace(net: &Net) -> String {
    format!("irc:{}:chosen-nicks", net.name)
}

/// Loads the nicks our puppets had, so their lines in a history replay are known as ours.
pub(super) async fn load_nicks(bridge: &Bridge, net: &Net) -> Result<()> {
    let nicks = bridge.store().kv_list(&nicks_namespace(net)).await?;
    let mut state = net.state();
    for (user, nick) in nicks {
        if let Ok(user) = UserId::parse(&user) {
            state.puppet_nicks.insert(irc_lower(&nick), user);
        }
    }
    Ok(())
}

impl Shared {
    /// The user's connection, made if needed and registered; `None` when puppeting is off, the
    /// user may not have one, the limit is reached or it cannot register: then the relay bot
    /// speaks for them.
    pub(super) async fn puppet(
        self: &Arc<Self>,
        net: &Arc<Net>,
        user_id: &UserId,
    ) -> Option<Connection> {
        let conn = self.puppet_connection(net, user_id).await?;
        if conn.has_registered() || conn.wait_connected(REGISTER_TIMEOUT).await {
            return Some(conn);
        }
        None
    }

    /// The user's connection, started if needed but not waited for: Matrix joins start
    /// connections this way, so that many users joining a room connect at the same time
    /// instead of one after the other in the room's queue. A new connection that does not
    /// register within [`REGISTER_TIMEOUT`] is dropped (and its user relayed).
    pub(super) async fn puppet_connection(
        self: &Arc<Self>,
        net: &Arc<Net>,
        user_id: &UserId,
    ) -> Option<Connection> {
        {
            let mut state = net.state();
            if let Some(puppet) = state.puppets.get_mut(user_id) {
                puppet.last_active = Instant::now();
                return Some(puppet.conn.clone());
            }
            if !net.config.puppeting || state.puppets.len() >= net.config.max_puppets {
                return None;
            }
        }
        let bridge = self.bridge().ok()?.clone();
        if bridge.permission_of(user_id) < Permission::User {
            return None;
        }
        let displayname = self.displayname(user_id).await;
        let nick = self
            .puppet_nick_for(&bridge, net, user_id, &displayname)
            .await;
        let conn = {
            let mut state = net.state();
            if let Some(puppet) = state.puppets.get(user_id) {
                return Some(puppet.conn.clone());
            }
            let realname = format!("{displayname} ({user_id})");
            let spec = net.spec(&nick, alternative_nicks(&nick, 8), None, &realname);
            let handler = Arc::new(PuppetHandler {
                shared: self.clone(),
                net: net.clone(),
                user_id: user_id.to_owned(),
            });
            let conn = Connection::spawn(spec, handler);
            state
                .puppet_nicks
                .insert(irc_lower(&nick), user_id.to_owned());
            state.puppets.insert(
                user_id.to_owned(),
                Puppet {
                    conn: conn.clone(),
                    last_active: Instant::now(),
                },
            );
            conn
        };
        let (net, user_id, watched) = (net.clone(), user_id.to_owned(), conn.clone());
        tokio::spawn(async move {
            if watched.wait_connected(REGISTER_TIMEOUT).await {
                return;
            }
            tracing::warn!(network = %net.name, user = %user_id, "puppet did not register; using the relay bot");
            let mut state = net.state();
            if state
                .puppets
                .get(&user_id)
                .is_some_and(|p| p.conn.is_same(&watched))
            {
                state.puppets.remove(&user_id);
                drop(state);
                watched.stop("could not register");
            }
        });
        Some(conn)
    }

    /// The nick a new puppet asks for: one the user chose with `nick`, else the one it had
    /// (kept in the store) while it still fits their displayname, else the template's.
    async fn puppet_nick_for(
        &self,
        bridge: &Bridge,
        net: &Net,
        user_id: &UserId,
        displayname: &str,
    ) -> String {
        let store = bridge.store();
        if let Ok(Some(chosen)) = store
            .kv_get(&chosen_nicks_namespace(net), user_id.as_str())
            .await
        {
            return chosen;
        }
        let stored = store
            .kv_get(&nicks_namespace(net), user_id.as_str())
            .await
            .ok()
            .flatten();
        let wanted = puppet_nick(
            &net.config.nick_template,
            displayname,
            user_id.localpart(),
            net.config.max_nick_len,
        );
        stored
            .filter(|s| irc_lower(s).starts_with(&irc_lower(wanted.trim_end_matches("[m]"))))
            .unwrap_or(wanted)
    }

    /// Disconnects puppets idle for longer than the network's `puppet_idle_timeout`.
    pub(super) fn spawn_idle_reaper(self: Arc<Self>, net: Arc<Net>) {
        let idle = net.config.puppet_idle_timeout;
        if idle == 0 {
            return;
        }
        let idle = Duration::from_secs(idle);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(
                (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60)),
            );
            loop {
                tick.tick().await;
                let gone: Vec<(OwnedUserId, Puppet)> = {
                    let mut state = net.state();
                    let idle_users: Vec<OwnedUserId> = state
                        .puppets
                        .iter()
                        .filter(|(_, p)| p.last_active.elapsed() > idle)
                        .map(|(u, _)| u.clone())
                        .collect();
                    idle_users
                        .into_iter()
                        .filter_map(|u| state.puppets.remove(&u).map(|p| (u, p)))
                        .collect()
                };
                for (user, puppet) in gone {
                    tracing::info!(network = %net.name, %user, "idle puppet disconnected");
                    puppet.conn.stop("Idle");
                }
            }
        });
    }
}

/// A puppet's [`IrcHandler`]: private messages and its own troubles; channel traffic is the
/// relay bot's to bridge.
struct PuppetHandler {
    shared: Arc<Shared>,
    net: Arc<Net>,
    user_id: OwnedUserId,
}

#[async_trait]
impl IrcHandler for PuppetHandler {
    async fn on_registered(&self, conn: &Connection) {
        let nick = conn.nick();
        self.net
            .state()
            .puppet_nicks
            .insert(irc_lower(&nick), self.user_id.clone());
        if let Ok(bridge) = self.shared.bridge()
            && let Err(e) = bridge
                .store()
                .kv_set(&nicks_namespace(&self.net), self.user_id.as_str(), &nick)
                .await
        {
            tracing::warn!(error = %e, "puppet nick not stored");
        }
    }

    async fn on_line(&self, conn: &Connection, line: Line) {
        match line.command.as_str() {
            "PRIVMSG" | "NOTICE" => {
                let (target, Some(from)) = (line.param(0), line.nick.as_deref()) else {
                    return;
                };
                if is_channel(target) || !conn.is_me(target) || self.net.is_own_nick(from) {
                    return;
                }
                let Some(chat) = ChatLine::from_line(&line) else {
                    return;
                };
                let portal = PortalId::private(&self.net.name, from, self.user_id.as_str());
                let job = Job::Private {
                    user_id: self.user_id.clone(),
                    line: chat,
                };
                self.shared.workers.push(&self.shared, &portal, job);
            }
            "KICK" if conn.is_me(line.param(1)) => {
                conn.forget(line.param(0));
            }
            "404" | "471" | "473" | "474" | "475" | "477" => {
                let channel = line.param(1);
                let why = line.params.last().cloned().unwrap_or_default();
                let portal = PortalId::channel(&self.net.name, channel);
                let text = format!(
                    "IRC refused {}'s message or join in {channel}: {why}",
                    self.user_id
                );
                self.shared
                    .workers
                    .push(&self.shared, &portal, Job::Notice(text));
            }
            "REDACT" => {
                let Some(redact) = super::redaction::Redact::from_line(&line) else {
                    return;
                };
                if is_channel(&redact.target) || self.net.is_own_nick(&redact.by) {
                    return;
                }
                let portal = PortalId::private(&self.net.name, &redact.by, self.user_id.as_str());
                let job = Job::Redact {
                    by: redact.by,
                    msgid: redact.msgid,
                    reason: redact.reason,
                };
                self.shared.workers.push(&self.shared, &portal, job);
            }
            "FAIL" => {
                let Some((target, why)) = super::redaction::refusal(&line) else {
                    return;
                };
                let portal = if is_channel(&target) {
                    PortalId::channel(&self.net.name, &target)
                } else if target.is_empty() {
                    return;
                } else {
                    PortalId::private(&self.net.name, &target, self.user_id.as_str())
                };
                let text = format!("IRC refused to delete {}'s message: {why}", self.user_id);
                self.shared
                    .workers
                    .push(&self.shared, &portal, Job::Notice(text));
            }
            // ERR_NOSUCHNICK: a private message could not be delivered.
            "401" => {
                let nick = line.param(1);
                let portal = PortalId::private(&self.net.name, nick, self.user_id.as_str());
                let text = format!("{nick} is not on IRC now; the message was not delivered.");
                self.shared
                    .workers
                    .push(&self.shared, &portal, Job::Notice(text));
            }
            _ => {}
        }
    }

    async fn on_disconnected(&self, _conn: &Connection, _reason: &str) {}

    async fn on_echo(&self, _conn: &Connection, tag: &str, target: &str, msgid: &str) {
        let via = self.user_id.as_str();
        super::relay::remember_echo(&self.shared, &self.net, tag, via, target, msgid).await;
    }
}
