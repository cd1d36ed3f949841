//! The spec's legacy appservice routes: when an appservice answers a `/_matrix/app/v1/...`
//! request with anything but success, the same request is tried once on the older path
//! (`/transactions/{txnId}`, `/users/{userId}`, `/rooms/{alias}`,
//! `/_matrix/app/unstable/thirdparty/...`). An appservice that only knows the older paths gets
//! them first for a while, and the current ones are tried again after that, as the spec asks.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use super::Registration;

/// How long an appservice that answered only on a legacy path is asked there first.
const PREFER_LEGACY_FOR: Duration = Duration::from_secs(600);

/// The legacy path of a current appservice API path, if it has one.
pub fn legacy_path(path: &str) -> Option<String> {
    if let Some(rest) = path.strip_prefix("/_matrix/app/v1/thirdparty/") {
        return Some(format!("/_matrix/app/unstable/thirdparty/{rest}"));
    }
    ["transactions/", "users/", "rooms/"].iter().find_map(|p| {
        path.strip_prefix("/_matrix/app/v1/")
            .and_then(|rest| rest.strip_prefix(p))
            .map(|rest| format!("/{p}{rest}"))
    })
}

/// Which appservices answered on legacy paths lately.
#[derive(Default)]
pub struct LegacyRoutes(Mutex<HashMap<String, Instant>>);

impl LegacyRoutes {
    fn prefers_legacy(&self, id: &str) -> bool {
        self.0
            .lock()
            .expect("legacy routes lock poisoned")
            .get(id)
            .is_some_and(|until| Instant::now() < *until)
    }

    fn note(&self, id: &str, legacy_worked: bool) {
        let mut m = self.0.lock().expect("legacy routes lock poisoned");
        if legacy_worked {
            m.insert(id.to_owned(), Instant::now() + PREFER_LEGACY_FOR);
        } else {
            m.remove(id);
        }
    }

    /// Sends the request `build` makes for a full URL to `path` on the appservice, falling back
    /// to the legacy path on an unsuccessful answer. Connection failures are not retried here.
    /// When both paths fail, the answer on the current path is returned.
    pub async fn send(
        &self,
        reg: &Registration,
        base: &str,
        path: &str,
        build: impl Fn(String) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let base = base.trim_end_matches('/');
        let Some(legacy) = legacy_path(path) else {
            return build(format!("{base}{path}")).send().await;
        };
        let legacy_first = self.prefers_legacy(&reg.id);
        let (first, second) = if legacy_first {
            (legacy.as_str(), path)
        } else {
            (path, legacy.as_str())
        };
        let answer = build(format!("{base}{first}")).send().await?;
        if answer.status().is_success() {
            return Ok(answer);
        }
        let Ok(retry) = build(format!("{base}{second}")).send().await else {
            return Ok(answer);
        };
        if retry.status().is_success() {
            self.note(&reg.id, !legacy_first);
            if !legacy_first {
                tracing::info!(
                    appservice = reg.id,
                    path = second,
                    "appservice answered on a legacy path"
                );
            }
            return Ok(retry);
        }
        Ok(if legacy_first { retry } else { answer })
    }
}

#[cfg(test)]
mod tests {
    use super::legacy_path;

    #[test]
    fn maps_the_spec_table() {
        assert_eq!(
            legacy_path("/_matrix/app/v1/transactions/12").as_deref(),
            Some("/transactions/12")
        );
        assert_eq!(
            legacy_path("/_matrix/app/v1/users/%40a%3Ab").as_deref(),
            Some("/users/%40a%3Ab")
        );
        assert_eq!(
            legacy_path("/_matrix/app/v1/rooms/%23a%3Ab").as_deref(),
            Some("/rooms/%23a%3Ab")
        );
        assert_eq!(
            legacy_path("/_matrix/app/v1/thirdparty/protocol/irc").as_deref(),
            Some("/_matrix/app/unstable/thirdparty/protocol/irc")
        );
        assert_eq!(legacy_path("/_matrix/app/v1/ping"), None);
    }
}
