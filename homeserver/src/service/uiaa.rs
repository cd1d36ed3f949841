//! User-interactive authentication sessions (in memory, expiring).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use super::secrets::random_string;
use crate::error::Error;

const SESSION_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Open sessions: id -> (what they were opened for, when).
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<String, (String, Instant)>>,
}

impl Sessions {
    /// Returns the 401 body as an error, keeping `session` when it is open for `purpose`, else
    /// opening a new one.
    pub fn challenge(
        &self,
        session: Option<&str>,
        purpose: &str,
        stages: &[&str],
        error: Option<(&str, &str)>,
    ) -> Error {
        let mut open = self.open.lock().expect("uiaa lock poisoned");
        open.retain(|_, (_, t)| t.elapsed() < SESSION_LIFETIME);
        let session = match session {
            Some(id) if open.get(id).is_some_and(|(p, _)| p == purpose) => id.to_owned(),
            _ => {
                let id = random_string(24);
                open.insert(id.clone(), (purpose.to_owned(), Instant::now()));
                id
            }
        };
        drop(open);
        let mut body = json!({
            "session": session,
            "flows": [{ "stages": stages }],
            "params": {},
            "completed": [],
        });
        if let Some((errcode, message)) = error {
            body["errcode"] = Value::from(errcode);
            body["error"] = Value::from(message);
        }
        Error::Uiaa(body)
    }

    /// Whether `session` is open for `purpose`; an unknown or foreign session is refused.
    pub fn is_open(&self, session: Option<&str>, purpose: &str) -> bool {
        let Some(session) = session else { return true };
        let open = self.open.lock().expect("uiaa lock poisoned");
        open.get(session)
            .is_some_and(|(p, t)| p == purpose && t.elapsed() < SESSION_LIFETIME)
    }

    /// Ends a completed session.
    pub fn finish(&self, session: Option<&str>) {
        if let Some(session) = session {
            self.open
                .lock()
                .expect("uiaa lock poisoned")
                .remove(session);
        }
    }
}
