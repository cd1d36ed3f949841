//! The events sent under each transaction id since this process started, so that a repeated
//! send (a client retrying after a lost answer) is answered from memory without reaching the
//! database writer, where the unique index would refuse it and the room's events queued behind
//! it would have to be built again. The index stays the guard for repeats of sends made before a
//! restart, or that raced past this map.

use std::{collections::HashMap, sync::Mutex};

use super::build::Sent;

/// Transactions remembered at once; past it the memory starts over (repeats of older ones then
/// reach the database's unique index).
const CAPACITY: usize = 10_000;

/// `(user, device, txn id)` of written events, and what they were answered with.
#[derive(Default)]
pub struct SentTxns(Mutex<HashMap<(String, String, String), Sent>>);

/// A transaction's key: `(user, device, txn id)`.
pub type TxnKey<'a> = (&'a str, &'a str, &'a str);

fn owned((user, device, txn): TxnKey<'_>) -> (String, String, String) {
    (user.to_owned(), device.to_owned(), txn.to_owned())
}

impl SentTxns {
    /// The event already sent under this transaction, if this process knows of one.
    pub fn get(&self, key: TxnKey<'_>) -> Option<Sent> {
        self.0
            .lock()
            .expect("txn lock poisoned")
            .get(&owned(key))
            .cloned()
    }

    /// Remembers the event written under a transaction.
    pub fn insert(&self, key: TxnKey<'_>, sent: Sent) {
        let mut map = self.0.lock().expect("txn lock poisoned");
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(owned(key), sent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(id: &str, at: i64) -> Sent {
        Sent {
            event_id: id.try_into().unwrap(),
            stream_ordering: at,
        }
    }

    #[test]
    fn remembers_per_user_device_and_txn() {
        let txns = SentTxns::default();
        txns.insert(("@a:x", "D", "t1"), sent("$one", 1));
        assert_eq!(txns.get(("@a:x", "D", "t1")).unwrap().stream_ordering, 1);
        assert!(txns.get(("@a:x", "E", "t1")).is_none(), "another device");
        assert!(txns.get(("@b:x", "D", "t1")).is_none(), "another user");
        assert!(txns.get(("@a:x", "D", "t2")).is_none(), "another txn");
    }

    #[test]
    fn starts_over_when_full() {
        let txns = SentTxns::default();
        for i in 0..CAPACITY {
            txns.insert(("@a:x", "D", &i.to_string()), sent("$e", i as i64));
        }
        txns.insert(("@a:x", "D", "last"), sent("$last", 0));
        assert!(txns.get(("@a:x", "D", "0")).is_none());
        assert!(txns.get(("@a:x", "D", "last")).is_some());
    }
}
