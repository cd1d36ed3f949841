//! Token buckets for the `rc_*` settings, keyed by IP address or user.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    config::{Config, RateLimit},
    error::{Error, Result},
};

/// Which `rc_*` setting applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Message,
    Registration,
    LoginAddress,
    LoginAccount,
    LoginFailure,
}

/// Every bucket, bounded: idle buckets are swept when the table grows.
pub struct Limiters {
    settings: HashMap<Action, RateLimit>,
    buckets: Mutex<HashMap<(Action, String), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

const SWEEP_ABOVE: usize = 100_000;

impl Limiters {
    pub fn new(config: &Config) -> Self {
        let settings = HashMap::from([
            (Action::Message, config.rc_message),
            (Action::Registration, config.rc_registration),
            (Action::LoginAddress, config.rc_login.address),
            (Action::LoginAccount, config.rc_login.account),
            (Action::LoginFailure, config.rc_login.failed_attempts),
        ]);
        Self {
            settings,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or answers `M_LIMIT_EXCEEDED` with how long to wait.
    pub fn check(&self, action: Action, key: &str) -> Result<()> {
        match self.try_take(action, key, true) {
            None => Ok(()),
            Some(wait) => Err(Error::limit_exceeded(wait)),
        }
    }

    /// Whether `key` would be limited now, without taking a token.
    pub fn would_limit(&self, action: Action, key: &str) -> Result<()> {
        match self.try_take(action, key, false) {
            None => Ok(()),
            Some(wait) => Err(Error::limit_exceeded(wait)),
        }
    }

    fn try_take(&self, action: Action, key: &str, take: bool) -> Option<Duration> {
        let limit = self.settings[&action];
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock poisoned");
        if buckets.len() > SWEEP_ABOVE {
            buckets.retain(|(a, _), b| {
                let l = self.settings[a];
                b.tokens + now.duration_since(b.updated).as_secs_f64() * l.per_second
                    < l.burst_count
            });
        }
        let bucket = buckets.entry((action, key.to_owned())).or_insert(Bucket {
            tokens: limit.burst_count,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * limit.per_second;
        bucket.tokens = (bucket.tokens + refill).min(limit.burst_count);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            return None;
        }
        let missing = 1.0 - bucket.tokens;
        let secs = if limit.per_second > 0.0 {
            missing / limit.per_second
        } else {
            3600.0
        };
        Some(Duration::from_secs_f64(secs.min(86_400.0)))
    }
}

impl crate::service::Services {
    /// `rc_message`: one token per event a client sends (`send`, `state`, `redact`), per user, as
    /// Synapse counts. An appservice registered with `rate_limited: false` is exempt, and so is
    /// every user it masquerades as with its `as_token`.
    pub fn check_message_rate(&self, who: &crate::service::accounts::Requester) -> Result<()> {
        if let Some(as_id) = &who.appservice
            && self.appservices.get(as_id).is_some_and(|r| !r.rate_limited)
        {
            return Ok(());
        }
        self.limits
            .check(Action::Message, &who.user_id)
            .inspect_err(|_| tracing::info!(user_id = who.user_id, "rc_message limit hit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_passes_then_the_next_is_limited_with_a_wait() {
        let config = Config {
            rc_registration: RateLimit {
                per_second: 0.5,
                burst_count: 2.0,
            },
            ..Config::default()
        };
        let l = Limiters::new(&config);
        assert!(l.check(Action::Registration, "1.2.3.4").is_ok());
        assert!(l.check(Action::Registration, "1.2.3.4").is_ok());
        let err = l.check(Action::Registration, "1.2.3.4").unwrap_err();
        assert_eq!(err.status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert!(
            l.check(Action::Registration, "5.6.7.8").is_ok(),
            "other keys have their own bucket"
        );
    }
}
