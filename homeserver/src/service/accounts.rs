//! Accounts and sessions: registration, login, tokens, devices, passwords, deactivation.

use crate::{
    error::{Error, Result},
    service::{Services, passwords, secrets},
    store::{NewSession, NewUser, StoreError, now_ms},
};
use ruma::api::error::ErrorKind;

/// The authenticated caller of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requester {
    pub user_id: String,
    pub device_id: String,
    /// Set when an application service's `as_token` authenticated the request.
    pub appservice: Option<String>,
}

/// What a login or registration hands back to the client.
#[derive(Clone, Debug)]
pub struct LoginResult {
    pub user_id: String,
    pub device_id: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_in_ms: Option<u64>,
}

/// Options for a new session.
#[derive(Clone, Debug, Default)]
pub struct SessionOptions<'a> {
    pub device_id: Option<&'a str>,
    pub display_name: Option<&'a str>,
    pub refresh_token: bool,
    pub ip: &'a str,
}

/// A new account.
#[derive(Clone, Debug, Default)]
pub struct Registration<'a> {
    pub localpart: &'a str,
    pub password: Option<&'a str>,
    pub is_admin: bool,
    pub is_guest: bool,
    pub displayname: Option<&'a str>,
}

const MAX_USER_ID_LEN: usize = 255;

impl Services {
    /// Checks a requested localpart against the spec's grammar (and Synapse's reservations).
    pub fn validate_localpart(&self, localpart: &str) -> Result<()> {
        let invalid = |m: &str| Error::new(ErrorKind::InvalidUsername, m);
        if localpart.is_empty() {
            return Err(invalid("User ID cannot be empty"));
        }
        if !localpart.bytes().all(
            |b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'=' | b'-' | b'/' | b'+'),
        ) {
            return Err(invalid(
                "User ID can only contain characters a-z, 0-9, or '=_-./+'",
            ));
        }
        if localpart.starts_with('_') {
            return Err(invalid("User ID may not begin with _"));
        }
        if self.user_id(localpart).len() > MAX_USER_ID_LEN {
            return Err(invalid("User ID may not be longer than 255 characters"));
        }
        Ok(())
    }

    /// A localpart for an account that did not choose one: the next free number, as Synapse does.
    pub async fn generate_localpart(&self) -> Result<String> {
        let mut n = self.store.count_users().await? + 1;
        loop {
            let candidate = n.to_string();
            if !self.store.user_exists(&self.user_id(&candidate)).await? {
                return Ok(candidate);
            }
            n += 1;
        }
    }

    /// Creates an account. `M_USER_IN_USE` when taken.
    pub async fn register(&self, reg: &Registration<'_>) -> Result<String> {
        self.validate_localpart(reg.localpart)?;
        let user_id = self.user_id(reg.localpart);
        let hash = match reg.password {
            Some(p) => Some(passwords::hash_async(p.to_owned()).await),
            None => None,
        };
        let new = NewUser {
            user_id: &user_id,
            password_hash: hash.as_deref(),
            is_admin: reg.is_admin,
            is_guest: reg.is_guest,
            displayname: reg.displayname.or(Some(reg.localpart)),
            appservice_id: None,
        };
        match self.store.create_user(&new).await {
            Ok(()) => {
                tracing::info!(
                    user_id,
                    admin = reg.is_admin,
                    guest = reg.is_guest,
                    "registered account"
                );
                Ok(user_id)
            }
            Err(StoreError::Conflict) => {
                Err(Error::new(ErrorKind::UserInUse, "User ID already taken."))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Issues a device and tokens for an existing account.
    pub async fn create_session(
        &self,
        user_id: &str,
        opts: &SessionOptions<'_>,
    ) -> Result<LoginResult> {
        let device_id = opts
            .device_id
            .map(str::to_owned)
            .unwrap_or_else(secrets::new_device_id);
        let access_token = secrets::new_access_token();
        let refresh_token = opts.refresh_token.then(secrets::new_refresh_token);
        let lifetime = self.config.refreshable_access_token_lifetime.as_millis();
        let now = now_ms();
        let expires_ts = refresh_token.as_ref().map(|_| now + lifetime as i64);
        let access_hash = secrets::token_hash(&access_token);
        let refresh_hash = refresh_token.as_deref().map(secrets::token_hash);
        self.store
            .create_session(&NewSession {
                user_id,
                device_id: &device_id,
                device_display_name: opts.display_name,
                access_token_hash: &access_hash,
                expires_ts,
                refresh_token_hash: refresh_hash.as_deref(),
                ts: now,
                ip: opts.ip,
            })
            .await?;
        tracing::info!(user_id, device_id, "new session");
        Ok(LoginResult {
            user_id: user_id.to_owned(),
            device_id,
            access_token,
            expires_in_ms: refresh_token.as_ref().map(|_| lifetime),
            refresh_token,
        })
    }

    /// `m.login.password`: accepts a localpart or a full user id. Rate limited per address, per
    /// account and per failure; a wrong password is `M_FORBIDDEN`.
    pub async fn login_password(
        &self,
        user: &str,
        password: &str,
        opts: &SessionOptions<'_>,
    ) -> Result<LoginResult> {
        use super::ratelimit::Action;
        self.limits.check(Action::LoginAddress, opts.ip)?;
        let user_id = self.qualify_user_id(user);
        self.limits.check(Action::LoginAccount, &user_id)?;
        self.limits.would_limit(Action::LoginFailure, &user_id)?;
        let row = self.store.user(&user_id).await?;
        let Some(row) = row else {
            self.limits.check(Action::LoginFailure, &user_id).ok();
            return Err(Error::forbidden("Invalid username or password"));
        };
        if row.deactivated {
            return Err(Error::new(
                ErrorKind::UserDeactivated,
                "This account has been deactivated",
            ));
        }
        let ok = match row.password_hash {
            Some(h) => passwords::verify_async(password.to_owned(), h).await,
            None => false,
        };
        if !ok {
            self.limits.check(Action::LoginFailure, &user_id).ok();
            tracing::info!(user_id, "failed login: wrong password");
            return Err(Error::forbidden("Invalid username or password"));
        }
        self.create_session(&user_id, opts).await
    }

    /// `@user:server` from a localpart or a full id (lower-cased, as Synapse does on login).
    pub fn qualify_user_id(&self, user: &str) -> String {
        if user.starts_with('@') {
            user.to_owned()
        } else {
            self.user_id(&user.to_lowercase())
        }
    }

    /// Checks the password of `user_id` (for user-interactive auth).
    pub async fn check_password(&self, user_id: &str, password: &str) -> Result<bool> {
        let Some(row) = self.store.user(user_id).await? else {
            return Ok(false);
        };
        match row.password_hash {
            Some(h) if !row.deactivated => {
                Ok(passwords::verify_async(password.to_owned(), h).await)
            }
            _ => Ok(false),
        }
    }

    /// Resolves an access token. Unknown: `M_UNKNOWN_TOKEN`; expired: the same with `soft_logout`.
    pub async fn authenticate(&self, token: &str) -> Result<Requester> {
        if let Some(reg) = self.appservices.by_as_token(token) {
            return Ok(Requester {
                user_id: reg.sender(&self.config.server_name),
                device_id: String::new(),
                appservice: Some(reg.id),
            });
        }
        let row = self.store.access_token(&secrets::token_hash(token)).await?;
        let Some(row) = row else {
            return Err(Error::unknown_token(false, "Unknown access token"));
        };
        if row.expires_ts.is_some_and(|t| t <= now_ms()) {
            return Err(Error::unknown_token(true, "Access token has expired"));
        }
        Ok(Requester {
            user_id: row.user_id,
            device_id: row.device_id,
            appservice: None,
        })
    }

    /// Swaps a refresh token for a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<LoginResult> {
        let access_token = secrets::new_access_token();
        let new_refresh = secrets::new_refresh_token();
        let lifetime = self.config.refreshable_access_token_lifetime.as_millis();
        let rotated = self
            .store
            .rotate_refresh_token(
                &secrets::token_hash(refresh_token),
                &secrets::token_hash(&access_token),
                now_ms() + lifetime as i64,
                &secrets::token_hash(&new_refresh),
            )
            .await?;
        let Some((user_id, device_id)) = rotated else {
            return Err(Error::unknown_token(false, "Unknown refresh token"));
        };
        Ok(LoginResult {
            user_id,
            device_id,
            access_token,
            refresh_token: Some(new_refresh),
            expires_in_ms: Some(lifetime),
        })
    }

    /// Changes a password; with `logout_devices`, every other device is logged out.
    pub async fn change_password(
        &self,
        who: &Requester,
        new_password: &str,
        logout_devices: bool,
    ) -> Result<()> {
        let hash = passwords::hash_async(new_password.to_owned()).await;
        self.store.set_password_hash(&who.user_id, &hash).await?;
        if logout_devices {
            self.store
                .delete_all_devices(&who.user_id, Some(&who.device_id))
                .await?;
            self.device_list_changed(&who.user_id).await?;
        }
        tracing::info!(user_id = who.user_id, logout_devices, "password changed");
        Ok(())
    }
}
