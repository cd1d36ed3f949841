//! What the relay bot hears: channel messages, history replays, joins, parts, quits, nick
//! changes, kicks, topics and modes become [`Job`]s queued per portal, in the order heard.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::chathistory;
use super::connection::{Connection, IrcHandler};
use super::jobs::Job;
use super::line::Line;
use super::redaction::{self, Redact};
use super::{Net, Shared};
use crate::convert::ids::{PortalId, is_channel};
use crate::convert::irc_to_matrix::{Kind, strip_action};
use crate::convert::nick::irc_lower;

/// One chat line from IRC, ready to bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChatLine {
    /// The remote id: the `msgid`, else derived from (time, nick, text).
    pub(crate) id: String,
    pub(crate) nick: String,
    pub(crate) kind: Kind,
    pub(crate) text: String,
    /// `server-time` in ms, if the server sent it.
    pub(crate) ts: Option<u64>,
}

impl ChatLine {
    /// Reads a PRIVMSG or NOTICE; `None` for CTCP other than ACTION.
    pub(crate) fn from_line(line: &Line) -> Option<Self> {
        let nick = line.nick.clone()?;
        let raw = line.param(1);
        let (text, kind) = if line.command == "NOTICE" {
            (raw, Kind::Notice)
        } else {
            let (text, action) = strip_action(raw)?;
            (text, if action { Kind::Action } else { Kind::Text })
        };
        let ts = line.time_ms();
        let id = match (line.msgid(), ts) {
            (Some(msgid), _) => format!("msgid:{msgid}"),
            // Without msgid, replays are told apart by (time to the second, nick, text).
            (None, Some(ts)) => format!(
                "h:{}:{}",
                ts / 1000,
                fnv(&format!("{}\0{raw}", irc_lower(&nick)))
            ),
            (None, None) => format!("n:{}:{}", now_ms(), fnv(raw)),
        };
        Some(Self {
            id,
            nick,
            kind,
            text: text.to_owned(),
            ts,
        })
    }
}

fn fnv(s: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Whether a QUIT reason is a netsplit's (`server.one server.two`).
pub(crate) fn is_netsplit(reason: &str) -> bool {
    let parts: Vec<&str> = reason.split(' ').collect();
    parts.len() == 2
        && parts
            .iter()
            .all(|p| p.contains('.') && !p.starts_with('.') && !p.ends_with('.') && p.len() > 2)
}

/// The relay bot's [`IrcHandler`].
pub(crate) struct RelayHandler {
    shared: Arc<Shared>,
    net: Arc<Net>,
}

impl RelayHandler {
    pub(crate) fn new(shared: Arc<Shared>, net: Arc<Net>) -> Self {
        Self { shared, net }
    }

    fn channel_job(&self, channel: &str, job: Job) {
        let portal = PortalId::channel(&self.net.name, channel);
        self.shared.workers.push(&self.shared, &portal, job);
    }

    fn on_chat(&self, conn: &Connection, line: &Line) {
        let target = line.param(0);
        let Some(nick) = line.nick.as_deref() else {
            return;
        };
        if !is_channel(target) {
            if !conn.is_me(nick) && line.command == "PRIVMSG" && !self.net.is_own_nick(nick) {
                conn.send_raw(&format!(
                    "NOTICE {nick} :I relay Matrix users to IRC; talk to them by their own nicks."
                ));
            }
            return;
        }
        if self.net.is_own_nick(nick) {
            return;
        }
        let Some(chat) = ChatLine::from_line(line) else {
            return;
        };
        let Some(chat) = self.net.state().batches.add(line.batch(), chat) else {
            return;
        };
        self.channel_job(target, Job::Message(chat));
    }

    fn on_batch(&self, conn: &Connection, line: &Line) {
        let (done, limit) = {
            let mut state = self.net.state();
            (state.batches.on_batch(line), state.history_limit)
        };
        let Some(history) = done else {
            return;
        };
        if conn.has_cap("draft/chathistory") {
            let limit = limit.unwrap_or(chathistory::DEFAULT_LIMIT);
            if let Some(next) = chathistory::next_page(&history.channel, &history.lines, limit) {
                conn.send_raw(&next);
            }
        }
        if !history.lines.is_empty() {
            self.channel_job(&history.channel, Job::History(history.lines));
        }
    }

    /// Asks the server for what the portal missed: after its newest bridged line, or the latest.
    fn request_history(&self, conn: &Connection, channel: &str) {
        let Ok(bridge) = self.shared.bridge() else {
            return;
        };
        let store = bridge.store().clone();
        let portal = PortalId::channel(&self.net.name, channel);
        let limit = self
            .net
            .state()
            .history_limit
            .unwrap_or(chathistory::DEFAULT_LIMIT);
        let (conn, channel) = (conn.clone(), channel.to_owned());
        tokio::spawn(async move {
            let newest = match store.latest_messages(&portal, 1).await {
                Ok(newest) => newest,
                Err(e) => {
                    tracing::warn!(%portal, error = %e, "no history request: the store failed");
                    return;
                }
            };
            let anchor = chathistory::anchor_of(&newest);
            conn.send_raw(&chathistory::request(&channel, anchor.as_ref(), limit));
        });
    }

    fn member(&self, channel: &str, nick: &str, present: bool) {
        let mut state = self.net.state();
        let members = state.members.entry(irc_lower(channel)).or_default();
        if present {
            members.insert(irc_lower(nick));
        } else {
            members.remove(&irc_lower(nick));
            // Channel modes do not outlive the membership.
            if let Some(modes) = state.prefix_modes.get_mut(&irc_lower(channel)) {
                modes.remove(&irc_lower(nick));
            }
        }
    }

    fn on_join(&self, conn: &Connection, line: &Line) {
        let (Some(nick), channel) = (line.nick.as_deref(), line.param(0)) else {
            return;
        };
        if conn.is_me(nick) {
            // Our own join: what follows (NAMES, a history replay) is this channel's.
            self.net
                .state()
                .members
                .insert(irc_lower(channel), Default::default());
            if conn.has_cap("draft/chathistory") && conn.has_cap("batch") {
                self.request_history(conn, channel);
            }
            return;
        }
        self.member(channel, nick, true);
        if self.net.is_own_nick(nick) {
            return;
        }
        let back_from_split = {
            let mut state = self.net.state();
            state.splits.remove(&irc_lower(nick)).is_some()
        };
        if !back_from_split {
            self.channel_job(
                channel,
                Job::Join {
                    nick: nick.to_owned(),
                },
            );
        }
    }

    fn on_part(&self, conn: &Connection, line: &Line) {
        let (Some(nick), channel) = (line.nick.as_deref(), line.param(0)) else {
            return;
        };
        self.member(channel, nick, false);
        if conn.is_me(nick) || self.net.is_own_nick(nick) {
            return;
        }
        let reason = line.params.get(1).cloned().filter(|r| !r.is_empty());
        self.channel_job(
            channel,
            Job::Leave {
                nick: nick.to_owned(),
                reason,
            },
        );
    }

    fn on_quit(&self, line: &Line) {
        let Some(nick) = line.nick.as_deref() else {
            return;
        };
        let lower = irc_lower(nick);
        let channels: Vec<String> = {
            let mut state = self.net.state();
            let channels = state
                .members
                .iter_mut()
                .filter_map(|(channel, members)| members.remove(&lower).then(|| channel.clone()))
                .collect();
            for modes in state.prefix_modes.values_mut() {
                modes.remove(&lower);
            }
            channels
        };
        if self.net.is_own_nick(nick) || channels.is_empty() {
            return;
        }
        let reason = line.param(0).to_owned();
        if is_netsplit(&reason) {
            self.defer_split_leave(nick, channels);
            return;
        }
        for channel in channels {
            self.channel_job(
                &channel,
                Job::Leave {
                    nick: nick.to_owned(),
                    reason: Some(reason.clone()),
                },
            );
        }
    }

    /// A netsplit takes many users at once; they leave Matrix rooms only if not back in time.
    fn defer_split_leave(&self, nick: &str, channels: Vec<String>) {
        let at = Instant::now();
        self.net
            .state()
            .splits
            .insert(irc_lower(nick), (at, channels));
        let grace = Duration::from_secs(self.net.config.netsplit_grace);
        let shared = self.shared.clone();
        let net = self.net.clone();
        let nick = nick.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let gone = {
                let mut state = net.state();
                match state.splits.get(&irc_lower(&nick)) {
                    Some((when, _)) if *when == at => state.splits.remove(&irc_lower(&nick)),
                    _ => None,
                }
            };
            if let Some((_, channels)) = gone {
                for channel in channels {
                    let portal = PortalId::channel(&net.name, &channel);
                    let reason = Some("lost in a netsplit".to_owned());
                    shared.workers.push(
                        &shared,
                        &portal,
                        Job::Leave {
                            nick: nick.clone(),
                            reason,
                        },
                    );
                }
            }
        });
    }

    fn on_nick(&self, line: &Line) {
        let (Some(old), new) = (line.nick.as_deref(), line.param(0)) else {
            return;
        };
        let (old_lower, new_lower) = (irc_lower(old), irc_lower(new));
        let (channels, levels): (Vec<String>, HashMap<String, Option<i64>>) = {
            let mut state = self.net.state();
            let channels = state
                .members
                .iter_mut()
                .filter_map(|(channel, members)| {
                    members.remove(&old_lower).then(|| {
                        members.insert(new_lower.clone());
                        channel.clone()
                    })
                })
                .collect();
            // IRC keeps a user's channel modes across a nick change: so does the new ghost.
            let mut levels = HashMap::new();
            for (channel, modes) in &mut state.prefix_modes {
                if let Some(m) = modes.remove(&old_lower) {
                    levels.insert(channel.clone(), power_of_modes(&m));
                    modes.insert(new_lower.clone(), m);
                }
            }
            (channels, levels)
        };
        if self.net.is_own_nick(old) || self.net.is_own_nick(new) {
            return;
        }
        for channel in channels {
            self.channel_job(
                &channel,
                Job::NickChange {
                    old: old.to_owned(),
                    new: new.to_owned(),
                },
            );
            if let Some(&Some(level)) = levels.get(&channel) {
                self.channel_job(
                    &channel,
                    Job::Power {
                        nick: new.to_owned(),
                        level: Some(level),
                    },
                );
            }
        }
    }

    fn on_kick(&self, conn: &Connection, line: &Line) {
        let (channel, kicked) = (line.param(0), line.param(1));
        let by = line.nick.clone().unwrap_or_default();
        let reason = line.params.get(2).cloned().unwrap_or_default();
        self.member(channel, kicked, false);
        if conn.is_me(kicked) {
            // Rejoin once, a little later; a ban answers with a numeric we report.
            let conn = conn.clone();
            let channel = channel.to_owned();
            conn.forget(&channel);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(5)).await;
                conn.join(&channel);
            });
            self.channel_job(
                line.param(0),
                Job::Notice(format!(
                    "The bridge was kicked from {} by {by} ({reason}); rejoining.",
                    line.param(0)
                )),
            );
            return;
        }
        if let Some(user_id) = self.net.user_of_nick(kicked) {
            self.channel_job(
                channel,
                Job::KickMatrixUser {
                    user_id,
                    by,
                    reason,
                },
            );
            return;
        }
        self.channel_job(
            channel,
            Job::Kick {
                by,
                nick: kicked.to_owned(),
                reason,
            },
        );
    }

    fn on_names(&self, line: &Line) {
        let channel = line.param(2);
        for entry in line.param(3).split_whitespace() {
            let nick = entry.trim_start_matches(['@', '+', '%', '~', '&']);
            let nick = nick.split('!').next().unwrap_or(nick);
            self.member(channel, nick, true);
            if self.net.is_own_nick(nick) {
                continue;
            }
            let modes = modes_of_prefixes(entry);
            let level = self.set_prefix_modes(channel, nick, |m| *m = modes);
            if level.is_some() {
                self.channel_job(
                    channel,
                    Job::Power {
                        nick: nick.to_owned(),
                        level,
                    },
                );
            }
        }
    }

    /// Changes a user's prefix modes in a channel; their power level from what is left.
    fn set_prefix_modes(
        &self,
        channel: &str,
        nick: &str,
        change: impl FnOnce(&mut String),
    ) -> Option<i64> {
        let mut state = self.net.state();
        let modes = state
            .prefix_modes
            .entry(irc_lower(channel))
            .or_default()
            .entry(irc_lower(nick))
            .or_default();
        change(modes);
        power_of_modes(modes)
    }

    fn on_mode(&self, line: &Line) {
        let channel = line.param(0);
        if !is_channel(channel) {
            return;
        }
        let mut args = line.params.iter().skip(2);
        let mut adding = true;
        for c in line.param(1).chars() {
            match c {
                '+' => adding = true,
                '-' => adding = false,
                'o' | 'v' | 'h' | 'a' | 'q' => {
                    let Some(nick) = args.next() else { break };
                    if self.net.is_own_nick(nick) {
                        continue;
                    }
                    let level = self.set_prefix_modes(channel, nick, |modes| {
                        modes.retain(|m| m != c);
                        if adding {
                            modes.push(c);
                        }
                    });
                    self.channel_job(
                        channel,
                        Job::Power {
                            nick: nick.clone(),
                            level,
                        },
                    );
                }
                'b' | 'e' | 'I' | 'k' => {
                    args.next();
                }
                'l' | 'H' | 'f' | 'j' | 'J' if adding => {
                    args.next();
                }
                _ => {}
            }
        }
    }
}

/// Keeps the msgid IRC gave a line of a Matrix message (for deleting it later).
pub(crate) async fn remember_echo(
    shared: &Shared,
    net: &Net,
    event_id: &str,
    via: &str,
    target: &str,
    msgid: &str,
) {
    let Ok(bridge) = shared.bridge() else {
        return;
    };
    if let Err(e) =
        redaction::remember(bridge.store(), &net.name, event_id, via, target, msgid).await
    {
        tracing::warn!(event_id, msgid, error = %e, "msgid of a sent line not stored");
    }
}

/// The channel modes behind a NAMES entry's prefixes (`@+bob` -> `ov`).
pub(crate) fn modes_of_prefixes(entry: &str) -> String {
    entry
        .chars()
        .map_while(|c| match c {
            '~' => Some('q'),
            '&' => Some('a'),
            '@' => Some('o'),
            '%' => Some('h'),
            '+' => Some('v'),
            _ => None,
        })
        .collect()
}

/// The power level of a user's channel modes: owner, admin and op 50, halfop 25, voice 10;
/// `None` without any.
pub(crate) fn power_of_modes(modes: &str) -> Option<i64> {
    modes
        .chars()
        .map(|m| match m {
            'q' | 'a' | 'o' => 50,
            'h' => 25,
            _ => 10,
        })
        .max()
}

#[async_trait]
impl IrcHandler for RelayHandler {
    async fn on_registered(&self, _conn: &Connection) {
        self.net.state().told_unreachable.clear();
    }

    async fn on_line(&self, conn: &Connection, line: Line) {
        match line.command.as_str() {
            "PRIVMSG" | "NOTICE" => self.on_chat(conn, &line),
            "BATCH" => self.on_batch(conn, &line),
            // RPL_ISUPPORT: how many lines a CHATHISTORY request may ask for.
            "005" => {
                if let Some(limit) = chathistory::isupport_limit(&line) {
                    self.net.state().history_limit = Some(limit);
                }
            }
            "JOIN" => self.on_join(conn, &line),
            "PART" => self.on_part(conn, &line),
            "QUIT" => self.on_quit(&line),
            "NICK" => self.on_nick(&line),
            "KICK" => self.on_kick(conn, &line),
            "TOPIC" => {
                let by = line.nick.clone();
                self.channel_job(
                    line.param(0),
                    Job::Topic {
                        by,
                        topic: line.param(1).to_owned(),
                    },
                );
            }
            // RPL_TOPIC on join
            "332" => self.channel_job(
                line.param(1),
                Job::Topic {
                    by: None,
                    topic: line.param(2).to_owned(),
                },
            ),
            "353" => self.on_names(&line),
            "MODE" => self.on_mode(&line),
            "REDACT" => {
                if let Some(redact) = Redact::from_line(&line)
                    && is_channel(&redact.target)
                    && !self.net.is_own_nick(&redact.by)
                {
                    let channel = redact.target.clone();
                    self.channel_job(
                        &channel,
                        Job::Redact {
                            by: redact.by,
                            msgid: redact.msgid,
                            reason: redact.reason,
                        },
                    );
                }
            }
            "FAIL" => {
                if let Some((target, why)) = redaction::refusal(&line)
                    && is_channel(&target)
                {
                    self.channel_job(
                        &target,
                        Job::Notice(format!(
                            "IRC refused to delete a message in {target}: {why}"
                        )),
                    );
                }
            }
            // ERR_CANNOTSENDTOCHAN, ERR_NOTONCHANNEL, channel join refusals
            "404" | "471" | "473" | "474" | "475" | "477" => {
                let channel = line.param(1);
                let why = line.params.last().cloned().unwrap_or_default();
                self.channel_job(
                    channel,
                    Job::Notice(format!("IRC refused a message or join in {channel}: {why}")),
                );
            }
            _ => {}
        }
    }

    async fn on_echo(&self, _conn: &Connection, tag: &str, target: &str, msgid: &str) {
        remember_echo(
            &self.shared,
            &self.net,
            tag,
            redaction::VIA_RELAY,
            target,
            msgid,
        )
        .await;
    }

    async fn on_disconnected(&self, _conn: &Connection, reason: &str) {
        let mut state = self.net.state();
        state.batches.clear();
        tracing::info!(network = %self.net.name, reason, "relay disconnected; Matrix messages are queued until it is back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_lines_take_msgid_or_a_stable_hash_as_their_id() {
        let live =
            Line::parse("@time=2026-01-01T00:00:01.500Z;msgid=x1 :bob!b@h PRIVMSG #c :hi").unwrap();
        assert_eq!(ChatLine::from_line(&live).unwrap().id, "msgid:x1");
        let a = Line::parse("@time=2026-01-01T00:00:01.500Z :bob!b@h PRIVMSG #c :hi").unwrap();
        let replay = Line::parse("@time=2026-01-01T00:00:01.000Z :Bob!b@h PRIVMSG #c :hi").unwrap();
        let (a, replay) = (
            ChatLine::from_line(&a).unwrap(),
            ChatLine::from_line(&replay).unwrap(),
        );
        assert_eq!(a.id, replay.id, "same second, same nick, same text");
        assert_eq!(a.ts, Some(1_767_225_601_500));
    }

    #[test]
    fn actions_and_notices_keep_their_kind_and_ctcp_requests_are_dropped() {
        let action = Line::parse(":bob!b@h PRIVMSG #c :\x01ACTION waves\x01").unwrap();
        let chat = ChatLine::from_line(&action).unwrap();
        assert_eq!((chat.kind, chat.text.as_str()), (Kind::Action, "waves"));
        let notice = Line::parse(":bob!b@h NOTICE #c :note").unwrap();
        assert_eq!(ChatLine::from_line(&notice).unwrap().kind, Kind::Notice);
        let version = Line::parse(":bob!b@h PRIVMSG #c :\x01VERSION\x01").unwrap();
        assert_eq!(ChatLine::from_line(&version), None);
    }

    #[test]
    fn netsplit_quits_are_recognised() {
        assert!(is_netsplit("irc.one.net hub.two.org"));
        assert!(!is_netsplit("Quit: bye"));
        assert!(!is_netsplit("going home now"));
        assert!(!is_netsplit("see you.later"));
    }

    #[test]
    fn names_prefixes_map_to_power_levels() {
        let level = |entry: &str| power_of_modes(&modes_of_prefixes(entry));
        assert_eq!(level("@+bob"), Some(50));
        assert_eq!(level("%bob"), Some(25));
        assert_eq!(level("+bob"), Some(10));
        assert_eq!(level("~alice"), Some(50));
        assert_eq!(level("bob"), None);
    }

    #[test]
    fn the_highest_remaining_mode_decides_the_level() {
        let mut modes = modes_of_prefixes("@+bob");
        modes.retain(|m| m != 'o');
        assert_eq!(power_of_modes(&modes), Some(10), "deopped, still voiced");
        modes.retain(|m| m != 'v');
        assert_eq!(power_of_modes(&modes), None);
    }
}
