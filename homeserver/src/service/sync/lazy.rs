//! Lazy-loaded members: which membership events each device was already sent, per room, so a
//! `/sync` with `lazy_load_members` sends a speaker's member event once rather than with every
//! message (unless the filter asks for `include_redundant_members`). In memory: after a restart
//! (or when the bound is reached) members are sent once more, which clients accept.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use crate::store::EventRow;

/// Devices tracked at once; past it the memory starts over.
const DEVICES: usize = 20_000;

/// Per device, per room: member user id -> the member event id the device has.
type Sent = HashMap<String, HashMap<String, String>>;

#[derive(Default)]
pub struct LazyMembers {
    devices: Mutex<HashMap<(String, String), Sent>>,
}

impl LazyMembers {
    /// Forgets what a device has (an initial or `full_state` sync starts it over).
    pub fn reset(&self, user_id: &str, device_id: &str) {
        self.devices
            .lock()
            .expect("lazy members lock poisoned")
            .remove(&(user_id.to_owned(), device_id.to_owned()));
    }

    /// Members of `wanted` whose current member event (per `current`) the device lacks.
    pub fn missing<'a>(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        wanted: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> HashSet<&'a str> {
        let devices = self.devices.lock().expect("lazy members lock poisoned");
        let room = devices
            .get(&(user_id.to_owned(), device_id.to_owned()))
            .and_then(|d| d.get(room_id));
        wanted
            .into_iter()
            .filter(|(member, event_id)| {
                room.and_then(|r| r.get(*member))
                    .is_none_or(|sent| sent != event_id)
            })
            .map(|(member, _)| member)
            .collect()
    }

    /// Records member events the device now has (sent as state or in a timeline).
    pub fn record<'a>(
        &self,
        user_id: &str,
        device_id: &str,
        room_id: &str,
        events: impl IntoIterator<Item = &'a EventRow>,
    ) {
        let mut devices = self.devices.lock().expect("lazy members lock poisoned");
        let key = (user_id.to_owned(), device_id.to_owned());
        if !devices.contains_key(&key) && devices.len() >= DEVICES {
            devices.clear();
        }
        let room = devices
            .entry(key)
            .or_default()
            .entry(room_id.to_owned())
            .or_default();
        for e in events {
            if e.event_type == "m.room.member"
                && let Some(member) = &e.state_key
            {
                room.insert(member.clone(), e.event_id.clone());
            }
        }
    }
}
