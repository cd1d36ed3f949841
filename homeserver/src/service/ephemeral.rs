//! Typing notifications (memory only) and receipts (persisted on the shared stream).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    error::{Error, Result},
    service::Services,
    store::{ReceiptRow, now_ms},
};

/// Who is typing where, until when.
#[derive(Default)]
pub struct Typing {
    rooms: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl Typing {
    /// Users typing in a room now.
    pub fn typing_in(&self, room_id: &str) -> Vec<String> {
        let now = Instant::now();
        let rooms = self.rooms.lock().expect("typing lock poisoned");
        let mut users: Vec<String> = rooms
            .get(room_id)
            .map(|m| {
                m.iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(u, _)| u.clone())
                    .collect()
            })
            .unwrap_or_default();
        users.sort();
        users
    }

    /// Whether anyone's typing expired (so syncs should hear the room went quiet).
    fn set(&self, room_id: &str, user_id: &str, until: Option<Instant>) {
        let mut rooms = self.rooms.lock().expect("typing lock poisoned");
        let room = rooms.entry(room_id.to_owned()).or_default();
        let now = Instant::now();
        room.retain(|_, t| *t > now);
        match until {
            Some(t) => {
                room.insert(user_id.to_owned(), t);
            }
            None => {
                room.remove(user_id);
            }
        }
    }
}

/// Longest typing timeout we honour.
const MAX_TYPING: Duration = Duration::from_secs(120);

impl Services {
    /// Starts or stops `user_id` typing in a room they are joined to.
    pub async fn set_typing(
        &self,
        room_id: &str,
        user_id: &str,
        typing: bool,
        timeout: Option<Duration>,
    ) -> Result<()> {
        let room = self
            .rooms
            .get(&self.store, room_id)
            .await?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        if room.lock().await.membership(user_id).as_deref() != Some("join") {
            return Err(Error::forbidden("You are not in this room"));
        }
        let until = typing
            .then(|| Instant::now() + timeout.unwrap_or(Duration::from_secs(30)).min(MAX_TYPING));
        self.typing.set(room_id, user_id, until);
        self.appservices.typing_changed(room_id);
        let serial = self.stream.bump_ephemeral();
        self.activity.typing_changed(room_id, serial);
        if let Some(until) = until {
            // Wake syncs again when this typing notice lapses.
            let services = self.clone();
            let room_id = room_id.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep_until(until.into()).await;
                services.appservices.typing_changed(&room_id);
                let serial = services.stream.bump_ephemeral();
                services.activity.typing_changed(&room_id, serial);
            });
        }
        Ok(())
    }

    /// Records a receipt (`m.read`, `m.read.private`, or `m.fully_read` via read markers).
    pub async fn set_receipt(
        &self,
        room_id: &str,
        user_id: &str,
        receipt_type: &str,
        event_id: &str,
        thread_id: Option<&str>,
    ) -> Result<()> {
        let event = self
            .store
            .event(event_id)
            .await?
            .filter(|e| e.room_id == room_id);
        if event.is_none() {
            return Err(Error::not_found("Event not found"));
        }
        let room = self
            .rooms
            .get(&self.store, room_id)
            .await?
            .ok_or_else(|| Error::forbidden("You are not in this room"))?;
        if room.lock().await.membership(user_id).as_deref() != Some("join") {
            return Err(Error::forbidden("You are not in this room"));
        }
        let reservation = self.stream.reserve();
        self.store
            .set_receipt(&ReceiptRow {
                room_id: room_id.to_owned(),
                receipt_type: receipt_type.to_owned(),
                user_id: user_id.to_owned(),
                thread_id: thread_id.unwrap_or("").to_owned(),
                event_id: event_id.to_owned(),
                ts: now_ms(),
                stream_ordering: reservation.position,
            })
            .await?;
        self.activity.receipt_changed(room_id, reservation.position);
        self.unread.forget(room_id, user_id);
        Ok(())
    }
}
