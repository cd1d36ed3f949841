//! The `irc` crate adapter: IRC as an `appservice_sdk::Network`.
//!
//! - [`connection`]: one IRC connection with CAP negotiation, reconnects and flood control.
//! - [`caps`], [`line`]: capability negotiation, and received lines in one shape.
//! - [`chathistory`]: `CHATHISTORY` requests and the history batches that answer them.
//! - [`relay`]: what the relay bot hears in channels becomes [`jobs::Job`]s, per portal, in order.
//! - [`jobs`]: carries jobs out in Matrix (ghost messages, backfill, membership, topics, power levels).
//! - [`puppets`]: a connection per Matrix user, their private messages and kicks.
//! - [`to_irc`]: Matrix messages, edits and memberships sent to IRC.
//! - [`redaction`]: deleted messages both ways (`draft/message-redaction`).
//! - [`portals`]: static mappings, dynamic portals by alias, private chats.
//! - [`commands`]: `nick`, `whois`, `join` and `irc` in the management room.

pub mod caps;
mod chathistory;
mod commands;
pub mod connection;
mod jobs;
pub mod line;
mod portals;
mod puppets;
mod redaction;
mod relay;
mod to_irc;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use appservice_sdk::bridge::{
    Bridge, MatrixEdit, MatrixMembership, MatrixMessage, MatrixRedaction, Network, NetworkInfo,
};
use appservice_sdk::commands::{CommandContext, CommandHelp};
use appservice_sdk::intent::RoomOptions;
use appservice_sdk::store::PortalRecord;
use appservice_sdk::{Error, Result};
use async_trait::async_trait;
use ruma::{OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};

use crate::config::{IrcConfig, NetworkConfig};
use crate::convert::ids::{ALIAS_PREFIX, PortalId};
use crate::convert::nick::{GHOST_PREFIX, irc_lower};
use crate::media_proxy::MediaProxy;

use self::caps::Sasl;
use self::connection::{ConnSpec, Connection};
use self::jobs::Workers;
use self::puppets::Puppet;

/// Cached Matrix displaynames older than this are fetched again.
const DISPLAYNAME_TTL: Duration = Duration::from_secs(600);
/// At most this many cached displaynames.
const CACHE_LIMIT: usize = 10_000;

/// IRC, seen by the bridge framework.
pub struct IrcNetwork {
    inner: Arc<Shared>,
}

/// What the network's tasks share.
pub(crate) struct Shared {
    config: IrcConfig,
    /// Serves media at signed links when `irc.media_proxy` is set.
    media_proxy: Option<Arc<MediaProxy>>,
    bridge: OnceLock<Bridge>,
    nets: BTreeMap<String, Arc<Net>>,
    workers: Workers,
    displaynames: Mutex<HashMap<OwnedUserId, (String, Instant)>>,
}

/// One configured IRC network at run time.
pub(crate) struct Net {
    name: String,
    config: NetworkConfig,
    relay: OnceLock<Connection>,
    state: Mutex<NetState>,
}

/// What the bridge knows of a network; the lock is never held across an `.await`.
#[derive(Default)]
pub(crate) struct NetState {
    /// IRC users seen in each channel (both lowercased), to know where a QUIT leaves from.
    members: HashMap<String, HashSet<String>>,
    /// Open `chathistory` batches of the relay connection.
    batches: chathistory::Batches,
    /// Lines per `CHATHISTORY` request: the server's `CHATHISTORY=` limit, else the default.
    history_limit: Option<usize>,
    /// Users gone in a netsplit: nick -> (when, channels). They leave Matrix rooms only if
    /// they are not back within the grace period.
    splits: HashMap<String, (Instant, Vec<String>)>,
    /// Per-user connections.
    puppets: HashMap<OwnedUserId, Puppet>,
    /// Every nick a puppet of ours has had (from the store and since): lines from them in a
    /// history replay are our own.
    puppet_nicks: HashMap<String, OwnedUserId>,
    /// Rooms told that IRC is unreachable, during this outage.
    told_unreachable: HashSet<OwnedRoomId>,
    /// Rooms told that the server cannot delete messages (once per run).
    told_no_redaction: HashSet<OwnedRoomId>,
    /// Channel prefix modes (`o`, `h`, `v`, ...) of IRC users: channel -> nick -> modes (both
    /// lowercased), so taking voice from an op leaves them an op.
    prefix_modes: HashMap<String, HashMap<String, String>>,
}

impl Net {
    fn state(&self) -> MutexGuard<'_, NetState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The relay bot's connection.
    fn relay(&self) -> Result<&Connection> {
        self.relay
            .get()
            .ok_or_else(|| Error::Network(format!("network {} is not started", self.name)))
    }

    /// Whether a nick is the relay bot or one of our puppets (now or before a restart).
    fn is_own_nick(&self, nick: &str) -> bool {
        if self.relay.get().is_some_and(|r| r.is_me(nick))
            || crate::convert::nick::same(nick, &self.config.nick)
        {
            return true;
        }
        let lower = irc_lower(nick);
        let state = self.state();
        state.puppet_nicks.contains_key(&lower)
            || state.puppets.values().any(|p| p.conn.is_me(nick))
    }

    /// The Matrix user behind a puppet nick, for pills.
    fn user_of_nick(&self, nick: &str) -> Option<OwnedUserId> {
        let state = self.state();
        state
            .puppets
            .iter()
            .find(|(_, p)| p.conn.is_me(nick))
            .map(|(u, _)| u.clone())
            .or_else(|| state.puppet_nicks.get(&irc_lower(nick)).cloned())
    }

    /// The connection spec for a nick.
    fn spec(
        &self,
        nick: &str,
        alt_nicks: Vec<String>,
        sasl: Option<Sasl>,
        realname: &str,
    ) -> ConnSpec {
        let c = &self.config;
        ConnSpec {
            network: self.name.clone(),
            host: c.host.clone(),
            port: c.port(),
            tls: c.tls,
            password: c.password.clone(),
            sasl,
            nick: nick.to_owned(),
            alt_nicks,
            username: c.username.clone(),
            realname: realname.to_owned(),
            rate: c.messages_per_second,
            burst: c.burst,
            max_backoff: Duration::from_secs(c.max_reconnect_delay.max(1)),
            keys: c
                .channel_keys
                .iter()
                .map(|(channel, key)| (irc_lower(channel), key.clone()))
                .collect(),
        }
    }
}

impl IrcNetwork {
    /// A network for `config` (checked with the config), with media links on `irc.media_url`.
    pub fn new(config: IrcConfig) -> Self {
        Self::with_media_proxy(config, None)
    }

    /// A network for `config` whose media links go through `media_proxy` (made from
    /// `irc.media_proxy` with [`MediaProxy::from_config`]), when given.
    pub fn with_media_proxy(config: IrcConfig, media_proxy: Option<MediaProxy>) -> Self {
        let nets = config
            .networks
            .iter()
            .map(|(name, net)| {
                let net = Net {
                    name: name.clone(),
                    config: net.clone(),
                    relay: OnceLock::new(),
                    state: Mutex::new(NetState::default()),
                };
                (name.clone(), Arc::new(net))
            })
            .collect();
        Self {
            inner: Arc::new(Shared {
                config,
                media_proxy: media_proxy.map(Arc::new),
                bridge: OnceLock::new(),
                nets,
                workers: Workers::default(),
                displaynames: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Shared {
    fn bridge(&self) -> Result<&Bridge> {
        self.bridge
            .get()
            .ok_or_else(|| Error::Network("the IRC network is not started".to_owned()))
    }

    fn net(&self, name: &str) -> Result<&Arc<Net>> {
        self.nets
            .get(name)
            .ok_or_else(|| Error::Network(format!("no IRC network {name:?} in the config")))
    }

    fn net_of(&self, portal: &PortalRecord) -> Result<(PortalId, &Arc<Net>)> {
        let id = PortalId::parse(&portal.remote_id)
            .ok_or_else(|| Error::Network(format!("{} is not an IRC portal", portal.remote_id)))?;
        let net = self.net(id.network())?;
        Ok((id, net))
    }

    /// A Matrix user's displayname (cached), else their localpart.
    async fn displayname(&self, user_id: &UserId) -> String {
        if let Some((name, at)) = self
            .displaynames
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(user_id)
            && at.elapsed() < DISPLAYNAME_TTL
        {
            return name.clone();
        }
        let name = match self.bridge() {
            Ok(bridge) => {
                let path = format!(
                    "/_matrix/client/v3/profile/{}/displayname",
                    url::form_urlencoded::byte_serialize(user_id.as_str().as_bytes())
                        .collect::<String>()
                );
                let answer = bridge
                    .appservice()
                    .client()
                    .send_json(reqwest::Method::GET, &path, None, None)
                    .await;
                answer
                    .ok()
                    .and_then(|a| a["displayname"].as_str().map(str::to_owned))
            }
            Err(_) => None,
        }
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| user_id.localpart().to_owned());
        let mut cache = self
            .displaynames
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), (name.clone(), Instant::now()));
        name
    }

    async fn start(self: &Arc<Self>, bridge: Bridge) -> Result<()> {
        let _ = self.bridge.set(bridge.clone());
        if let Some(proxy) = &self.media_proxy {
            let appservice = bridge.appservice();
            proxy.set_upstream(
                appservice.client().base_url(),
                &appservice.registration().as_token,
            );
        }
        for net in self.nets.values() {
            let sasl =
                net.config
                    .sasl
                    .as_ref()
                    .map(|s| match s.mechanism.to_ascii_uppercase().as_str() {
                        "EXTERNAL" => Sasl::External,
                        _ => Sasl::Plain {
                            username: s.username.clone(),
                            password: s.password.clone(),
                        },
                    });
            let alt = crate::convert::nick::alternative_nicks(&net.config.nick, 5);
            let spec = net.spec(&net.config.nick, alt, sasl, "Causeway Matrix bridge");
            let handler = Arc::new(relay::RelayHandler::new(self.clone(), net.clone()));
            let _ = net.relay.set(Connection::spawn(spec, handler));
            puppets::load_nicks(&bridge, net).await?;
            self.clone().spawn_idle_reaper(net.clone());
        }
        portals::start(self, &bridge).await
    }

    async fn stop(&self) {
        for net in self.nets.values() {
            let puppets: Vec<Puppet> = net.state().puppets.drain().map(|(_, p)| p).collect();
            for puppet in puppets {
                puppet.conn.stop("Bridge shutting down");
            }
            if let Some(relay) = net.relay.get() {
                relay.stop("Bridge shutting down");
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[async_trait]
impl Network for IrcNetwork {
    fn info(&self) -> NetworkInfo {
        let mut info = NetworkInfo::new("irc", "IRC", GHOST_PREFIX);
        info.alias_prefix = Some(ALIAS_PREFIX.to_owned());
        info
    }

    /// Connects the relay bot of every network, joins the portals' channels, sets up static mappings.
    async fn start(&self, bridge: Bridge) -> Result<()> {
        self.inner.start(bridge).await
    }

    async fn stop(&self) -> Result<()> {
        self.inner.stop().await;
        Ok(())
    }

    async fn handle_matrix_message(
        &self,
        portal: &PortalRecord,
        message: &MatrixMessage,
    ) -> Result<Option<String>> {
        self.inner.send_message(portal, message).await
    }

    async fn handle_matrix_edit(&self, portal: &PortalRecord, edit: &MatrixEdit) -> Result<()> {
        self.inner.send_edit(portal, edit).await
    }

    /// Deletes the message on IRC where the server offers `draft/message-redaction`.
    async fn handle_matrix_redaction(
        &self,
        portal: &PortalRecord,
        redaction: &MatrixRedaction,
    ) -> Result<()> {
        self.inner.send_redaction(portal, redaction).await
    }

    async fn handle_matrix_membership(
        &self,
        portal: &PortalRecord,
        membership: &MatrixMembership,
    ) -> Result<()> {
        self.inner.on_membership(portal, membership).await
    }

    fn commands(&self) -> Vec<CommandHelp> {
        commands::help()
    }

    /// `GET /_irc/media/...`, the signed media links, when `irc.media_proxy` is set.
    fn routes(&self) -> Option<axum::Router> {
        self.inner.media_proxy.as_ref().map(MediaProxy::router)
    }

    /// `nick`, `whois`, `join` and `irc` (see [`commands`]).
    async fn handle_command(
        &self,
        context: &CommandContext<'_>,
        command: &str,
        args: &[&str],
    ) -> Result<Option<String>> {
        self.inner.command(context, command, args).await
    }

    async fn portal_for_invite(
        &self,
        room_id: &RoomId,
        _inviter: &UserId,
    ) -> Result<Option<String>> {
        portals::for_invite(&self.inner, room_id).await
    }

    async fn portal_for_alias(&self, alias: &RoomAliasId) -> Result<Option<(String, RoomOptions)>> {
        portals::for_alias(&self.inner, alias)
    }

    async fn portal_for_ghost_invite(
        &self,
        room_id: &RoomId,
        ghost: &UserId,
        inviter: &UserId,
        _is_direct: bool,
    ) -> Result<Option<String>> {
        portals::for_ghost_invite(&self.inner, room_id, ghost, inviter)
    }
}
