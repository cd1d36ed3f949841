//! What each device's `/sync` last read about its own keys and to-device messages, so a woken
//! sync does not read them again while nothing changed: the one-time key counts and unused
//! fallback key types (dropped by every upload or claim of the device's keys), and the position
//! up to which the device is known to have no pending to-device message.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

/// Devices remembered at once; past it the memory starts over (which only costs a query).
const CAPACITY: usize = 100_000;

/// A device's one-time key counts per algorithm and the algorithms of its unused fallback keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub one_time: BTreeMap<String, i64>,
    pub unused_fallback: Vec<String>,
}

type DeviceKey = (String, String);

#[derive(Default)]
struct Inner {
    /// Bumped by every change of any device's keys, so a read that raced with one is not kept.
    generation: u64,
    counts: HashMap<DeviceKey, Arc<KeyCounts>>,
    /// Device -> stream position at which it had no to-device message left.
    to_device_empty: HashMap<DeviceKey, i64>,
}

/// See the module docs.
#[derive(Default)]
pub struct DeviceCache(Mutex<Inner>);

fn key(user_id: &str, device_id: &str) -> DeviceKey {
    (user_id.to_owned(), device_id.to_owned())
}

impl DeviceCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("device cache lock poisoned")
    }

    /// The remembered counts, if any, and the generation to hand back to
    /// [`DeviceCache::set_counts`] after reading them.
    pub fn counts(&self, user_id: &str, device_id: &str) -> (Option<Arc<KeyCounts>>, u64) {
        let inner = self.lock();
        (
            inner.counts.get(&key(user_id, device_id)).cloned(),
            inner.generation,
        )
    }

    /// Remembers counts read since [`DeviceCache::counts`] returned `generation`, unless some
    /// device's keys changed meanwhile.
    pub fn set_counts(&self, user_id: &str, device_id: &str, counts: KeyCounts, generation: u64) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.counts.len() >= CAPACITY {
            inner.counts.clear();
        }
        inner
            .counts
            .insert(key(user_id, device_id), Arc::new(counts));
    }

    /// The device's keys changed (uploaded or claimed).
    pub fn forget_counts(&self, user_id: &str, device_id: &str) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.counts.remove(&key(user_id, device_id));
    }

    /// The position at which the device was last seen with no pending to-device message.
    pub fn to_device_empty_at(&self, user_id: &str, device_id: &str) -> Option<i64> {
        self.lock()
            .to_device_empty
            .get(&key(user_id, device_id))
            .copied()
    }

    /// The device had no pending to-device message up to `position`.
    pub fn set_to_device_empty(&self, user_id: &str, device_id: &str, position: i64) {
        let mut inner = self.lock();
        if inner.to_device_empty.len() >= CAPACITY {
            inner.to_device_empty.clear();
        }
        inner
            .to_device_empty
            .insert(key(user_id, device_id), position);
    }

    /// The device has messages pending (delivered, not yet acknowledged).
    pub fn forget_to_device(&self, user_id: &str, device_id: &str) {
        self.lock().to_device_empty.remove(&key(user_id, device_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_before_a_change_are_not_kept() {
        let cache = DeviceCache::default();
        let (none, generation) = cache.counts("@a:x", "D");
        assert!(none.is_none());
        cache.forget_counts("@a:x", "D");
        cache.set_counts("@a:x", "D", KeyCounts::default(), generation);
        assert!(
            cache.counts("@a:x", "D").0.is_none(),
            "a stale read was kept"
        );
        let (_, generation) = cache.counts("@a:x", "D");
        cache.set_counts("@a:x", "D", KeyCounts::default(), generation);
        assert!(cache.counts("@a:x", "D").0.is_some());
    }
}
