//! The IRC bridge's own management-room commands, through the SDK's `Network::handle_command`
//! (in a portal or another room they take the command prefix: `!irc nick alice`). After
//! matrix-appservice-irc's admin room, its useful core:
//!
//! | command | who | what |
//! | --- | --- | --- |
//! | `nick [NETWORK] NICK` | `user` | changes your IRC nick now and for later connections |
//! | `whois [NETWORK] NICK` | everyone allowed | who NICK is on IRC (the server's WHOIS) |
//! | `join [NETWORK] #CHANNEL` | everyone allowed | the channel's portal: created if needed, you are invited |
//! | `irc` | everyone allowed | your IRC connections: nick, state, channels |
//!
//! `NETWORK` may be left out where the bridge has one network, or in a portal (its network).

use std::sync::Arc;
use std::time::Duration;

use appservice_sdk::Result;
use appservice_sdk::commands::{CommandContext, CommandHelp};
use appservice_sdk::config::Permission;
use appservice_sdk::intent::RoomOptions;
use tokio::sync::broadcast;

use super::connection::Connection;
use super::line::Line;
use super::puppets::{chosen_nicks_namespace, nicks_namespace};
use super::{Net, Shared};
use crate::convert::ids::{PortalId, alias_localpart, is_channel};
use crate::convert::nick::{irc_lower, is_valid_nick, same};

/// How long a command waits for the IRC server's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The lines `help` shows.
pub(super) fn help() -> Vec<CommandHelp> {
    vec![
        CommandHelp::new(
            "nick",
            "nick [NETWORK] NICK: change your IRC nick (now, and for your later connections)",
        ),
        CommandHelp::new("whois", "whois [NETWORK] NICK: who NICK is on IRC"),
        CommandHelp::new(
            "join",
            "join [NETWORK] #CHANNEL: the channel's room (created if needed); you are invited",
        ),
        CommandHelp::new("irc", "irc: your IRC connections (nick, state, channels)"),
    ]
}

/// What was wrong with a nick given to `nick`, if anything.
pub(crate) fn nick_problem(nick: &str, max_len: usize, relay_nick: &str) -> Option<String> {
    if nick.len() > max_len {
        return Some(format!(
            "{nick:?} is too long: IRC nicks here have at most {max_len} bytes."
        ));
    }
    if !is_valid_nick(nick) {
        return Some(format!(
            "{nick:?} is not a valid IRC nick: letters, digits and - [ ] \\ ` _ ^ {{ | }}, \
             not starting with a digit or -."
        ));
    }
    if same(nick, relay_nick) {
        return Some(format!("{nick:?} is the bridge's own nick."));
    }
    None
}

/// Reads a server line answering `NICK`: `Ok(new nick)` when `old` became it, `Err(why)` for a
/// refusal; `None` for lines that are not an answer.
pub(crate) fn nick_answer(line: &Line, old: &str) -> Option<std::result::Result<String, String>> {
    match line.command.as_str() {
        "NICK" if line.nick.as_deref().is_some_and(|n| same(n, old)) => {
            Some(Ok(line.param(0).to_owned()))
        }
        // ERR_NONICKNAMEGIVEN, ERR_ERRONEUSNICKNAME, ERR_NICKNAMEINUSE, ERR_NICKCOLLISION,
        // ERR_UNAVAILRESOURCE, ERR_NICKTOOFAST (InspIRCd), ERR_NICKCHANGEFORBIDDEN (varies), ERR_RESTRICTED
        "431" | "432" | "433" | "436" | "437" | "438" | "447" | "484" => {
            let why = line.params.last().cloned().unwrap_or_default();
            Some(Err(format!("{why} ({})", line.command)))
        }
        _ => None,
    }
}

/// Whether `RPL_USERHOST` (`302 <me> :[nick[*]=+user@host ...]`) lists `nick` as online;
/// `None` for other lines.
pub(crate) fn userhost_online(line: &Line, nick: &str) -> Option<bool> {
    (line.command == "302").then(|| {
        line.param(1)
            .split_whitespace()
            .filter_map(|entry| entry.split(['=', '*']).next())
            .any(|online| same(online, nick))
    })
}

/// What `whois` learns from the server's answer lines (up to `RPL_ENDOFWHOIS`).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Whois {
    pub(crate) lines: Vec<String>,
    pub(crate) done: bool,
    pub(crate) found: bool,
}

impl Whois {
    /// Reads one server line about `nick`.
    pub(crate) fn read(&mut self, line: &Line, nick: &str) {
        if !same(line.param(1), nick) {
            return;
        }
        let last = line.params.last().cloned().unwrap_or_default();
        match line.command.as_str() {
            // RPL_WHOISUSER: <me> <nick> <user> <host> * :<real name>
            "311" => {
                self.found = true;
                self.lines.push(format!(
                    "{} is {}@{} ({last})",
                    line.param(1),
                    line.param(2),
                    line.param(3)
                ));
            }
            "319" => self.lines.push(format!("channels: {last}")),
            "312" => self
                .lines
                .push(format!("server: {} ({last})", line.param(2))),
            "301" => self.lines.push(format!("away: {last}")),
            "330" => self.lines.push(format!("account: {}", line.param(2))),
            "317" => {
                let idle = line.param(2).parse::<u64>().unwrap_or(0);
                self.lines.push(format!("idle {idle} s"));
            }
            "313" => self.lines.push(last),
            "401" => {
                self.lines
                    .push(format!("{} is not on IRC now.", line.param(1)));
                self.done = true;
            }
            "318" => self.done = true,
            _ => {}
        }
    }
}

/// Waits for the first answer `read` recognises, at most [`ANSWER_TIMEOUT`].
async fn answer<T>(
    lines: &mut broadcast::Receiver<Line>,
    mut read: impl FnMut(&Line) -> Option<T>,
) -> Option<T> {
    let wait = async {
        loop {
            match lines.recv().await {
                Ok(line) => {
                    if let Some(answer) = read(&line) {
                        return Some(answer);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, wait)
        .await
        .ok()
        .flatten()
}

impl Shared {
    /// Runs one of the commands above; `None` for any other.
    pub(super) async fn command(
        self: &Arc<Self>,
        context: &CommandContext<'_>,
        command: &str,
        args: &[&str],
    ) -> Result<Option<String>> {
        let reply = match command {
            "nick" => self.nick_command(context, args).await?,
            "whois" => self.whois_command(context, args).await,
            "join" => self.join_command(context, args).await?,
            "irc" => self.connections_command(context),
            _ => return Ok(None),
        };
        Ok(Some(reply))
    }

    /// The network a command is for and its other arguments: a leading network name, else the
    /// portal's network, else the only one.
    fn command_network<'a>(
        &self,
        context: &CommandContext<'_>,
        args: &'a [&'a str],
    ) -> std::result::Result<(Arc<Net>, &'a [&'a str]), String> {
        if let Some((first, rest)) = args.split_first()
            && args.len() > 1
            && let Some(net) = self.nets.get(*first)
        {
            return Ok((net.clone(), rest));
        }
        if let Some(portal) = context.portal
            && let Some(id) = PortalId::parse(&portal.remote_id)
            && let Some(net) = self.nets.get(id.network())
        {
            return Ok((net.clone(), args));
        }
        if self.nets.len() == 1
            && let Some(net) = self.nets.values().next()
        {
            return Ok((net.clone(), args));
        }
        let names: Vec<&str> = self.nets.keys().map(String::as_str).collect();
        Err(format!(
            "Which IRC network? Put its name first, one of: {}.",
            names.join(", ")
        ))
    }

    async fn nick_command(
        self: &Arc<Self>,
        context: &CommandContext<'_>,
        args: &[&str],
    ) -> Result<String> {
        if context.permission < Permission::User {
            return Ok("Choosing an IRC nick needs the `user` permission.".to_owned());
        }
        let (net, args) = match self.command_network(context, args) {
            Ok(found) => found,
            Err(why) => return Ok(why),
        };
        let [nick] = args else {
            return Ok("Usage: nick [NETWORK] NICK".to_owned());
        };
        if !net.config.puppeting {
            return Ok(format!(
                "IRC ({}) has no connections of your own (puppeting is off): you speak through the relay bot.",
                net.name
            ));
        }
        if let Some(problem) = nick_problem(nick, net.config.max_nick_len, &net.config.nick) {
            return Ok(problem);
        }
        let user = context.sender;
        let taken_by_puppet = net
            .state()
            .puppet_nicks
            .get(&irc_lower(nick))
            .is_some_and(|owner| owner != user);
        if taken_by_puppet {
            return Ok(format!("{nick} is another Matrix user's IRC nick."));
        }
        let bridge = context.bridge;
        let conn = net.state().puppets.get(user).map(|p| p.conn.clone());
        let Some(conn) = conn.filter(Connection::is_connected) else {
            bridge
                .store()
                .kv_set(&chosen_nicks_namespace(&net), user.as_str(), nick)
                .await?;
            if let Some(conn) = net.state().puppets.get(user).map(|p| p.conn.clone()) {
                conn.set_wanted_nick(nick);
            }
            return Ok(format!(
                "Your IRC nick on {} will be {nick} from your next connection.",
                net.name
            ));
        };
        let old = conn.nick();
        if same(&old, nick) && old == *nick {
            return Ok(format!("You are {nick} on {} already.", net.name));
        }
        // The `irc` crate answers a refused NICK by trying its alternative nicks: so ask first
        // whether the nick is online, and put the old nick back after a refusal. (USERHOST, not
        // ISON: irc-proto 1.1 writes a parsed ISON as USERHOST.)
        if !same(&old, nick) {
            let mut lines = conn.lines();
            conn.send_raw(&format!("USERHOST {nick}"));
            let online = answer(&mut lines, |line| userhost_online(line, nick)).await;
            if online == Some(true) {
                return Ok(format!("{nick} is taken on {}.", net.name));
            }
        }
        let mut lines = conn.lines();
        conn.set_wanted_nick(nick);
        conn.send_raw(&format!("NICK {nick}"));
        match answer(&mut lines, |line| nick_answer(line, &old)).await {
            Some(Ok(new)) => {
                let store = bridge.store();
                store
                    .kv_set(&chosen_nicks_namespace(&net), user.as_str(), &new)
                    .await?;
                store
                    .kv_set(&nicks_namespace(&net), user.as_str(), &new)
                    .await?;
                net.state()
                    .puppet_nicks
                    .insert(irc_lower(&new), user.to_owned());
                Ok(format!("You are {new} on {} now.", net.name))
            }
            refused => {
                conn.set_wanted_nick(&old);
                // Undo the `irc` crate's alternative nick, if it got one.
                tokio::time::sleep(Duration::from_millis(500)).await;
                if conn.nick() != old {
                    conn.send_raw(&format!("NICK {old}"));
                }
                let why = match refused {
                    Some(Err(why)) => why,
                    _ => "no answer from the IRC server".to_owned(),
                };
                Ok(format!(
                    "IRC ({}) refused {nick}: {why}. You are still {old}.",
                    net.name
                ))
            }
        }
    }

    async fn whois_command(
        self: &Arc<Self>,
        context: &CommandContext<'_>,
        args: &[&str],
    ) -> String {
        let (net, args) = match self.command_network(context, args) {
            Ok(found) => found,
            Err(why) => return why,
        };
        let [nick] = args else {
            return "Usage: whois [NETWORK] NICK".to_owned();
        };
        if !is_valid_nick(nick) {
            return format!("{nick:?} is not a valid IRC nick.");
        }
        let Ok(relay) = net.relay() else {
            return format!("IRC ({}) is not started.", net.name);
        };
        if !relay.is_connected() {
            return format!("IRC ({}) is unreachable now.", net.name);
        }
        let mut lines = relay.lines();
        relay.send_raw(&format!("WHOIS {nick}"));
        let mut whois = Whois::default();
        let done = answer(&mut lines, |line| {
            whois.read(line, nick);
            whois.done.then_some(())
        })
        .await;
        if done.is_none() && whois.lines.is_empty() {
            return format!("No answer from IRC ({}) about {nick}.", net.name);
        }
        whois.lines.join("\n")
    }

    async fn join_command(
        self: &Arc<Self>,
        context: &CommandContext<'_>,
        args: &[&str],
    ) -> Result<String> {
        let (net, args) = match self.command_network(context, args) {
            Ok(found) => found,
            Err(why) => return Ok(why),
        };
        let [channel] = args else {
            return Ok("Usage: join [NETWORK] #CHANNEL".to_owned());
        };
        if !is_channel(channel) || channel.contains([',', ' ', '\x07']) {
            return Ok(format!(
                "{channel:?} is not an IRC channel (it starts with # or &)."
            ));
        }
        let bridge = context.bridge;
        let remote_id = PortalId::channel(&net.name, channel);
        let options = RoomOptions {
            name: Some((*channel).to_owned()),
            alias_localpart: Some(alias_localpart(&net.name, channel)),
            public: true,
            ..RoomOptions::default()
        };
        net.relay()?.join(channel);
        let portal = bridge.create_portal(&remote_id, &options).await?;
        let invited = bridge
            .appservice()
            .bot()
            .invite(&portal.room_id, context.sender)
            .await;
        match invited {
            Ok(()) => Ok(format!(
                "{channel} on {} is room {}; you are invited.",
                net.name, portal.room_id
            )),
            // Already in the room (or banned from it): the homeserver says why.
            Err(e) if e.errcode() == Some("M_FORBIDDEN") => Ok(format!(
                "{channel} on {} is room {}; you could not be invited: {e}",
                net.name, portal.room_id
            )),
            Err(e) => Err(e),
        }
    }

    fn connections_command(&self, context: &CommandContext<'_>) -> String {
        let mut out = Vec::new();
        for net in self.nets.values() {
            let conn = net
                .state()
                .puppets
                .get(context.sender)
                .map(|p| p.conn.clone());
            match conn {
                Some(conn) => {
                    let state = if conn.is_connected() {
                        "connected"
                    } else {
                        "connecting"
                    };
                    let channels = conn.channels().join(", ");
                    out.push(format!(
                        "{}: {} as {}, in {}",
                        net.name,
                        state,
                        conn.nick(),
                        if channels.is_empty() {
                            "no channels"
                        } else {
                            channels.as_str()
                        }
                    ));
                }
                None => out.push(format!(
                    "{}: no connection of your own now (one is made when you speak or join a portal)",
                    net.name
                )),
            }
        }
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_nicks_get_a_clear_answer() {
        assert_eq!(nick_problem("alice", 30, "relaybot"), None);
        assert_eq!(nick_problem("[m]alice", 30, "relaybot"), None);
        assert!(
            nick_problem("1alice", 30, "relaybot")
                .unwrap()
                .contains("not a valid IRC nick")
        );
        assert!(
            nick_problem("al ice", 30, "relaybot")
                .unwrap()
                .contains("not a valid IRC nick")
        );
        assert!(
            nick_problem("", 30, "relaybot")
                .unwrap()
                .contains("not a valid IRC nick")
        );
        assert!(
            nick_problem("abcdefghij", 9, "relaybot")
                .unwrap()
                .contains("at most 9 bytes")
        );
        assert!(
            nick_problem("RelayBot", 30, "relaybot")
                .unwrap()
                .contains("the bridge's own nick")
        );
    }

    #[test]
    fn a_nick_change_is_confirmed_or_refused_by_the_server() {
        let ok = Line::parse(":alice[m]!a@h NICK :alice").unwrap();
        assert_eq!(nick_answer(&ok, "Alice[m]"), Some(Ok("alice".to_owned())));
        let someone_else = Line::parse(":bob!b@h NICK :alice").unwrap();
        assert_eq!(nick_answer(&someone_else, "alice[m]"), None);
        let taken =
            Line::parse(":irc.test 433 alice[m] alice :Nickname is already in use.").unwrap();
        assert_eq!(
            nick_answer(&taken, "alice[m]"),
            Some(Err("Nickname is already in use. (433)".to_owned()))
        );
        let too_fast = Line::parse(":irc.test 438 alice[m] alice :Nick change too fast").unwrap();
        assert!(nick_answer(&too_fast, "alice[m]").unwrap().is_err());
        let other = Line::parse(":irc.test 372 alice[m] :- motd").unwrap();
        assert_eq!(nick_answer(&other, "alice[m]"), None);
    }

    #[test]
    fn userhost_tells_whether_a_nick_is_online() {
        let online = Line::parse(":irc.test 302 alicia :IrcBob=+ircbob@127.0.0.1").unwrap();
        assert_eq!(userhost_online(&online, "ircbob"), Some(true));
        let oper = Line::parse(":irc.test 302 alicia :op*=-o@h bob=+b@h").unwrap();
        assert_eq!(userhost_online(&oper, "op"), Some(true));
        assert_eq!(userhost_online(&oper, "bo"), Some(false));
        let nobody = Line::parse(":irc.test 302 alicia :").unwrap();
        assert_eq!(userhost_online(&nobody, "ircbob"), Some(false));
        let other = Line::parse(":irc.test 303 alicia :ircbob").unwrap();
        assert_eq!(userhost_online(&other, "ircbob"), None);
    }

    #[test]
    fn whois_answers_are_summed_up_until_the_end() {
        let mut whois = Whois::default();
        for raw in [
            ":irc.test 311 relaybot Bob bob host.example * :Bob Builder",
            ":irc.test 319 relaybot Bob :@#rust #irc",
            ":irc.test 312 relaybot Bob irc.test :e2e",
            ":irc.test 311 relaybot carol c h * :not asked about",
            ":irc.test 317 relaybot Bob 42 1700000000 :seconds idle, signon time",
        ] {
            whois.read(&Line::parse(raw).unwrap(), "bob");
            assert!(!whois.done);
        }
        whois.read(
            &Line::parse(":irc.test 318 relaybot Bob :End of /WHOIS list.").unwrap(),
            "bob",
        );
        assert!(whois.done && whois.found);
        assert_eq!(
            whois.lines,
            [
                "Bob is bob@host.example (Bob Builder)",
                "channels: @#rust #irc",
                "server: irc.test (e2e)",
                "idle 42 s"
            ]
        );
        let mut missing = Whois::default();
        missing.read(
            &Line::parse(":irc.test 401 relaybot zed :No such nick").unwrap(),
            "zed",
        );
        assert!(missing.done && !missing.found);
        assert_eq!(missing.lines, ["zed is not on IRC now."]);
    }
}
