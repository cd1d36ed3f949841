//! `rc_*` keys: token-bucket limits.

use serde::{Deserialize, Serialize};

/// `per_second` tokens refill, up to `burst_count`.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst_count: f64,
}

impl RateLimit {
    pub(super) fn validate(&self) -> Result<(), &'static str> {
        if !(self.per_second >= 0.0 && self.burst_count >= 1.0) {
            return Err("expected `per_second` >= 0 and `burst_count` >= 1");
        }
        Ok(())
    }
}

/// `rc_login`: Synapse's sub-keys, or a flat `per_second`/`burst_count` applied to all three.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RcLogin {
    pub address: RateLimit,
    pub account: RateLimit,
    pub failed_attempts: RateLimit,
}

impl Default for RcLogin {
    fn default() -> Self {
        let l = RateLimit {
            per_second: 0.17,
            burst_count: 3.0,
        };
        Self {
            address: l,
            account: l,
            failed_attempts: l,
        }
    }
}

impl RcLogin {
    pub(super) fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        self.address.validate().map_err(|e| ("address", e))?;
        self.account.validate().map_err(|e| ("account", e))?;
        self.failed_attempts
            .validate()
            .map_err(|e| ("failed_attempts", e))
    }
}

impl<'de> Deserialize<'de> for RcLogin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Nested {
            address: Option<RateLimit>,
            account: Option<RateLimit>,
            failed_attempts: Option<RateLimit>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Shape {
            Flat(RateLimit),
            Nested(Nested),
        }
        let default = RcLogin::default();
        Ok(match Shape::deserialize(d)? {
            Shape::Flat(l) => RcLogin {
                address: l,
                account: l,
                failed_attempts: l,
            },
            Shape::Nested(n) => RcLogin {
                address: n.address.unwrap_or(default.address),
                account: n.account.unwrap_or(default.account),
                failed_attempts: n.failed_attempts.unwrap_or(default.failed_attempts),
            },
        })
    }
}
