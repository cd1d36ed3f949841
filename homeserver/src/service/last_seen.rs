//! When and from where each device was last seen (`GET /devices`), written at most once per
//! interval per device, off the request's path.

use std::{collections::HashMap, sync::Mutex};

use crate::{service::Services, store::now_ms};

/// A device's last-seen time is written at most this often.
const INTERVAL_MS: i64 = 5 * 60 * 1000;
/// Devices remembered at once; past it the memory starts over (costing one write each).
const CAPACITY: usize = 100_000;

/// When each device's last-seen time was last written.
#[derive(Default)]
pub struct LastSeen(Mutex<HashMap<(String, String), i64>>);

impl LastSeen {
    /// Whether a write is due now; if so, counts it as done.
    fn due(&self, user_id: &str, device_id: &str, now: i64) -> bool {
        let mut seen = self.0.lock().expect("last seen lock poisoned");
        let key = (user_id.to_owned(), device_id.to_owned());
        if seen.get(&key).is_some_and(|t| now - t < INTERVAL_MS) {
            return false;
        }
        if seen.len() >= CAPACITY {
            seen.clear();
        }
        seen.insert(key, now);
        true
    }
}

impl Services {
    /// Notes that a device made a request from `ip`.
    pub fn device_seen(&self, user_id: &str, device_id: &str, ip: &str) {
        let now = now_ms();
        if device_id.is_empty() || !self.last_seen.due(user_id, device_id, now) {
            return;
        }
        let (store, user, device, ip) = (
            self.store.clone(),
            user_id.to_owned(),
            device_id.to_owned(),
            ip.to_owned(),
        );
        tokio::spawn(async move {
            if let Err(e) = store.set_device_seen(&user, &device, now, &ip).await {
                tracing::warn!(user_id = user, device_id = device, error = %e, "could not record when a device was last seen");
            }
        });
    }
}
