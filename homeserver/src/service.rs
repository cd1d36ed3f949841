//! The domain: accounts, sessions, user-interactive auth, rate limits. No axum, no SQL.

pub mod accounts;
pub mod media;
pub mod passwords;
pub mod ratelimit;
pub mod secrets;
pub mod shared_secret;
pub mod uiaa;

use std::sync::Arc;

use crate::{config::Config, store::Store};

/// Everything a request handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: Store,
    pub limits: Arc<ratelimit::Limiters>,
    pub uiaa: Arc<uiaa::Sessions>,
    pub nonces: Arc<shared_secret::Nonces>,
    pub media: Arc<media::Media>,
}

impl Services {
    pub fn new(config: Config, store: Store) -> Self {
        let limits = Arc::new(ratelimit::Limiters::new(&config));
        let media = Arc::new(media::Media::new(&config));
        Self {
            config: Arc::new(config),
            store,
            limits,
            uiaa: Arc::new(uiaa::Sessions::default()),
            nonces: Arc::new(shared_secret::Nonces::default()),
            media,
        }
    }

    /// `@localpart:server_name`.
    pub fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.config.server_name)
    }
}
