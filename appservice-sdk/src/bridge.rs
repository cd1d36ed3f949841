//! The bridge framework: a remote network implements [`Network`]; [`Bridge`] owns the
//! appservice, the store, the portals and ghosts, the commands, relay mode, status and
//! metrics, and calls the network in order per portal.
//!
//! A minimal network (see `examples/echo-bridge` for a complete one):
//!
//! ```
//! use appservice_sdk::bridge::{MatrixMessage, Network, NetworkInfo};
//! use appservice_sdk::store::PortalRecord;
//!
//! struct Null;
//!
//! #[async_trait::async_trait]
//! impl Network for Null {
//!     fn info(&self) -> NetworkInfo {
//!         NetworkInfo::new("null", "Null network", "null_")
//!     }
//!     async fn handle_matrix_message(
//!         &self,
//!         _portal: &PortalRecord,
//!         message: &MatrixMessage,
//!     ) -> appservice_sdk::Result<Option<String>> {
//!         // Deliver message.body to the remote chat here, and return its remote id.
//!         Ok(Some(format!("null:{}", message.event_id)))
//!     }
//! }
//! ```

mod matrix;
mod power;
mod remote;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use ruma::{OwnedEventId, OwnedRoomId, OwnedUserId, RoomAliasId, RoomId, UserId};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::appservice::Appservice;
use crate::commands::{CommandContext, CommandHelp};
use crate::config::{BridgeConfig, BridgeSection, Permission};
use crate::error::{Error, Result};
use crate::intent::RoomOptions;
use crate::metrics::Metrics;
use crate::registration::{Prefixes, Registration};
use crate::server::{self, AppserviceHandler, ServerState, ThirdPartyLookup, Transaction};
use crate::status::{BridgeState, BridgeStatus, StatusBoard};
use crate::store::{PortalRecord, Store};

pub use remote::{RemoteEvent, RemoteEventKind, RemoteSender};

/// Who a network is: its protocol id and name (for `m.bridge` state) and its ghost prefix.
#[derive(Debug, Clone)]
pub struct NetworkInfo {
    /// Protocol id, e.g. `irc`.
    pub protocol_id: String,
    /// Human name, e.g. `IRC`.
    pub protocol_name: String,
    /// Localpart prefix of ghosts (and namespace), e.g. `irc_`.
    pub ghost_prefix: String,
    /// Localpart prefix of aliases the network answers for, if any.
    pub alias_prefix: Option<String>,
}

impl NetworkInfo {
    /// Info with no alias namespace.
    pub fn new(protocol_id: &str, protocol_name: &str, ghost_prefix: &str) -> Self {
        Self {
            protocol_id: protocol_id.to_owned(),
            protocol_name: protocol_name.to_owned(),
            ghost_prefix: ghost_prefix.to_owned(),
            alias_prefix: None,
        }
    }

    /// The registration prefixes.
    pub fn prefixes(&self) -> Prefixes {
        Prefixes {
            user: self.ghost_prefix.clone(),
            alias: self.alias_prefix.clone(),
        }
    }
}

/// A Matrix message on its way to the network.
#[derive(Debug, Clone)]
pub struct MatrixMessage {
    /// The event.
    pub event_id: OwnedEventId,
    /// Who sent it.
    pub sender: OwnedUserId,
    /// The sender's global displayname, if they have one (see [`Bridge::displayname_of`]).
    pub sender_displayname: Option<String>,
    /// The full `m.room.message` content.
    pub content: Value,
    /// Plain text to deliver: the body, or the relay template applied to it when relayed.
    pub body: String,
    /// Remote id of the message this replies to, if it is bridged.
    pub reply_to: Option<String>,
    /// Whether the sender is relayed through the bot (no own remote login).
    pub relayed: bool,
    /// `origin_server_ts`.
    pub ts: u64,
}

/// A Matrix edit of a bridged message.
#[derive(Debug, Clone)]
pub struct MatrixEdit {
    /// The edit event.
    pub event_id: OwnedEventId,
    /// Who edited.
    pub sender: OwnedUserId,
    /// Remote id of the edited message.
    pub target_remote_id: String,
    /// `m.new_content`.
    pub new_content: Value,
    /// Plain new text (relay template applied when relayed).
    pub body: String,
    /// Whether relayed.
    pub relayed: bool,
}

/// What a Matrix redaction removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedactionTarget {
    /// A bridged message, by remote id.
    Message(String),
    /// A bridged reaction.
    Reaction {
        /// Remote id of the message reacted to.
        target_remote_id: String,
        /// The reaction key.
        key: String,
    },
}

/// A Matrix redaction of something bridged.
#[derive(Debug, Clone)]
pub struct MatrixRedaction {
    /// The redaction event.
    pub event_id: OwnedEventId,
    /// Who redacted.
    pub sender: OwnedUserId,
    /// What went.
    pub target: RedactionTarget,
}

/// A Matrix reaction to a bridged message.
#[derive(Debug, Clone)]
pub struct MatrixReaction {
    /// The reaction event.
    pub event_id: OwnedEventId,
    /// Who reacted.
    pub sender: OwnedUserId,
    /// Remote id of the message reacted to.
    pub target_remote_id: String,
    /// The key, e.g. an emoji.
    pub key: String,
}

/// A membership change of a Matrix user in a portal.
#[derive(Debug, Clone)]
pub struct MatrixMembership {
    /// The member event.
    pub event_id: OwnedEventId,
    /// Whose membership changed.
    pub user_id: OwnedUserId,
    /// Who changed it.
    pub sender: OwnedUserId,
    /// `join`, `leave`, `invite`, `ban` or `knock`.
    pub membership: String,
}

/// What a remote network implements. Only [`Network::info`] and
/// [`Network::handle_matrix_message`] are required; every other capability has a default
/// that does nothing (or refuses, for logins).
#[async_trait]
pub trait Network: Send + Sync + 'static {
    /// Who the network is.
    fn info(&self) -> NetworkInfo;

    /// Connects to the network. `bridge` is the handle to send remote events through; keep it.
    async fn start(&self, _bridge: Bridge) -> Result<()> {
        Ok(())
    }

    /// Disconnects.
    async fn stop(&self) -> Result<()> {
        Ok(())
    }

    /// Delivers a Matrix message; returns the remote message id to remember for edits,
    /// replies, redactions and reactions.
    async fn handle_matrix_message(
        &self,
        portal: &PortalRecord,
        message: &MatrixMessage,
    ) -> Result<Option<String>>;

    /// Delivers an edit.
    async fn handle_matrix_edit(&self, _portal: &PortalRecord, _edit: &MatrixEdit) -> Result<()> {
        Ok(())
    }

    /// Delivers a redaction.
    async fn handle_matrix_redaction(
        &self,
        _portal: &PortalRecord,
        _redaction: &MatrixRedaction,
    ) -> Result<()> {
        Ok(())
    }

    /// Delivers a reaction.
    async fn handle_matrix_reaction(
        &self,
        _portal: &PortalRecord,
        _reaction: &MatrixReaction,
    ) -> Result<()> {
        Ok(())
    }

    /// Delivers a membership change.
    async fn handle_matrix_membership(
        &self,
        _portal: &PortalRecord,
        _membership: &MatrixMembership,
    ) -> Result<()> {
        Ok(())
    }

    /// Delivers typing notifications (needs ephemeral events).
    async fn handle_matrix_typing(
        &self,
        _portal: &PortalRecord,
        _user_id: &UserId,
        _typing: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Delivers a read receipt of a Matrix user on a bridged message (needs ephemeral events).
    async fn handle_matrix_receipt(
        &self,
        _portal: &PortalRecord,
        _user_id: &UserId,
        _remote_id: &str,
    ) -> Result<()> {
        Ok(())
    }

    /// The bot was invited to a room that is not a portal by a user allowed to use the
    /// bridge: return a remote chat id to make the room its portal, or `None` to refuse.
    async fn portal_for_invite(
        &self,
        _room_id: &RoomId,
        _inviter: &UserId,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// A Matrix user with at least `relay` permission invited one of the network's ghosts to a
    /// room that is not a portal (typically a direct chat): return a remote chat id to make the
    /// room its portal (the ghost then joins), or `None` to leave the invite alone.
    async fn portal_for_ghost_invite(
        &self,
        _room_id: &RoomId,
        _ghost: &UserId,
        _inviter: &UserId,
        _is_direct: bool,
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// An alias in the network's alias namespace was looked up and does not exist: return the
    /// remote chat it names and how to create its room (the alias is added to the options),
    /// or `None` if there is no such chat.
    async fn portal_for_alias(
        &self,
        _alias: &RoomAliasId,
    ) -> Result<Option<(String, RoomOptions)>> {
        Ok(None)
    }

    /// The network's third-party lookups (`/_matrix/app/v1/thirdparty/*`), if it has any:
    /// implement [`ThirdPartyLookup`] and return `Some(self)`. `None` (the default) answers 404.
    fn third_party(&self) -> Option<&dyn ThirdPartyLookup> {
        None
    }

    /// HTTP routes of the network's own, served on the appservice listener beside the
    /// appservice API (e.g. media for users of the remote network): [`Bridge::router`] merges
    /// them in. Called once per router, possibly before [`Network::start`]. The SDK does not
    /// authenticate them (they are not called by the homeserver): each route checks its callers
    /// itself. Their paths must not overlap the SDK's (`/_matrix/app/`, `/transactions/`,
    /// `/users/`, `/rooms/`, `/metrics`, `/_causeway/`): axum refuses overlapping routes with a
    /// panic when merging. Default: none.
    ///
    /// ```
    /// use appservice_sdk::bridge::{MatrixMessage, Network, NetworkInfo};
    /// use appservice_sdk::store::PortalRecord;
    /// use axum::routing::get;
    ///
    /// struct Hello;
    ///
    /// #[async_trait::async_trait]
    /// impl Network for Hello {
    ///     fn info(&self) -> NetworkInfo {
    ///         NetworkInfo::new("hello", "Hello", "hello_")
    ///     }
    ///     async fn handle_matrix_message(
    ///         &self,
    ///         _portal: &PortalRecord,
    ///         _message: &MatrixMessage,
    ///     ) -> appservice_sdk::Result<Option<String>> {
    ///         Ok(None)
    ///     }
    ///     fn routes(&self) -> Option<axum::Router> {
    ///         Some(axum::Router::new().route("/_hello/ping", get(|| async { "pong" })))
    ///     }
    /// }
    /// ```
    fn routes(&self) -> Option<axum::Router> {
        None
    }

    /// The network's own management-room commands, for `help` (each replaces a built-in command
    /// of the same name in the list). Default: none.
    fn commands(&self) -> Vec<CommandHelp> {
        Vec::new()
    }

    /// Runs one of the network's own commands: `command` is the first word, lowercased, `args`
    /// the rest. Called for every command but `help`, before the built-in ones, from users with
    /// at least `relay` permission (check `context.permission` for more); return `Ok(None)` for
    /// "not mine" (the default) to let the built-in command (or "unknown command") answer, or the
    /// reply the bot sends.
    ///
    /// ```
    /// use appservice_sdk::bridge::{MatrixMessage, Network, NetworkInfo};
    /// use appservice_sdk::commands::{CommandContext, CommandHelp};
    /// use appservice_sdk::config::Permission;
    /// use appservice_sdk::store::PortalRecord;
    ///
    /// struct Chats;
    ///
    /// #[async_trait::async_trait]
    /// impl Network for Chats {
    ///     fn info(&self) -> NetworkInfo {
    ///         NetworkInfo::new("chats", "Chats", "chats_")
    ///     }
    ///     async fn handle_matrix_message(
    ///         &self,
    ///         _portal: &PortalRecord,
    ///         _message: &MatrixMessage,
    ///     ) -> appservice_sdk::Result<Option<String>> {
    ///         Ok(None)
    ///     }
    ///     fn commands(&self) -> Vec<CommandHelp> {
    ///         vec![CommandHelp::new("whois", "whois NAME: who NAME is on Chats")]
    ///     }
    ///     async fn handle_command(
    ///         &self,
    ///         context: &CommandContext<'_>,
    ///         command: &str,
    ///         args: &[&str],
    ///     ) -> appservice_sdk::Result<Option<String>> {
    ///         match command {
    ///             "whois" if context.permission < Permission::User => {
    ///                 Ok(Some("whois needs the `user` permission.".to_owned()))
    ///             }
    ///             "whois" => Ok(Some(format!("{} is a Chats user.", args.join(" ")))),
    ///             _ => Ok(None),
    ///         }
    ///     }
    /// }
    /// ```
    async fn handle_command(
        &self,
        _context: &CommandContext<'_>,
        _command: &str,
        _args: &[&str],
    ) -> Result<Option<String>> {
        Ok(None)
    }

    /// `login ARGS...`: logs a Matrix user in; returns the login state to store.
    async fn login(&self, _user_id: &UserId, _args: &[&str]) -> Result<String> {
        Err(Error::Network("this bridge has no logins".to_owned()))
    }

    /// `logout`.
    async fn logout(&self, _user_id: &UserId, _login: &str) -> Result<()> {
        Ok(())
    }
}

enum Job {
    Matrix(Value),
    Remote(PortalRecord, RemoteEvent),
}

struct Queued {
    job: Job,
    received: Instant,
    done: oneshot::Sender<Result<()>>,
}

struct Inner {
    appservice: Appservice,
    store: Store,
    network: Arc<dyn Network>,
    info: NetworkInfo,
    section: BridgeSection,
    metrics: Arc<Metrics>,
    status: StatusBoard,
    queues: Mutex<HashMap<OwnedRoomId, mpsc::Sender<Queued>>>,
    typing: Mutex<HashMap<OwnedRoomId, BTreeSet<OwnedUserId>>>,
    displaynames: Mutex<HashMap<OwnedUserId, (Option<String>, Instant)>>,
    listen: String,
    bot_displayname: Option<String>,
}

/// The running bridge; cheap to clone.
#[derive(Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("protocol", &self.inner.info.protocol_id)
            .finish()
    }
}

/// How many events may wait in one portal's queue before senders wait.
const QUEUE_DEPTH: usize = 1024;
/// Cached Matrix displaynames older than this are fetched again (a member event refreshes them sooner).
const DISPLAYNAME_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// At most this many cached displaynames.
const DISPLAYNAME_CACHE: usize = 10_000;

impl Bridge {
    /// A bridge for `network`, configured by `config`, registered as `registration`; connects
    /// to (and migrates) the database.
    pub async fn new<C>(
        config: &BridgeConfig<C>,
        registration: Registration,
        network: Arc<dyn Network>,
    ) -> Result<Self> {
        let store = Store::connect(&config.appservice.database).await?;
        let appservice = Appservice::new(
            registration,
            &config.homeserver.address,
            &config.homeserver.domain,
        )?;
        Ok(Self::from_parts(appservice, store, network, config))
    }

    /// A bridge from an existing appservice and store.
    pub fn from_parts<C>(
        appservice: Appservice,
        store: Store,
        network: Arc<dyn Network>,
        config: &BridgeConfig<C>,
    ) -> Self {
        let info = network.info();
        Self {
            inner: Arc::new(Inner {
                appservice,
                store,
                network,
                info,
                section: config.bridge.clone(),
                metrics: Arc::new(Metrics::default()),
                status: StatusBoard::default(),
                queues: Mutex::new(HashMap::new()),
                typing: Mutex::new(HashMap::new()),
                displaynames: Mutex::new(HashMap::new()),
                listen: format!("{}:{}", config.appservice.hostname, config.appservice.port),
                bot_displayname: config.appservice.bot.displayname.clone(),
            }),
        }
    }

    /// The appservice (client, intents).
    pub fn appservice(&self) -> &Appservice {
        &self.inner.appservice
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// The network's info.
    pub fn info(&self) -> &NetworkInfo {
        &self.inner.info
    }

    /// The network.
    pub fn network(&self) -> &Arc<dyn Network> {
        &self.inner.network
    }

    /// Whether the config lets portals turn relay mode on.
    pub fn relay_allowed(&self) -> bool {
        self.inner.section.relay.enabled
    }

    /// The permission of a Matrix user.
    pub fn permission_of(&self, user_id: &UserId) -> Permission {
        self.inner.section.permission_of(user_id.as_str())
    }

    /// A Matrix user's global displayname (`None` if they have none or the profile cannot be
    /// read), cached for 10 minutes and refreshed by the member events the bridge sees.
    ///
    /// `GET /_matrix/client/v3/profile/{userId}/displayname`
    pub async fn displayname_of(&self, user_id: &UserId) -> Option<String> {
        if let Some((name, at)) = self
            .inner
            .displaynames
            .lock()
            .expect("displaynames lock")
            .get(user_id)
            && at.elapsed() < DISPLAYNAME_TTL
        {
            return name.clone();
        }
        let name = self.fetch_displayname(user_id).await;
        self.remember_displayname(user_id, name.clone());
        name
    }

    /// Caches a displayname (from the profile, or from a member event).
    pub(crate) fn remember_displayname(&self, user_id: &UserId, name: Option<String>) {
        let mut cache = self.inner.displaynames.lock().expect("displaynames lock");
        if cache.len() >= DISPLAYNAME_CACHE && !cache.contains_key(user_id) {
            cache.clear();
        }
        cache.insert(user_id.to_owned(), (name, Instant::now()));
    }

    /// The current bridge status.
    pub fn status(&self) -> BridgeStatus {
        self.inner.status.get()
    }

    /// Reports the bridge's state; on a change, every management room gets a notice.
    pub async fn set_status(&self, state: BridgeState, message: Option<String>) {
        if !self.inner.status.set(state, message.clone()) {
            return;
        }
        let text = match &message {
            Some(m) => format!("Bridge status: {} ({m})", state.describe()),
            None => format!("Bridge status: {}", state.describe()),
        };
        let rooms = match self.inner.store.management_rooms().await {
            Ok(rooms) => rooms,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list management rooms for a status notice");
                return;
            }
        };
        let bot = self.inner.appservice.bot();
        for (_, room) in rooms {
            if let Ok(room) = RoomId::parse(&room)
                && let Err(e) = bot.send_notice(&room, &text, Default::default()).await
            {
                tracing::warn!(error = %e, %room, "status notice failed");
            }
        }
    }

    /// The HTTP router (appservice API, `/metrics`, `/_causeway/status`, and the network's own
    /// [`Network::routes`]), for running the bridge in-process (tests, benchmarks).
    pub fn router(&self) -> axum::Router {
        let hs_token = self.inner.appservice.registration().hs_token.clone();
        let state = ServerState::with_metrics(
            &hs_token,
            self.inner.store.clone(),
            Arc::new(self.clone()),
            self.inner.metrics.clone(),
        );
        let router = server::app(state);
        match self.inner.network.routes() {
            Some(routes) => router.merge(routes),
            None => router,
        }
    }

    /// Reaches the homeserver (learning its `/versions`), sets the bot's displayname and
    /// starts the network. [`Bridge::serve`] does this first; call it yourself when driving
    /// [`Bridge::router`] in-process.
    pub async fn start(&self) -> Result<()> {
        let client = self.inner.appservice.client();
        let versions = client.discover_versions().await?;
        tracing::info!(versions = ?versions.versions, "homeserver reached");
        if let Some(name) = &self.inner.bot_displayname
            && let Err(e) = self.inner.appservice.bot().set_displayname(name).await
        {
            tracing::warn!(error = %e, "could not set the bot's displayname");
        }
        self.inner.network.start(self.clone()).await?;
        tokio::spawn(prune_processed(self.inner.store.clone()));
        if self.inner.status.get().state_event == BridgeState::Starting {
            self.set_status(BridgeState::Connected, None).await;
        }
        Ok(())
    }

    /// Starts (see [`Bridge::start`]) and serves the appservice API on `listener` until
    /// `shutdown`, then stops the network.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        self.start().await?;
        let served = server::run(listener, self.router(), shutdown).await;
        self.inner.network.stop().await?;
        self.inner.status.set(BridgeState::Stopped, None);
        served.map_err(|e| Error::Io {
            path: "listener".to_owned(),
            error: e,
        })
    }

    /// Binds `appservice.hostname:port` from the config and [`Bridge::serve`]s.
    pub async fn run(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(&self.inner.listen)
            .await
            .map_err(|error| Error::Io {
                path: self.inner.listen.clone(),
                error,
            })?;
        tracing::info!(listen = %self.inner.listen, "appservice listening");
        self.serve(listener, shutdown).await
    }

    /// Queues a remote event behind everything already queued for its portal, and waits until
    /// it was handled.
    pub async fn queue_remote_event(&self, portal: PortalRecord, event: RemoteEvent) -> Result<()> {
        let room = portal.room_id.clone();
        let rx = self.enqueue(&room, Job::Remote(portal, event)).await?;
        rx.await
            .map_err(|_| Error::Network("portal queue stopped".to_owned()))?
    }

    async fn enqueue(&self, room_id: &RoomId, job: Job) -> Result<oneshot::Receiver<Result<()>>> {
        let sender = {
            let mut queues = self.inner.queues.lock().expect("queues lock");
            queues
                .entry(room_id.to_owned())
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
                    tokio::spawn(self.clone().portal_worker(rx));
                    tx
                })
                .clone()
        };
        let (done, rx) = oneshot::channel();
        sender
            .send(Queued {
                job,
                received: Instant::now(),
                done,
            })
            .await
            .map_err(|_| Error::Network("portal queue stopped".to_owned()))?;
        Ok(rx)
    }

    /// Handles one portal's events one after the other.
    async fn portal_worker(self, mut rx: mpsc::Receiver<Queued>) {
        while let Some(queued) = rx.recv().await {
            let result = match queued.job {
                Job::Matrix(event) => self.handle_matrix_event(event).await,
                Job::Remote(portal, event) => {
                    self.handle_remote_event(&portal, event).await.map(|_| ())
                }
            };
            self.inner
                .metrics
                .observe_latency(queued.received.elapsed());
            let _ = queued.done.send(result);
        }
    }

    /// Records who types in a room now; returns who typed before.
    fn swap_typing(&self, room_id: &RoomId, now: BTreeSet<OwnedUserId>) -> BTreeSet<OwnedUserId> {
        let mut typing = self.inner.typing.lock().expect("typing lock");
        if now.is_empty() {
            typing.remove(room_id).unwrap_or_default()
        } else {
            typing.insert(room_id.to_owned(), now).unwrap_or_default()
        }
    }

    async fn dispatch(&self, txn: Transaction) -> Result<()> {
        let mut waits = Vec::with_capacity(txn.events.len());
        for event in txn.events {
            let Some(room) = event["room_id"]
                .as_str()
                .and_then(|r| RoomId::parse(r).ok())
            else {
                continue;
            };
            self.inner.metrics.event_in("matrix");
            waits.push(self.enqueue(&room, Job::Matrix(event)).await?);
        }
        for ephemeral in txn.ephemeral {
            if let Err(e) = self.handle_ephemeral(&ephemeral).await {
                tracing::debug!(error = %e, "ephemeral event not handled");
            }
        }
        let mut first_error = None;
        for wait in waits {
            let result = wait
                .await
                .map_err(|_| Error::Network("portal queue stopped".to_owned()));
            if let Err(e) = result.and_then(|r| r) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[async_trait]
impl AppserviceHandler for Bridge {
    async fn handle_transaction(&self, txn: Transaction) -> Result<()> {
        self.dispatch(txn).await
    }

    async fn query_user(&self, user_id: &UserId) -> bool {
        let ours = user_id.server_name() == self.inner.appservice.domain()
            && user_id
                .localpart()
                .starts_with(&self.inner.info.ghost_prefix);
        ours && self
            .inner
            .appservice
            .intent(user_id)
            .ensure_registered()
            .await
            .is_ok()
    }

    async fn query_room_alias(&self, alias: &RoomAliasId) -> bool {
        let Some(prefix) = &self.inner.info.alias_prefix else {
            return false;
        };
        if alias.server_name() != self.inner.appservice.domain()
            || !alias.alias().starts_with(prefix.as_str())
        {
            return false;
        }
        let wanted = match self.inner.network.portal_for_alias(alias).await {
            Ok(Some(wanted)) => wanted,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(%alias, error = %e, "alias lookup failed");
                return false;
            }
        };
        let (remote_id, mut options) = wanted;
        options.alias_localpart = Some(alias.alias().to_owned());
        match self.create_portal(&remote_id, &options).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(%alias, error = %e, "could not create the portal for an alias");
                false
            }
        }
    }

    fn third_party(&self) -> Option<&dyn ThirdPartyLookup> {
        self.inner.network.third_party()
    }

    fn status(&self) -> Value {
        serde_json::to_value(self.inner.status.get()).unwrap_or_default()
    }
}

/// How long processed transaction and event ids are kept: far longer than any homeserver
/// keeps retrying a transaction.
const KEEP_PROCESSED_MS: i64 = 7 * 24 * 3600 * 1000;

/// Forgets old processed ids, hourly, so those tables stay bounded.
async fn prune_processed(store: Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before = crate::store::now_ms() - KEEP_PROCESSED_MS;
        match store.prune_processed(before).await {
            Ok(gone) if gone > 0 => tracing::debug!(gone, "pruned processed ids"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "pruning processed ids failed"),
        }
    }
}

/// Whether an error is worth a redelivery; see [`Error::is_transient`].
pub(crate) fn is_transient(error: &Error) -> bool {
    error.is_transient()
}
