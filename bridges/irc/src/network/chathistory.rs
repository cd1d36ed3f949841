//! IRCv3 history: `CHATHISTORY` requests where the server offers `draft/chathistory`, and the
//! `chathistory` batches that answer them (or that InspIRCd's `chanhistory` pushes on join).
//!
//! After the relay bot joins a channel it asks for what came after the newest line the portal
//! has (`AFTER #chan msgid=...`, else `timestamp=...`), or for the `LATEST` lines of a new
//! portal; a full page asks for the next one. Pure, so it is tested with recorded server lines.

use std::collections::HashMap;

use appservice_sdk::store::MessageRecord;

use super::line::Line;
use super::relay::ChatLine;

/// Lines asked for per request when the server does not say (`ISUPPORT CHATHISTORY=<n>`).
pub(crate) const DEFAULT_LIMIT: usize = 100;

/// Where a history request starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// After the line with this `msgid`.
    MsgId(String),
    /// After this time, in ms since the epoch.
    Time(u64),
}

impl Anchor {
    fn selector(&self) -> String {
        match self {
            Self::MsgId(id) => format!("msgid={id}"),
            Self::Time(ms) => {
                let time = chrono::DateTime::from_timestamp_millis(i64::try_from(*ms).unwrap_or(0))
                    .unwrap_or_default();
                format!(
                    "timestamp={}",
                    time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                )
            }
        }
    }
}

/// The anchor of a portal's newest bridged messages (newest first, as the store lists them):
/// the newest line's `msgid` if it had one, else its time less a second (IRC and Matrix clocks
/// differ a little; what comes twice is skipped by its id). `None` for an empty portal.
pub(crate) fn anchor_of(newest_first: &[MessageRecord]) -> Option<Anchor> {
    let newest = newest_first.first()?;
    match newest.remote_id.strip_prefix("msgid:") {
        Some(msgid) => Some(Anchor::MsgId(msgid.to_owned())),
        None => Some(Anchor::Time(
            u64::try_from(newest.ts).unwrap_or(0).saturating_sub(1000),
        )),
    }
}

/// The request for a channel's history after `anchor`, or its latest lines.
pub(crate) fn request(channel: &str, anchor: Option<&Anchor>, limit: usize) -> String {
    match anchor {
        Some(anchor) => format!("CHATHISTORY AFTER {channel} {} {limit}", anchor.selector()),
        None => format!("CHATHISTORY LATEST {channel} * {limit}"),
    }
}

/// The most lines the server answers per request, from `RPL_ISUPPORT` (`CHATHISTORY=<n>`;
/// 0 means no limit of its own).
pub(crate) fn isupport_limit(line: &Line) -> Option<usize> {
    if line.command != "005" {
        return None;
    }
    line.params.iter().find_map(|token| {
        let value = token
            .strip_prefix("CHATHISTORY=")
            .or_else(|| token.strip_prefix("draft/CHATHISTORY="))?;
        match value.parse::<usize>().ok()? {
            0 => Some(DEFAULT_LIMIT),
            n => Some(n.min(DEFAULT_LIMIT)),
        }
    })
}

/// The next page after a batch of `lines`, if it was full (the server may have more).
pub(crate) fn next_page(channel: &str, lines: &[ChatLine], limit: usize) -> Option<String> {
    if lines.len() < limit {
        return None;
    }
    let last = lines.last()?;
    let anchor = match last.id.strip_prefix("msgid:") {
        Some(msgid) => Anchor::MsgId(msgid.to_owned()),
        None => Anchor::Time(last.ts?),
    };
    Some(request(channel, Some(&anchor), limit))
}

/// Open `chathistory` batches of one connection: reference -> (channel, lines so far).
#[derive(Debug, Default)]
pub(crate) struct Batches {
    open: HashMap<String, (String, Vec<ChatLine>)>,
}

/// A finished `chathistory` batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct History {
    pub(crate) channel: String,
    /// Oldest first, as the server sent them.
    pub(crate) lines: Vec<ChatLine>,
}

impl Batches {
    /// Reads a `BATCH` line; a `chathistory` batch that ends is returned.
    pub(crate) fn on_batch(&mut self, line: &Line) -> Option<History> {
        let reference = line.param(0);
        if let Some(id) = reference.strip_prefix('+') {
            let kind = line.param(1);
            if kind.eq_ignore_ascii_case("chathistory")
                || kind.eq_ignore_ascii_case("draft/chathistory")
            {
                self.open
                    .insert(id.to_owned(), (line.param(2).to_owned(), Vec::new()));
            }
            return None;
        }
        let id = reference.strip_prefix('-')?;
        let (channel, lines) = self.open.remove(id)?;
        Some(History { channel, lines })
    }

    /// Keeps a chat line that belongs to an open history batch; gives it back otherwise.
    pub(crate) fn add(&mut self, batch: Option<&str>, chat: ChatLine) -> Option<ChatLine> {
        match batch.and_then(|b| self.open.get_mut(b)) {
            Some((_, lines)) => {
                lines.push(chat);
                None
            }
            None => Some(chat),
        }
    }

    /// Forgets open batches (the connection was lost).
    pub(crate) fn clear(&mut self) {
        self.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::{owned_event_id, owned_user_id};

    fn record(remote_id: &str, ts: i64) -> MessageRecord {
        MessageRecord {
            portal_id: "testnet/#chan".to_owned(),
            remote_id: remote_id.to_owned(),
            event_id: owned_event_id!("$e:example.org"),
            sender: owned_user_id!("@irc_testnet_bob:example.org"),
            ts,
        }
    }

    /// Feeds recorded server lines; returns the finished batches and the lines outside them.
    fn replay(raw: &[&str]) -> (Vec<History>, Vec<ChatLine>) {
        let mut batches = Batches::default();
        let (mut done, mut live) = (Vec::new(), Vec::new());
        for raw in raw {
            let line = Line::parse(raw).unwrap();
            if line.command == "BATCH" {
                done.extend(batches.on_batch(&line));
            } else if let Some(chat) = ChatLine::from_line(&line) {
                live.extend(batches.add(line.batch(), chat));
            }
        }
        (done, live)
    }

    #[test]
    fn a_new_portal_asks_for_the_latest_lines() {
        assert_eq!(
            request("#chan", anchor_of(&[]).as_ref(), 100),
            "CHATHISTORY LATEST #chan * 100"
        );
    }

    #[test]
    fn a_known_portal_asks_after_its_newest_msgid_else_its_time() {
        let newest = [record("msgid:01JX", 1_767_225_601_500), record("h:1:ab", 5)];
        assert_eq!(
            request("#chan", anchor_of(&newest).as_ref(), 50),
            "CHATHISTORY AFTER #chan msgid=01JX 50"
        );
        // A line without msgid (or one from Matrix) gives its time, a second early.
        let newest = [record("mx:$abc", 1_767_225_601_500)];
        assert_eq!(
            request("#chan", anchor_of(&newest).as_ref(), 50),
            "CHATHISTORY AFTER #chan timestamp=2026-01-01T00:00:00.500Z 50"
        );
    }

    #[test]
    fn the_servers_limit_comes_from_isupport() {
        let line = Line::parse(
            ":irc.example 005 relaybot CHANTYPES=# CHATHISTORY=25 MSGREFTYPES=msgid,timestamp :are supported by this server",
        )
        .unwrap();
        assert_eq!(isupport_limit(&line), Some(25));
        let unlimited =
            Line::parse(":irc.example 005 relaybot CHATHISTORY=0 :are supported").unwrap();
        assert_eq!(isupport_limit(&unlimited), Some(DEFAULT_LIMIT));
        let other = Line::parse(":irc.example 005 relaybot NICKLEN=30 :are supported").unwrap();
        assert_eq!(isupport_limit(&other), None);
    }

    /// An answer to `CHATHISTORY AFTER #chan msgid=... 3` in the shape Ergo sends (written after
    /// the IRCv3 spec's examples, not captured from a live server: Debian has no server with
    /// `draft/chathistory`), with a live line arriving in the middle of the batch.
    const ERGO_ANSWER: &[&str] = &[
        ":ergo.test BATCH +4c7b chathistory #chan",
        "@batch=4c7b;time=2026-11-22T06:00:01.123Z;msgid=m1;account=bob :bob!~u@host PRIVMSG #chan :one",
        "@batch=4c7b;time=2026-11-22T06:00:02.456Z;msgid=m2 :carol!~u@host PRIVMSG #chan :\u{1}ACTION two\u{1}",
        "@time=2026-11-22T06:05:00.000Z;msgid=live1 :dave!~u@host PRIVMSG #chan :live, not history",
        "@batch=4c7b;time=2026-11-22T06:00:03.789Z;msgid=m3 :bob!~u@host NOTICE #chan :three",
        ":ergo.test BATCH -4c7b",
    ];

    #[test]
    fn an_answer_is_collected_in_order_with_ids_and_times() {
        let (done, live) = replay(ERGO_ANSWER);
        assert_eq!(done.len(), 1);
        let history = &done[0];
        assert_eq!(history.channel, "#chan");
        let ids: Vec<&str> = history.lines.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids, ["msgid:m1", "msgid:m2", "msgid:m3"]);
        let texts: Vec<&str> = history.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two", "three"]);
        assert_eq!(history.lines[0].ts, Some(1_795_327_201_123));
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].id, "msgid:live1");
    }

    #[test]
    fn a_full_page_asks_for_the_next_and_a_short_one_does_not() {
        let (done, _) = replay(ERGO_ANSWER);
        let lines = &done[0].lines;
        assert_eq!(
            next_page("#chan", lines, 3).as_deref(),
            Some("CHATHISTORY AFTER #chan msgid=m3 3")
        );
        assert_eq!(next_page("#chan", lines, 4), None);
    }

    #[test]
    fn an_empty_answer_ends_with_nothing_to_bridge() {
        let (done, live) = replay(&[
            ":ergo.test BATCH +e chathistory #chan",
            ":ergo.test BATCH -e",
        ]);
        assert_eq!(
            done,
            [History {
                channel: "#chan".to_owned(),
                lines: Vec::new()
            }]
        );
        assert!(live.is_empty());
        assert_eq!(next_page("#chan", &done[0].lines, 1), None);
    }

    #[test]
    fn other_batches_and_unknown_ends_are_ignored() {
        let (done, live) = replay(&[
            ":s BATCH +n netjoin irc.a irc.b",
            "@batch=n :bob!~u@host PRIVMSG #chan :not history",
            ":s BATCH -n",
            ":s BATCH -never-opened",
        ]);
        assert!(done.is_empty());
        assert_eq!(live.len(), 1);
    }
}
