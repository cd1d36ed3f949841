//! One-time codes that link a Telegram chat to Matrix: a chat admin sends `/bridge` in Telegram, the bot answers
//! with a code, a Matrix user with `user` permission redeems it. Codes live in memory only (a restart voids
//! them) and expire.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng;

/// Unambiguous characters only (no 0/O, 1/I/L).
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;
/// At most this many codes wait at once; the oldest goes first.
const MAX_PENDING: usize = 1000;

/// The chat a code links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLink {
    pub chat_id: i64,
    pub title: String,
    pub private: bool,
}

#[derive(Debug)]
pub struct LinkCodes {
    ttl: Duration,
    pending: HashMap<String, (PendingLink, Instant)>,
}

impl LinkCodes {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            pending: HashMap::new(),
        }
    }

    /// A fresh code for `link`; an earlier code for the same chat is replaced.
    pub fn issue(&mut self, link: PendingLink, now: Instant) -> String {
        self.expire(now);
        self.pending.retain(|_, (l, _)| l.chat_id != link.chat_id);
        if self.pending.len() >= MAX_PENDING
            && let Some(oldest) = self
                .pending
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(c, _)| c.clone())
        {
            self.pending.remove(&oldest);
        }
        let mut rng = rand::rng();
        let code: String = (0..CODE_LEN)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect();
        self.pending.insert(code.clone(), (link, now));
        code
    }

    /// Takes the link of a code (any case, spaces ignored) if it is known and not expired.
    pub fn redeem(&mut self, code: &str, now: Instant) -> Option<PendingLink> {
        self.expire(now);
        let code: String = code
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_uppercase();
        self.pending.remove(&code).map(|(link, _)| link)
    }

    fn expire(&mut self, now: Instant) {
        let ttl = self.ttl;
        self.pending
            .retain(|_, (_, at)| now.duration_since(*at) < ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(chat_id: i64) -> PendingLink {
        PendingLink {
            chat_id,
            title: "G".to_owned(),
            private: false,
        }
    }

    #[test]
    fn a_code_is_redeemed_once_in_any_case() {
        let now = Instant::now();
        let mut codes = LinkCodes::new(Duration::from_secs(600));
        let code = codes.issue(link(-1), now);
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| ALPHABET.contains(&b)));
        assert_eq!(
            codes.redeem(&format!(" {} ", code.to_lowercase()), now),
            Some(link(-1))
        );
        assert_eq!(codes.redeem(&code, now), None);
    }

    #[test]
    fn codes_expire_and_a_new_code_replaces_the_old_one() {
        let now = Instant::now();
        let mut codes = LinkCodes::new(Duration::from_secs(60));
        let first = codes.issue(link(-1), now);
        let second = codes.issue(link(-1), now);
        assert_eq!(codes.redeem(&first, now), None);
        let third = codes.issue(link(-2), now);
        assert_eq!(codes.redeem(&third, now + Duration::from_secs(61)), None);
        assert_eq!(
            codes.redeem(&second, now),
            None,
            "expired with the cleanup above"
        );
    }

    #[test]
    fn pending_codes_are_bounded() {
        let now = Instant::now();
        let mut codes = LinkCodes::new(Duration::from_secs(60));
        let first = codes.issue(link(0), now);
        for chat in 1..=MAX_PENDING as i64 {
            codes.issue(link(chat), now + Duration::from_millis(1));
        }
        assert_eq!(codes.pending.len(), MAX_PENDING);
        assert_eq!(codes.redeem(&first, now), None, "the oldest code made room");
    }
}
