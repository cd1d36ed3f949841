//! User and room alias queries: `GET {url}/_matrix/app/v1/users/{userId}` and
//! `GET {url}/_matrix/app/v1/rooms/{roomAlias}`, asked before the homeserver answers that a user
//! or alias in an appservice's namespace does not exist, so the appservice can create it on demand.
//!
//! A miss (the appservice answered non-2xx, or could not be reached) is remembered for a short
//! while, so a client that keeps touching a user nobody provides does not make a request each time.
//! The cache only ever skips a query: whether the user exists is read from the database every time,
//! so a user registered since the miss is never hidden by it.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{error::Result, service::Services};

/// How long a user or alias query may wait for the appservice.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an appservice's "no such user" is believed.
const MISS_TTL: Duration = Duration::from_secs(30);
/// How long an unreachable appservice is left alone before it is asked again.
const FAILURE_TTL: Duration = Duration::from_secs(5);
/// Most misses remembered; past this the expired ones go, then the oldest.
const MAX_MISSES: usize = 10_000;

/// Recent misses of user queries, keyed by user id.
#[derive(Default)]
pub struct QueryMisses {
    until: Mutex<HashMap<String, Instant>>,
}

impl QueryMisses {
    fn is_fresh(&self, key: &str) -> bool {
        let mut map = self.until.lock().expect("query cache lock poisoned");
        match map.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                map.remove(key);
                false
            }
            None => false,
        }
    }

    fn remember(&self, key: &str, ttl: Duration) {
        let now = Instant::now();
        let mut map = self.until.lock().expect("query cache lock poisoned");
        if map.len() >= MAX_MISSES {
            map.retain(|_, until| *until > now);
            if map.len() >= MAX_MISSES
                && let Some(oldest) = map.iter().min_by_key(|(_, u)| **u).map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(key.to_owned(), now + ttl);
    }

    /// Forgets every miss (the registrations changed, so the answers may too).
    pub(crate) fn clear(&self) {
        self.until
            .lock()
            .expect("query cache lock poisoned")
            .clear();
    }
}

/// The outcome of one query.
enum Answer {
    Provided,
    NotProvided,
    Unreachable,
}

impl Services {
    /// `GET {url}{path}` with the appservice's `hs_token`.
    async fn query_appservice(&self, reg: &super::Registration, path: &str, what: &str) -> Answer {
        let Some(url) = &reg.url else {
            return Answer::NotProvided;
        };
        let result = self
            .appservice_http
            .get(format!("{}{path}", url.trim_end_matches('/')))
            .bearer_auth(&reg.hs_token)
            .timeout(QUERY_TIMEOUT)
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                tracing::info!(appservice = reg.id, what, "appservice provided it");
                Answer::Provided
            }
            Ok(r) => {
                tracing::debug!(appservice = reg.id, what, status = %r.status(), "query: not provided");
                Answer::NotProvided
            }
            Err(e) => {
                tracing::warn!(appservice = reg.id, what, error = %e, "query failed");
                Answer::Unreachable
            }
        }
    }

    /// An unknown alias in an appservice's namespace: `GET {url}/_matrix/app/v1/rooms/{alias}`
    /// lets it create the room on demand. `true` when an appservice answered 2xx (it says it made
    /// the alias); the caller looks the alias up again.
    pub async fn query_appservices_for_alias(&self, alias: &str) -> bool {
        for reg in self.appservices.all().iter() {
            if reg.url.is_none() || !reg.is_alias_ours(alias) {
                continue;
            }
            let encoded: String = url::form_urlencoded::byte_serialize(alias.as_bytes()).collect();
            let path = format!("/_matrix/app/v1/rooms/{encoded}");
            if let Answer::Provided = self.query_appservice(reg, &path, alias).await {
                return true;
            }
        }
        false
    }

    /// A local user in an appservice's namespace that does not exist yet: `GET
    /// {url}/_matrix/app/v1/users/{userId}` lets the appservice register it before it is touched
    /// (invited, looked up, invited at room creation). Errors only from the database; the
    /// appservice's answer is advisory, and the caller goes on to read the user as it is.
    pub async fn ensure_appservice_user(&self, user_id: &str) -> Result<()> {
        let server = &self.config.server_name;
        if !user_id.ends_with(&format!(":{server}")) || self.store.user_exists(user_id).await? {
            return Ok(());
        }
        let misses = &self.appservices.user_misses;
        if misses.is_fresh(user_id) {
            return Ok(());
        }
        let mut ttl = MISS_TTL;
        let mut asked = false;
        for reg in self.appservices.all().iter() {
            if reg.url.is_none() || !reg.namespaces.users.iter().any(|n| n.is_match(user_id)) {
                continue;
            }
            asked = true;
            let encoded: String =
                url::form_urlencoded::byte_serialize(user_id.as_bytes()).collect();
            let path = format!("/_matrix/app/v1/users/{encoded}");
            match self.query_appservice(reg, &path, user_id).await {
                Answer::Provided => return Ok(()),
                Answer::NotProvided => {}
                Answer::Unreachable => ttl = ttl.min(FAILURE_TTL),
            }
        }
        if asked {
            misses.remember(user_id, ttl);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_miss_is_remembered_until_it_expires_or_is_cleared() {
        let m = QueryMisses::default();
        assert!(!m.is_fresh("@a:hs"));
        m.remember("@a:hs", Duration::from_secs(60));
        assert!(m.is_fresh("@a:hs"));
        m.remember("@b:hs", Duration::ZERO);
        assert!(!m.is_fresh("@b:hs"), "expired");
        m.clear();
        assert!(!m.is_fresh("@a:hs"));
    }

    #[test]
    fn the_cache_stays_bounded() {
        let m = QueryMisses::default();
        for i in 0..MAX_MISSES + 50 {
            m.remember(&format!("@u{i}:hs"), Duration::from_secs(60));
        }
        assert!(m.until.lock().unwrap().len() <= MAX_MISSES);
        assert!(m.is_fresh(&format!("@u{}:hs", MAX_MISSES + 49)));
    }
}
