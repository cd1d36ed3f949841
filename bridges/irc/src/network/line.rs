//! One IRC message as the bridge reads it: tags, source nick, command and parameters. The `irc`
//! crate parses the wire; this flattens its many command variants into one shape.

use std::collections::BTreeMap;

use irc::proto::{Message, Prefix};

/// A received IRC message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Line {
    /// IRCv3 tags (`time`, `msgid`, `batch`, `account`, ...), values unescaped.
    pub tags: BTreeMap<String, String>,
    /// The source's nick, for messages from users.
    pub nick: Option<String>,
    /// The source's `user@host`, for messages from users.
    pub userhost: Option<String>,
    /// The command (upper case) or numeric.
    pub command: String,
    /// The parameters, the trailing one included.
    pub params: Vec<String>,
}

impl Line {
    /// Flattens a parsed message.
    pub fn from_message(message: &Message) -> Self {
        let tags = message
            .tags
            .iter()
            .flatten()
            .map(|t| (t.0.clone(), t.1.clone().unwrap_or_default()))
            .collect();
        let (nick, userhost) = match &message.prefix {
            Some(Prefix::Nickname(nick, user, host)) if !nick.contains('.') || !user.is_empty() => {
                (Some(nick.clone()), Some(format!("{user}@{host}")))
            }
            _ => (None, None),
        };
        let (command, params) = split(&String::from(&message.command));
        Self {
            tags,
            nick,
            userhost,
            command,
            params,
        }
    }

    /// Parses a raw line (tests, and what the `irc` crate does not model).
    pub fn parse(raw: &str) -> Option<Self> {
        raw.parse::<Message>().ok().map(|m| Self::from_message(&m))
    }

    /// The parameter at `i`, or "".
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map(String::as_str).unwrap_or_default()
    }

    /// `server-time`, in ms since the epoch.
    pub fn time_ms(&self) -> Option<u64> {
        let time = self.tags.get("time")?;
        chrono::DateTime::parse_from_rfc3339(time)
            .ok()
            .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
    }

    /// The `msgid` tag.
    pub fn msgid(&self) -> Option<&str> {
        self.tags
            .get("msgid")
            .map(String::as_str)
            .filter(|m| !m.is_empty())
    }

    /// The `batch` tag: the batch this message belongs to.
    pub fn batch(&self) -> Option<&str> {
        self.tags.get("batch").map(String::as_str)
    }
}

/// Splits a serialised command (`PRIVMSG #a :hello there`) into the command and its parameters.
fn split(wire: &str) -> (String, Vec<String>) {
    let wire = wire.trim_end_matches(['\r', '\n']);
    let (head, trailing) = match wire.find(" :") {
        Some(i) => (&wire[..i], Some(&wire[i + 2..])),
        None => (wire, None),
    };
    let mut words = head.split(' ').filter(|w| !w.is_empty());
    let command = words.next().unwrap_or_default().to_ascii_uppercase();
    let mut params: Vec<String> = words.map(str::to_owned).collect();
    if let Some(trailing) = trailing {
        params.push(trailing.to_owned());
    }
    (command, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tagged_privmsg_flattens() {
        let line = Line::parse(
            "@time=2026-01-02T03:04:05.678Z;msgid=abc;batch=1 :bob!b@host PRIVMSG #rust :hi there",
        )
        .unwrap();
        assert_eq!(line.nick.as_deref(), Some("bob"));
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.params, ["#rust", "hi there"]);
        assert_eq!(line.msgid(), Some("abc"));
        assert_eq!(line.batch(), Some("1"));
        assert_eq!(line.time_ms(), Some(1_767_323_045_678));
    }

    #[test]
    fn numerics_caps_and_server_sources_flatten() {
        let line = Line::parse(":irc.test CAP * LS * :sasl server-time").unwrap();
        assert_eq!(line.nick, None);
        assert_eq!(line.command, "CAP");
        assert_eq!(line.params, ["*", "LS", "*", "sasl server-time"]);
        let line = Line::parse(":irc.test 353 me = #t :@alice +bob carol").unwrap();
        assert_eq!(line.command, "353");
        assert_eq!(line.param(3), "@alice +bob carol");
        let line = Line::parse(":irc.test BATCH +1 chathistory :#t").unwrap();
        assert_eq!(line.params[0], "+1");
        assert!(line.param(1).eq_ignore_ascii_case("chathistory"));
        let line = Line::parse(":a!b@c PRIVMSG #t ::-)").unwrap();
        assert_eq!(line.params, ["#t", ":-)"]);
    }
}
