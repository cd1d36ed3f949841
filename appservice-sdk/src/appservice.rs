//! [`Appservice`]: the registration, the homeserver client and the intents of the bot and
//! the ghosts, shared by the server, the bridge and the network code.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use ruma::{OwnedRoomId, OwnedUserId, RoomId, UserId};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::intent::Intent;
use crate::registration::Registration;

/// The appservice as seen from the bridge; cheap to clone.
///
/// ```
/// use appservice_sdk::{Appservice, registration::Registration};
/// let reg = Registration::from_yaml(r#"
/// id: echo
/// url: http://127.0.0.1:29330
/// as_token: secret-as
/// hs_token: secret-hs
/// sender_localpart: echobot
/// namespaces: {users: [{exclusive: true, regex: "@echo_.*:example\\.org"}]}
/// "#).unwrap();
/// let appservice = Appservice::new(reg, "http://127.0.0.1:8008", "example.org").unwrap();
/// assert_eq!(appservice.bot().user_id().as_str(), "@echobot:example.org");
/// assert_eq!(appservice.user_id("echo_alice").unwrap().as_str(), "@echo_alice:example.org");
/// ```
#[derive(Debug, Clone)]
pub struct Appservice {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registration: Registration,
    client: Client,
    domain: String,
    bot: OwnedUserId,
    registered: Mutex<HashSet<OwnedUserId>>,
    joined: Mutex<HashSet<(OwnedRoomId, OwnedUserId)>>,
}

impl Appservice {
    /// An appservice for `registration`, talking to the homeserver at `homeserver_url` whose
    /// server name is `domain`.
    pub fn new(registration: Registration, homeserver_url: &str, domain: &str) -> Result<Self> {
        let client = Client::new(homeserver_url, &registration.as_token);
        Self::with_client(registration, client, domain)
    }

    /// Like [`Appservice::new`], with a client already configured (e.g. its retry policy).
    pub fn with_client(registration: Registration, client: Client, domain: &str) -> Result<Self> {
        let bot = make_user_id(&registration.sender_localpart, domain)?;
        Ok(Self {
            inner: Arc::new(Inner {
                registration,
                client,
                domain: domain.to_owned(),
                bot,
                registered: Mutex::new(HashSet::new()),
                joined: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// The registration.
    pub fn registration(&self) -> &Registration {
        &self.inner.registration
    }

    /// The homeserver client.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The server name.
    pub fn domain(&self) -> &str {
        &self.inner.domain
    }

    /// `@localpart:domain`.
    pub fn user_id(&self, localpart: &str) -> Result<OwnedUserId> {
        make_user_id(localpart, &self.inner.domain)
    }

    /// The bridge bot's intent.
    pub fn bot(&self) -> Intent {
        Intent::new(self.clone(), self.inner.bot.clone())
    }

    /// The bot's user id.
    pub fn bot_user_id(&self) -> &UserId {
        &self.inner.bot
    }

    /// The intent of a user in the appservice's namespace (a ghost, or the bot).
    pub fn intent(&self, user_id: &UserId) -> Intent {
        Intent::new(self.clone(), user_id.to_owned())
    }

    pub(crate) fn is_registered(&self, user_id: &UserId) -> bool {
        user_id == self.inner.bot
            || self
                .inner
                .registered
                .lock()
                .expect("cache lock")
                .contains(user_id)
    }

    pub(crate) fn mark_registered(&self, user_id: &UserId) {
        self.inner
            .registered
            .lock()
            .expect("cache lock")
            .insert(user_id.to_owned());
    }

    pub(crate) fn is_joined(&self, room_id: &RoomId, user_id: &UserId) -> bool {
        self.inner
            .joined
            .lock()
            .expect("cache lock")
            .contains(&(room_id.to_owned(), user_id.to_owned()))
    }

    /// Remembers (or forgets) that a user is in a room, e.g. from membership events.
    pub fn set_joined(&self, room_id: &RoomId, user_id: &UserId, joined: bool) {
        let key = (room_id.to_owned(), user_id.to_owned());
        let mut cache = self.inner.joined.lock().expect("cache lock");
        if joined {
            cache.insert(key);
        } else {
            cache.remove(&key);
        }
    }
}

fn make_user_id(localpart: &str, domain: &str) -> Result<OwnedUserId> {
    UserId::parse(format!("@{localpart}:{domain}"))
        .map_err(|e| Error::Protocol(format!("bad user id @{localpart}:{domain}: {e}")))
}
