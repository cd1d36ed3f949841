//! Application services: their registrations, what they may do as clients (as_token auth,
//! masquerading, exclusive namespaces), and the durable transaction queue that feeds them events.
//!
//! Registrations are read from `app_service_config_files` at start and again on SIGHUP; a
//! [`Registrations`] snapshot is swapped atomically so requests never see half a reload.

pub mod batch_send;
pub mod query;
pub mod registration;
pub mod sender;
pub mod thirdparty;

use std::sync::{Arc, RwLock};

use ruma::api::error::ErrorKind;

pub use registration::{Namespace, Namespaces, Registration, load_files};

use crate::{
    error::{Error, Result},
    service::{Services, secrets::secure_eq},
};

/// The registrations currently in force, swapped whole on reload.
pub struct AppServices {
    current: RwLock<Arc<Vec<Registration>>>,
    /// Wakes the senders when the set of registrations changes.
    changed: tokio::sync::watch::Sender<u64>,
    /// User queries recently answered "no such user".
    pub(crate) user_misses: query::QueryMisses,
    /// Typing changes for the senders of appservices that receive ephemeral events.
    pub(crate) typing: tokio::sync::broadcast::Sender<String>,
}

impl AppServices {
    pub fn new(registrations: Vec<Registration>) -> Self {
        Self {
            current: RwLock::new(Arc::new(registrations)),
            changed: tokio::sync::watch::Sender::new(0),
            user_misses: query::QueryMisses::default(),
            typing: tokio::sync::broadcast::Sender::new(sender::TYPING_BACKLOG),
        }
    }

    /// A snapshot of every registration.
    pub fn all(&self) -> Arc<Vec<Registration>> {
        self.current
            .read()
            .expect("appservice lock poisoned")
            .clone()
    }

    /// The registration with this id.
    pub fn get(&self, id: &str) -> Option<Registration> {
        self.all().iter().find(|r| r.id == id).cloned()
    }

    /// The registration whose `as_token` this is. Every token is compared, in constant time, so
    /// the answer's timing says nothing about which prefix matched.
    pub fn by_as_token(&self, token: &str) -> Option<Registration> {
        let mut found = None;
        for r in self.all().iter() {
            if secure_eq(r.as_token.as_bytes(), token.as_bytes()) {
                found = Some(r.clone());
            }
        }
        found
    }

    /// Replaces the registrations, logging what changed; the senders pick up new ones.
    pub fn replace(&self, registrations: Vec<Registration>) {
        let old = self.all();
        for r in registrations.iter() {
            match old.iter().find(|o| o.id == r.id) {
                None => tracing::info!(appservice = r.id, "application service added"),
                Some(o) if o != r => {
                    tracing::info!(
                        appservice = r.id,
                        "application service registration changed"
                    )
                }
                Some(_) => {}
            }
        }
        for o in old.iter() {
            if !registrations.iter().any(|r| r.id == o.id) {
                tracing::info!(appservice = o.id, "application service removed");
            }
        }
        *self.current.write().expect("appservice lock poisoned") = Arc::new(registrations);
        self.user_misses.clear();
        self.changed.send_modify(|n| *n += 1);
    }

    /// Tells the senders of appservices that receive ephemeral data that typing changed in a
    /// room (typing is memory-only, so it does not ride the stream).
    pub(crate) fn typing_changed(&self, room_id: &str) {
        if self.typing.receiver_count() > 0 {
            // An error only means every receiver went away meanwhile.
            let _ = self.typing.send(room_id.to_owned());
        }
    }

    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The appservice (other than `except`) holding `user_id` in an exclusive namespace.
    pub fn exclusive_user_owner(&self, user_id: &str, except: Option<&str>) -> Option<String> {
        self.all()
            .iter()
            .filter(|r| Some(r.id.as_str()) != except)
            .find(|r| {
                r.namespaces
                    .users
                    .iter()
                    .any(|n| n.exclusive && n.is_match(user_id))
            })
            .map(|r| r.id.clone())
    }

    /// The appservice (other than `except`) holding `alias` in an exclusive namespace.
    pub fn exclusive_alias_owner(&self, alias: &str, except: Option<&str>) -> Option<String> {
        self.all()
            .iter()
            .filter(|r| Some(r.id.as_str()) != except)
            .find(|r| {
                r.namespaces
                    .aliases
                    .iter()
                    .any(|n| n.exclusive && n.is_match(alias))
            })
            .map(|r| r.id.clone())
    }
}

impl Services {
    /// Re-reads `app_service_config_files`; on any error the old registrations stay in force.
    pub fn reload_appservices(&self) -> std::result::Result<(), crate::config::ConfigError> {
        let registrations = load_files(&self.config.app_service_config_files)?;
        self.appservices.replace(registrations);
        Ok(())
    }

    /// Refuses `user_id` to anyone but the appservice that holds it exclusively.
    pub fn check_user_not_exclusive(&self, user_id: &str, caller: Option<&str>) -> Result<()> {
        match self.appservices.exclusive_user_owner(user_id, caller) {
            Some(owner) => {
                tracing::info!(
                    user_id,
                    owner,
                    "refused: user id in an exclusive appservice namespace"
                );
                Err(Error::new(
                    ErrorKind::Exclusive,
                    "This user ID is reserved by an application service.",
                ))
            }
            None => Ok(()),
        }
    }

    /// Refuses `alias` to anyone but the appservice that holds it exclusively.
    pub fn check_alias_not_exclusive(&self, alias: &str, caller: Option<&str>) -> Result<()> {
        match self.appservices.exclusive_alias_owner(alias, caller) {
            Some(owner) => {
                tracing::info!(
                    alias,
                    owner,
                    "refused: alias in an exclusive appservice namespace"
                );
                Err(Error::new(
                    ErrorKind::Exclusive,
                    "This alias is reserved by an application service.",
                ))
            }
            None => Ok(()),
        }
    }
}

impl Services {
    /// Whether the caller may create `alias` (`PUT /directory/room`, `createRoom`'s
    /// `room_alias_name`): nobody may take an alias another appservice holds exclusively, and an
    /// appservice (or a user it masquerades as) may create aliases only inside its own alias
    /// namespaces. Both are `M_EXCLUSIVE`, as the spec says.
    pub fn check_alias_creatable(&self, alias: &str, caller: Option<&str>) -> Result<()> {
        self.check_alias_not_exclusive(alias, caller)?;
        if let Some(as_id) = caller
            && !self
                .appservices
                .get(as_id)
                .is_some_and(|r| r.is_alias_ours(alias))
        {
            tracing::info!(
                alias,
                appservice = as_id,
                "refused: alias outside the appservice's namespaces"
            );
            return Err(Error::new(
                ErrorKind::Exclusive,
                "This alias is outside the application service's namespaces.",
            ));
        }
        Ok(())
    }
}

impl Services {
    /// Applies `?user_id=` and `?device_id=` to an appservice's request: the user must be in its
    /// namespaces (or be its sender) and registered here; the device must be that user's.
    pub async fn masquerade(
        &self,
        requester: crate::service::accounts::Requester,
        user_id: Option<&str>,
        device_id: Option<&str>,
    ) -> Result<crate::service::accounts::Requester> {
        let Some(as_id) = requester.appservice.clone() else {
            return Ok(requester);
        };
        let Some(reg) = self.appservices.get(&as_id) else {
            return Err(Error::unknown_token(false, "Unknown access token"));
        };
        let server = &self.config.server_name;
        let user_id = match user_id {
            None => requester.user_id,
            Some(user_id) => {
                if !reg.is_user_ours(user_id, server) {
                    tracing::info!(
                        appservice = as_id,
                        user_id,
                        "refused masquerade outside namespace"
                    );
                    return Err(Error::forbidden(
                        "Application service cannot masquerade as this user.",
                    ));
                }
                if user_id != reg.sender(server) {
                    match self.store.user(user_id).await? {
                        None => {
                            return Err(Error::forbidden(
                                "Application service has not registered this user.",
                            ));
                        }
                        // A deactivated account acts no more, whoever holds the token.
                        Some(u) if u.deactivated => {
                            tracing::info!(
                                appservice = as_id,
                                user_id,
                                "refused masquerade as a deactivated user"
                            );
                            return Err(Error::new(
                                ErrorKind::UserDeactivated,
                                "This user has been deactivated.",
                            ));
                        }
                        Some(_) => {}
                    }
                }
                user_id.to_owned()
            }
        };
        let device_id = match device_id {
            None => String::new(),
            Some(d) => {
                if self.store.device(&user_id, d).await?.is_none() {
                    return Err(Error::new(
                        ErrorKind::UnknownDevice,
                        "Device does not belong to this user.",
                    ));
                }
                d.to_owned()
            }
        };
        Ok(crate::service::accounts::Requester {
            user_id,
            device_id,
            appservice: Some(as_id),
        })
    }
}

impl Services {
    /// `register` with `m.login.application_service`: a user in the appservice's namespace, no
    /// password, owned by the appservice. Registration being closed does not apply.
    pub async fn register_for_appservice(&self, as_id: &str, localpart: &str) -> Result<String> {
        let reg = self
            .appservices
            .get(as_id)
            .ok_or_else(|| Error::unknown_token(false, "Unknown access token"))?;
        let user_id = self.user_id(localpart);
        // Appservices may register `_`-prefixed localparts (the spec recommends them), so only
        // the character set and length are checked here.
        let valid = !localpart.is_empty()
            && localpart.bytes().all(
                |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
            )
            && user_id.len() <= 255;
        if !valid {
            return Err(Error::new(ErrorKind::InvalidUsername, "Invalid user ID"));
        }
        if !reg.is_user_ours(&user_id, &self.config.server_name) {
            return Err(Error::new(
                ErrorKind::Exclusive,
                "User ID is not in the application service's namespaces.",
            ));
        }
        let new = crate::store::NewUser {
            user_id: &user_id,
            password_hash: None,
            is_admin: false,
            is_guest: false,
            displayname: Some(localpart),
            appservice_id: Some(as_id),
        };
        match self.store.create_user(&new).await {
            Ok(()) => {
                tracing::info!(user_id, appservice = as_id, "appservice registered a user");
                Ok(user_id)
            }
            Err(crate::store::StoreError::Conflict) => {
                Err(Error::new(ErrorKind::UserInUse, "User ID already taken."))
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl Services {
    /// `login` with `m.login.application_service`: a session for a user in its namespace.
    pub async fn login_appservice(
        &self,
        as_id: &str,
        user: &str,
        opts: &crate::service::accounts::SessionOptions<'_>,
    ) -> Result<crate::service::accounts::LoginResult> {
        let reg = self
            .appservices
            .get(as_id)
            .ok_or_else(|| Error::unknown_token(false, "Unknown access token"))?;
        let user_id = self.qualify_user_id(user);
        if !reg.is_user_ours(&user_id, &self.config.server_name) {
            return Err(Error::new(
                ErrorKind::Exclusive,
                "User ID is not in the application service's namespaces.",
            ));
        }
        match self.store.user(&user_id).await? {
            Some(row) if !row.deactivated => {}
            Some(_) => {
                return Err(Error::new(
                    ErrorKind::UserDeactivated,
                    "This account has been deactivated",
                ));
            }
            None => return Err(Error::forbidden("Invalid username")),
        }
        tracing::info!(user_id, appservice = as_id, "appservice login");
        self.create_session(&user_id, opts).await
    }
}

/// How long a ping may wait for the appservice.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Services {
    /// `POST {url}/_matrix/app/v1/ping`, timed. Errors are the spec's: `M_URL_NOT_SET`,
    /// `M_CONNECTION_TIMEOUT`, `M_CONNECTION_FAILED`, `M_BAD_STATUS` (with the status and body).
    pub async fn ping_appservice(
        &self,
        as_id: &str,
        transaction_id: Option<&str>,
    ) -> Result<std::time::Duration> {
        let reg = self
            .appservices
            .get(as_id)
            .ok_or_else(|| Error::not_found("Unknown application service"))?;
        let Some(url) = &reg.url else {
            return Err(Error::new(
                ErrorKind::UrlNotSet,
                "Application service URL is not set",
            ));
        };
        let mut body = serde_json::json!({});
        if let Some(t) = transaction_id {
            body["transaction_id"] = serde_json::json!(t);
        }
        let started = std::time::Instant::now();
        let result = self
            .appservice_http
            .post(format!("{}/_matrix/app/v1/ping", url.trim_end_matches('/')))
            .bearer_auth(&reg.hs_token)
            .json(&body)
            .timeout(PING_TIMEOUT)
            .send()
            .await;
        let response = match result {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                tracing::info!(appservice = as_id, "ping timed out");
                return Err(Error::new(
                    ErrorKind::ConnectionTimeout,
                    "Connection to application service timed out",
                ));
            }
            Err(e) => {
                tracing::info!(appservice = as_id, error = %e, "ping failed to connect");
                return Err(Error::new(
                    ErrorKind::ConnectionFailed,
                    "Connection to application service failed",
                ));
            }
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            tracing::info!(appservice = as_id, %status, "ping answered with an error");
            let mut data = ruma::api::error::BadStatusErrorData::new();
            data.status = Some(status);
            data.body = Some(text);
            return Err(Error::new(
                ErrorKind::BadStatus(data),
                "Application service returned an error status",
            ));
        }
        let elapsed = started.elapsed();
        tracing::info!(
            appservice = as_id,
            ms = elapsed.as_millis() as u64,
            "ping answered"
        );
        Ok(elapsed)
    }
}

impl Services {
    /// MSC4190 device creation: `PUT /devices/{id}` by an appservice (as one of its users, via
    /// `?user_id=`) creates the device without issuing tokens.
    pub async fn create_device_for_appservice(
        &self,
        who: &crate::service::accounts::Requester,
        device_id: &str,
        display_name: Option<&str>,
    ) -> Result<()> {
        self.store
            .create_bare_device(
                &who.user_id,
                device_id,
                display_name,
                crate::store::now_ms(),
            )
            .await?;
        tracing::info!(
            user_id = who.user_id,
            device_id,
            appservice = who.appservice.as_deref().unwrap_or_default(),
            "appservice created a device (MSC4190)"
        );
        Ok(())
    }
}
