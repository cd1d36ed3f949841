//! The one stream position shared by every persisted stream (events, account data, receipts,
//! presence), and the notifier that wakes long-polling `/sync` requests.
//!
//! Positions are handed out in order but may commit out of order (rooms persist in parallel);
//! readers only ever see up to [`Stream::safe`], the highest position below which everything has
//! committed, so a client never skips an event that committed late.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;

/// What woke a waiter: the safe stream position and the ephemeral (typing) serial.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Positions {
    pub stream: i64,
    pub ephemeral: i64,
}

pub struct Stream {
    inner: Mutex<Inner>,
    tx: watch::Sender<Positions>,
}

struct Inner {
    next: i64,
    in_flight: BTreeSet<i64>,
    ephemeral: i64,
}

/// A reserved position; completes (successfully or not) when dropped.
pub struct Reservation {
    stream: Arc<Stream>,
    pub position: i64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.stream.complete(self.position);
    }
}

impl Stream {
    /// Starts after `max_persisted`, the highest position already in the database.
    pub fn new(max_persisted: i64) -> Arc<Self> {
        let (tx, _) = watch::channel(Positions {
            stream: max_persisted,
            ephemeral: 0,
        });
        Arc::new(Self {
            inner: Mutex::new(Inner {
                next: max_persisted + 1,
                in_flight: BTreeSet::new(),
                ephemeral: 0,
            }),
            tx,
        })
    }

    /// Reserves the next position. Persist under it, then drop the reservation.
    pub fn reserve(self: &Arc<Self>) -> Reservation {
        let mut inner = self.inner.lock().expect("stream lock poisoned");
        let position = inner.next;
        inner.next += 1;
        inner.in_flight.insert(position);
        Reservation {
            stream: self.clone(),
            position,
        }
    }

    fn complete(&self, position: i64) {
        let mut inner = self.inner.lock().expect("stream lock poisoned");
        inner.in_flight.remove(&position);
        let safe = Self::safe_of(&inner);
        let ephemeral = inner.ephemeral;
        drop(inner);
        self.tx.send_if_modified(|p| {
            let new = Positions {
                stream: safe,
                ephemeral,
            };
            let changed = *p != new;
            *p = new;
            changed
        });
    }

    fn safe_of(inner: &Inner) -> i64 {
        inner
            .in_flight
            .first()
            .map(|p| p - 1)
            .unwrap_or(inner.next - 1)
    }

    /// Everything at or below this position has committed.
    pub fn safe(&self) -> i64 {
        Self::safe_of(&self.inner.lock().expect("stream lock poisoned"))
    }

    /// Bumps the ephemeral serial (typing changed) and wakes waiters.
    pub fn bump_ephemeral(&self) -> i64 {
        let mut inner = self.inner.lock().expect("stream lock poisoned");
        inner.ephemeral += 1;
        let now = Positions {
            stream: Self::safe_of(&inner),
            ephemeral: inner.ephemeral,
        };
        drop(inner);
        self.tx.send_replace(now);
        now.ephemeral
    }

    pub fn positions(&self) -> Positions {
        *self.tx.borrow()
    }

    /// A receiver that sees every change of positions.
    pub fn subscribe(&self) -> watch::Receiver<Positions> {
        self.tx.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_waits_for_the_oldest_uncommitted_position() {
        let s = Stream::new(10);
        let a = s.reserve();
        let b = s.reserve();
        assert_eq!((a.position, b.position), (11, 12));
        assert_eq!(s.safe(), 10);
        drop(b);
        assert_eq!(s.safe(), 10, "11 has not committed yet");
        drop(a);
        assert_eq!(s.safe(), 12);
        assert_eq!(s.positions().stream, 12);
    }
}
