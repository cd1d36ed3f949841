//! The domain: accounts, sessions, user-interactive auth, rate limits. No axum, no SQL.

pub mod account_data;
pub mod accounts;
pub mod activity;
pub mod appservice;
pub mod client_event;
pub mod directory;
pub mod e2ee;
pub mod ephemeral;
pub mod filter;
pub mod keys;
pub mod last_seen;
pub mod media;
pub mod metrics;
pub mod passwords;
pub mod pdu;
pub mod presence;
pub mod profile;
pub mod ratelimit;
pub mod recent;
pub mod relations;
pub mod rooms;
pub mod secrets;
pub mod shared_secret;
pub mod stream;
pub mod sync;
pub mod uiaa;
pub mod unread;

use std::sync::Arc;

use ruma::signatures::Ed25519KeyPair;

use crate::{config::Config, store::Store};

/// Rooms whose state is kept in memory at once.
const ROOM_CACHE_SIZE: usize = 2_000;

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub limits: Arc<ratelimit::Limiters>,
    pub uiaa: Arc<uiaa::Sessions>,
    pub nonces: Arc<shared_secret::Nonces>,
    pub signing_key: Arc<Ed25519KeyPair>,
    pub rooms: Arc<rooms::Rooms>,
    pub stream: Arc<stream::Stream>,
    pub activity: Arc<activity::Activity>,
    pub typing: Arc<ephemeral::Typing>,
    pub unread: Arc<unread::Unread>,
    pub last_seen: Arc<last_seen::LastSeen>,
    pub lazy_members: Arc<sync::lazy::LazyMembers>,
    /// Each device's key counts and to-device state as its `/sync` last read them.
    pub device_cache: Arc<e2ee::device_cache::DeviceCache>,
    pub presence_states: Arc<presence::KnownStates>,
    pub recent: Arc<recent::RecentEvents>,
    /// Group commit of events built in different rooms at once.
    pub committer: Arc<rooms::commit::Committer>,
    pub txns: Arc<rooms::txns::SentTxns>,
    pub media: Arc<media::Media>,
    /// Application service registrations (reloaded on SIGHUP).
    pub appservices: Arc<appservice::AppServices>,
    /// The client for calls to appservices: one pool of keep-alive connections.
    pub appservice_http: reqwest::Client,
    /// Prometheus metrics; `None` unless `enable_metrics` is true, so nothing is counted then.
    pub metrics: Option<Arc<metrics::Metrics>>,
}

impl Services {
    /// Builds the services over an opened store: loads the signing key and the stream position.
    pub async fn new(config: Config, store: Store) -> anyhow::Result<Self> {
        let limits = Arc::new(ratelimit::Limiters::new(&config));
        let media = Arc::new(media::Media::new(&config));
        let signing_key = Arc::new(keys::load(&config)?);
        let position = store.max_stream_position().await?;
        let stream = stream::Stream::new(position);
        let registrations = appservice::load_files(&config.app_service_config_files)?;
        let appservice_http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        let recent = Arc::new(recent::RecentEvents::default());
        let activity = Arc::new(activity::Activity::new(position));
        let metrics = config
            .enable_metrics
            .then(|| Arc::new(metrics::Metrics::new(&store)));
        let committer = Arc::new(rooms::commit::Committer::spawn(
            store.clone(),
            recent.clone(),
            activity.clone(),
            metrics.clone(),
        ));
        let services = Self {
            config: Arc::new(config),
            store,
            limits,
            uiaa: Arc::new(uiaa::Sessions::default()),
            nonces: Arc::new(shared_secret::Nonces::default()),
            signing_key,
            rooms: Arc::new(rooms::Rooms::new(ROOM_CACHE_SIZE)),
            stream,
            activity,
            typing: Arc::new(ephemeral::Typing::default()),
            unread: Arc::new(unread::Unread::default()),
            last_seen: Arc::new(last_seen::LastSeen::default()),
            lazy_members: Arc::new(sync::lazy::LazyMembers::default()),
            device_cache: Arc::new(e2ee::device_cache::DeviceCache::default()),
            presence_states: Arc::new(presence::KnownStates::default()),
            recent,
            committer,
            txns: Arc::new(rooms::txns::SentTxns::default()),
            media,
            appservices: Arc::new(appservice::AppServices::new(registrations)),
            appservice_http,
            metrics,
        };
        appservice::sender::spawn(services.clone());
        Ok(services)
    }

    /// `@localpart:server_name`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.config.server_name)
    }
}
