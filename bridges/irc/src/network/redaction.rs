//! Deleted messages, both ways, with IRCv3 `draft/message-redaction` (`REDACT <target> <msgid>
//! [:<reason>]`) where the server offers it; where it does not, nothing is sent to IRC and the
//! room is told once that IRC keeps the message.
//!
//! - Matrix -> IRC: a Matrix message's lines are sent with [`Connection::send_tracked`]
//!   (only when the server offers redaction and `echo-message`); their echoes carry the
//!   `msgid`s IRC gave them, kept in the SDK's key/value store ([`Sent`]). A Matrix redaction
//!   sends `REDACT` for each through the connection that sent them (the redactor's own
//!   connection when a moderator deletes someone else's message, so the IRC server decides).
//!   A Matrix redaction of an IRC user's line is sent through the redactor's own connection;
//!   the server allows it only to channel operators. `FAIL REDACT` answers are told in the room.
//! - IRC -> Matrix: `REDACT` of a bridged IRC line is redacted by the deleter's ghost (by the
//!   bridge bot where the ghost lacks the power); of a Matrix user's line, by the bridge bot.
//!
//! [`Connection::send_tracked`]: super::connection::Connection::send_tracked

use std::sync::Arc;

use appservice_sdk::Result;
use appservice_sdk::bridge::{MatrixRedaction, RedactionTarget};
use appservice_sdk::intent::SendOptions;
use appservice_sdk::store::{PortalRecord, Store};
use ruma::UserId;
use serde::{Deserialize, Serialize};

use super::connection::Connection;
use super::line::Line;
use super::{Net, Shared};
use crate::convert::ids::PortalId;

/// The capability.
pub(crate) const CAP: &str = "draft/message-redaction";

/// [`Sent::via`] for lines the relay bot sent.
pub(crate) const VIA_RELAY: &str = "relay";

/// What the bridge sent to IRC for one Matrix message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Sent {
    /// The channel or nick.
    pub(crate) target: String,
    /// [`VIA_RELAY`], or the Matrix user whose connection sent it.
    pub(crate) via: String,
    /// The `msgid` of each line, in order.
    pub(crate) msgids: Vec<String>,
}

fn sent_namespace(network: &str) -> String {
    format!("irc:{network}:sent")
}

fn msgid_namespace(network: &str) -> String {
    format!("irc:{network}:sent-msgid")
}

/// Whether a connection may send `REDACT` (and tracks msgids for it).
pub(crate) fn offered(conn: &Connection) -> bool {
    conn.has_cap(CAP) && conn.has_cap("echo-message")
}

/// Records the `msgid` the server gave one line of Matrix event `event_id`.
pub(crate) async fn remember(
    store: &Store,
    network: &str,
    event_id: &str,
    via: &str,
    target: &str,
    msgid: &str,
) -> Result<()> {
    let mut sent = sent_of(store, network, event_id)
        .await?
        .unwrap_or_else(|| Sent {
            target: target.to_owned(),
            via: via.to_owned(),
            msgids: Vec::new(),
        });
    sent.msgids.push(msgid.to_owned());
    let value = serde_json::to_string(&sent).unwrap_or_default();
    store
        .kv_set(&sent_namespace(network), event_id, &value)
        .await?;
    store
        .kv_set(&msgid_namespace(network), msgid, event_id)
        .await
}

/// What was sent for a Matrix event, if its echoes were recorded.
pub(crate) async fn sent_of(store: &Store, network: &str, event_id: &str) -> Result<Option<Sent>> {
    let value = store.kv_get(&sent_namespace(network), event_id).await?;
    Ok(value.and_then(|v| serde_json::from_str(&v).ok()))
}

/// The Matrix event whose line got `msgid`.
pub(crate) async fn event_of_msgid(
    store: &Store,
    network: &str,
    msgid: &str,
) -> Result<Option<String>> {
    store.kv_get(&msgid_namespace(network), msgid).await
}

/// Forgets what was sent for a Matrix event (it was deleted).
pub(crate) async fn forget(store: &Store, network: &str, event_id: &str) -> Result<()> {
    if let Some(sent) = sent_of(store, network, event_id).await? {
        for msgid in &sent.msgids {
            store.kv_delete(&msgid_namespace(network), msgid).await?;
        }
    }
    store.kv_delete(&sent_namespace(network), event_id).await?;
    Ok(())
}

/// `REDACT <target> <msgid> [:<reason>]`.
pub(crate) fn redact_line(target: &str, msgid: &str, reason: Option<&str>) -> String {
    match reason.map(|r| r.replace(['\r', '\n'], " ")) {
        Some(reason) if !reason.trim().is_empty() => format!("REDACT {target} {msgid} :{reason}"),
        _ => format!("REDACT {target} {msgid}"),
    }
}

/// A `REDACT` from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Redact {
    /// Who deleted it.
    pub(crate) by: String,
    /// The channel, or our nick for a private message.
    pub(crate) target: String,
    pub(crate) msgid: String,
    pub(crate) reason: Option<String>,
}

impl Redact {
    /// Reads `:nick!u@h REDACT <target> <msgid> [:<reason>]`.
    pub(crate) fn from_line(line: &Line) -> Option<Self> {
        if line.command != "REDACT" || line.params.len() < 2 || line.param(1).is_empty() {
            return None;
        }
        Some(Self {
            by: line.nick.clone()?,
            target: line.param(0).to_owned(),
            msgid: line.param(1).to_owned(),
            reason: line.params.get(2).cloned().filter(|r| !r.is_empty()),
        })
    }
}

/// A refused `REDACT` (`FAIL REDACT <code> <target> [<msgid> ...] :<description>`): the
/// target and what the server said.
pub(crate) fn refusal(line: &Line) -> Option<(String, String)> {
    if line.command != "FAIL" || line.param(0) != "REDACT" {
        return None;
    }
    let description = line.params.last().cloned().unwrap_or_default();
    let target = match line.param(1) {
        // No target in this one: the description says what was wrong.
        "INVALID_TARGET" | "REDACT_FORBIDDEN" | "REDACT_WINDOW_EXPIRED" | "UNKNOWN_MSGID"
            if line.params.len() >= 4 =>
        {
            line.param(2).to_owned()
        }
        _ => String::new(),
    };
    Some((target, format!("{} ({description})", line.param(1))))
}

/// Why a Matrix redaction is not sent to IRC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotSent {
    /// The server does not offer `draft/message-redaction`.
    NotOffered,
    /// The message's IRC `msgid`s are not known (sent before they were tracked, or without an echo).
    Unknown,
}

/// The `REDACT` lines that delete what was sent for a Matrix message, or why there are none.
pub(crate) fn lines_for(offered: bool, sent: Option<&Sent>) -> Result<Vec<String>, NotSent> {
    if !offered {
        return Err(NotSent::NotOffered);
    }
    let sent = sent
        .filter(|s| !s.msgids.is_empty())
        .ok_or(NotSent::Unknown)?;
    Ok(sent
        .msgids
        .iter()
        .map(|m| redact_line(&sent.target, m, None))
        .collect())
}

impl Shared {
    /// A Matrix redaction of a bridged message, sent to IRC where the server offers it.
    pub(super) async fn send_redaction(
        self: &Arc<Self>,
        portal: &PortalRecord,
        redaction: &MatrixRedaction,
    ) -> Result<()> {
        let RedactionTarget::Message(remote_id) = &redaction.target else {
            return Ok(());
        };
        let (id, net) = self.net_of(portal)?;
        let net = net.clone();
        let store = self.bridge()?.store().clone();
        // Checked on the relay bot, which is always connected: every connection to the server
        // is offered the same.
        if !offered(net.relay()?) {
            self.tell_no_redaction(&net, portal).await;
            return Ok(());
        }
        let (conn, sent) = if let Some(event_id) = remote_id.strip_prefix("mx:") {
            let sent = sent_of(&store, &net.name, event_id).await?;
            let own = sent
                .as_ref()
                .is_some_and(|s| s.via == VIA_RELAY || s.via == redaction.sender.as_str());
            let conn = match &sent {
                Some(s) if s.via == VIA_RELAY => Some(net.relay()?.clone()),
                Some(s) if own => match UserId::parse(s.via.as_str()) {
                    Ok(user) => self.puppet(&net, &user).await,
                    Err(_) => None,
                },
                _ => self.puppet(&net, &redaction.sender).await,
            };
            (conn, sent)
        } else if let Some(msgid) = remote_id.strip_prefix("msgid:") {
            let target = match &id {
                PortalId::Channel { channel, .. } => channel.clone(),
                PortalId::Private { nick, .. } => nick.clone(),
            };
            let sent = Sent {
                target,
                via: redaction.sender.to_string(),
                msgids: vec![msgid.to_owned()],
            };
            (self.puppet(&net, &redaction.sender).await, Some(sent))
        } else {
            (None, None)
        };
        let Some(conn) = conn else {
            let text =
                "The deleted message stays on IRC: you have no IRC connection to delete it with.";
            self.notice(portal, text).await;
            return Ok(());
        };
        match lines_for(offered(&conn), sent.as_ref()) {
            Ok(lines) => {
                for line in lines {
                    conn.send_raw(&line);
                }
                if let Some(event_id) = remote_id.strip_prefix("mx:") {
                    forget(&store, &net.name, event_id).await?;
                }
            }
            Err(NotSent::NotOffered) => self.tell_no_redaction(&net, portal).await,
            Err(NotSent::Unknown) => {
                let text = "The deleted message stays on IRC: the bridge does not know its IRC message id.";
                self.notice(portal, text).await;
            }
        }
        Ok(())
    }

    /// Tells a room once (per run) that this IRC server cannot delete messages.
    async fn tell_no_redaction(&self, net: &Net, portal: &PortalRecord) {
        if !net.state().told_no_redaction.insert(portal.room_id.clone()) {
            return;
        }
        let text = format!(
            "IRC ({}) cannot delete messages (the server does not offer {CAP}): deleted messages stay on IRC.",
            net.name
        );
        self.notice(portal, &text).await;
    }

    async fn notice(&self, portal: &PortalRecord, text: &str) {
        if let Ok(bridge) = self.bridge()
            && let Err(e) = bridge
                .appservice()
                .bot()
                .send_notice(&portal.room_id, text, SendOptions::default())
                .await
        {
            tracing::warn!(room = %portal.room_id, error = %e, "notice not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_lines_carry_a_one_line_reason_or_none() {
        assert_eq!(redact_line("#c", "abc", None), "REDACT #c abc");
        assert_eq!(
            redact_line("#c", "abc", Some("spam\r\nmore")),
            "REDACT #c abc :spam  more"
        );
        assert_eq!(redact_line("bob", "x1", Some(" ")), "REDACT bob x1");
    }

    #[test]
    fn a_server_redact_is_read_with_or_without_reason() {
        let line =
            Line::parse("@time=2026-01-01T00:00:00.000Z :bob!b@h REDACT #chan m1 :oops typo")
                .unwrap();
        assert_eq!(
            Redact::from_line(&line),
            Some(Redact {
                by: "bob".to_owned(),
                target: "#chan".to_owned(),
                msgid: "m1".to_owned(),
                reason: Some("oops typo".to_owned()),
            })
        );
        let line = Line::parse(":op!o@h REDACT alice[m] m2").unwrap();
        let redact = Redact::from_line(&line).unwrap();
        assert_eq!((redact.target.as_str(), redact.reason), ("alice[m]", None));
        assert_eq!(
            Redact::from_line(&Line::parse(":irc.test REDACT #c m").unwrap()),
            None,
            "from the server, not a user"
        );
        assert_eq!(
            Redact::from_line(&Line::parse(":a!b@c REDACT #c").unwrap()),
            None
        );
    }

    #[test]
    fn fail_redact_names_the_target_and_the_reason() {
        let line = Line::parse(
            ":irc.test FAIL REDACT REDACT_FORBIDDEN #chan m1 :You are not authorised to delete this message",
        )
        .unwrap();
        assert_eq!(
            refusal(&line),
            Some((
                "#chan".to_owned(),
                "REDACT_FORBIDDEN (You are not authorised to delete this message)".to_owned()
            ))
        );
        let line = Line::parse(":irc.test FAIL REDACT INVALID_TARGET #x :no such channel").unwrap();
        assert_eq!(refusal(&line).unwrap().0, "#x");
        let other = Line::parse(":irc.test FAIL CHATHISTORY INVALID_TARGET #x :nope").unwrap();
        assert_eq!(refusal(&other), None);
    }

    #[test]
    fn nothing_is_sent_where_the_server_does_not_offer_redaction() {
        let sent = Sent {
            target: "#chan".to_owned(),
            via: VIA_RELAY.to_owned(),
            msgids: vec!["m1".to_owned(), "m2".to_owned()],
        };
        assert_eq!(lines_for(false, Some(&sent)), Err(NotSent::NotOffered));
        assert_eq!(lines_for(false, None), Err(NotSent::NotOffered));
        assert_eq!(
            lines_for(true, Some(&sent)).unwrap(),
            ["REDACT #chan m1", "REDACT #chan m2"]
        );
        assert_eq!(lines_for(true, None), Err(NotSent::Unknown));
        let empty = Sent::default();
        assert_eq!(lines_for(true, Some(&empty)), Err(NotSent::Unknown));
    }

    /// A fresh store: SQLite in a temporary directory, or a new PostgreSQL database
    /// (`CAUSEWAY_TEST_PG`, default `postgres://postgres@127.0.0.1:5432`), dropped by `done`.
    struct Fresh {
        store: Store,
        _dir: Option<tempfile::TempDir>,
        pg: Option<(String, String)>,
    }

    impl Fresh {
        async fn new(backend: &str) -> Self {
            use sqlx::Executor;
            if backend == "sqlite" {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite:{}", dir.path().join("irc.db").display());
                let store = Store::connect(&url).await.unwrap();
                return Self {
                    store,
                    _dir: Some(dir),
                    pg: None,
                };
            }
            sqlx::any::install_default_drivers();
            let base = std::env::var("CAUSEWAY_TEST_PG")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned());
            let name = format!("irc_test_{:016x}", rand::random::<u64>());
            let admin = sqlx::AnyPool::connect(&format!("{base}/postgres"))
                .await
                .unwrap();
            admin
                .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .await
                .unwrap();
            admin.close().await;
            let store = Store::connect(&format!("{base}/{name}")).await.unwrap();
            Self {
                store,
                _dir: None,
                pg: Some((base, name)),
            }
        }

        async fn done(self) {
            use sqlx::Executor;
            self.store.close().await;
            if let Some((base, name)) = self.pg {
                let admin = sqlx::AnyPool::connect(&format!("{base}/postgres"))
                    .await
                    .unwrap();
                admin
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name}"
                    )))
                    .await
                    .unwrap();
                admin.close().await;
            }
        }
    }

    async fn sent_msgids_are_kept_found_and_forgotten(backend: &str) {
        let fresh = Fresh::new(backend).await;
        let store = &fresh.store;
        assert_eq!(sent_of(store, "libera", "$e1").await.unwrap(), None);
        // A two-line message through Alice's connection, then a relayed one.
        remember(store, "libera", "$e1", "@alice:x", "#chan", "m1")
            .await
            .unwrap();
        remember(store, "libera", "$e1", "@alice:x", "#chan", "m2")
            .await
            .unwrap();
        remember(store, "libera", "$e2", VIA_RELAY, "#chan", "m3")
            .await
            .unwrap();
        let sent = sent_of(store, "libera", "$e1").await.unwrap().unwrap();
        assert_eq!(
            sent,
            Sent {
                target: "#chan".to_owned(),
                via: "@alice:x".to_owned(),
                msgids: vec!["m1".to_owned(), "m2".to_owned()],
            }
        );
        assert_eq!(
            lines_for(true, Some(&sent)).unwrap(),
            ["REDACT #chan m1", "REDACT #chan m2"]
        );
        assert_eq!(
            event_of_msgid(store, "libera", "m2")
                .await
                .unwrap()
                .as_deref(),
            Some("$e1")
        );
        assert_eq!(
            event_of_msgid(store, "oftc", "m2").await.unwrap(),
            None,
            "per network"
        );
        forget(store, "libera", "$e1").await.unwrap();
        assert_eq!(sent_of(store, "libera", "$e1").await.unwrap(), None);
        assert_eq!(event_of_msgid(store, "libera", "m1").await.unwrap(), None);
        assert_eq!(
            event_of_msgid(store, "libera", "m3")
                .await
                .unwrap()
                .as_deref(),
            Some("$e2"),
            "the other message is kept"
        );
        fresh.done().await;
    }

    #[tokio::test]
    async fn sent_msgids_on_sqlite() {
        sent_msgids_are_kept_found_and_forgotten("sqlite").await;
    }

    #[tokio::test]
    async fn sent_msgids_on_postgres() {
        sent_msgids_are_kept_found_and_forgotten("postgres").await;
    }

    /// A scripted IRC server on a loopback socket, speaking hand-written lines: it offers
    /// `caps`, acknowledges what is requested, welcomes, and echoes PRIVMSGs with a `msgid`
    /// (when `echo-message` was acknowledged). Every line it reads goes to `heard`.
    async fn scripted_server(
        caps: &'static str,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (heard, heard_rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            let (mut nick, mut echo, mut next_id) = (String::new(), false, 0);
            // Registration ends with the client's CAP END, as on real servers.
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = heard.send(line.clone());
                let parsed = Line::parse(&line).unwrap();
                let reply = match parsed.command.as_str() {
                    "CAP" if parsed.param(0) == "LS" => format!(":irc.test CAP * LS :{caps}"),
                    "CAP" if parsed.param(0) == "REQ" => {
                        echo = parsed.param(1).split(' ').any(|c| c == "echo-message");
                        format!(":irc.test CAP * ACK :{}", parsed.param(1))
                    }
                    "CAP" if parsed.param(0) == "END" => format!(":irc.test 001 {nick} :Welcome"),
                    "NICK" => {
                        nick = parsed.param(0).to_owned();
                        continue;
                    }
                    "PRIVMSG" if echo => {
                        next_id += 1;
                        format!(
                            "@msgid=id{next_id} :{nick}!u@h PRIVMSG {} :{}",
                            parsed.param(0),
                            parsed.param(1)
                        )
                    }
                    _ => continue,
                };
                write
                    .write_all(format!("{reply}\r\n").as_bytes())
                    .await
                    .unwrap();
            }
        });
        (port, heard_rx)
    }

    /// Records echoes.
    struct Echoed(tokio::sync::mpsc::UnboundedSender<(String, String, String)>);

    #[async_trait::async_trait]
    impl super::super::connection::IrcHandler for Echoed {
        async fn on_registered(&self, _conn: &Connection) {}
        async fn on_line(&self, _conn: &Connection, _line: Line) {}
        async fn on_disconnected(&self, _conn: &Connection, _reason: &str) {}
        async fn on_echo(&self, _conn: &Connection, tag: &str, target: &str, msgid: &str) {
            let _ = self
                .0
                .send((tag.to_owned(), target.to_owned(), msgid.to_owned()));
        }
    }

    fn spec(port: u16) -> super::super::connection::ConnSpec {
        super::super::connection::ConnSpec {
            network: "test".to_owned(),
            host: "127.0.0.1".to_owned(),
            port,
            tls: false,
            password: None,
            sasl: None,
            nick: "alice[m]".to_owned(),
            alt_nicks: Vec::new(),
            username: "alice".to_owned(),
            realname: "Alice".to_owned(),
            rate: 100.0,
            burst: 100,
            max_backoff: std::time::Duration::from_secs(1),
            keys: Default::default(),
        }
    }

    async fn connect(
        caps: &'static str,
    ) -> (
        Connection,
        tokio::sync::mpsc::UnboundedReceiver<String>,
        tokio::sync::mpsc::UnboundedReceiver<(String, String, String)>,
    ) {
        let (port, heard) = scripted_server(caps).await;
        let (echoes, echoed) = tokio::sync::mpsc::unbounded_channel();
        let conn = Connection::spawn(spec(port), std::sync::Arc::new(Echoed(echoes)));
        assert!(
            conn.wait_connected(std::time::Duration::from_secs(10))
                .await
        );
        (conn, heard, echoed)
    }

    async fn next_heard(
        heard: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
        prefix: &str,
    ) -> String {
        let wait = async {
            loop {
                let line = heard.recv().await.expect("the server stopped");
                if line.starts_with(prefix) {
                    return line;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("the server never got a {prefix} line"))
    }

    #[tokio::test]
    async fn where_offered_the_msgids_of_sent_lines_come_back_with_their_echo() {
        let (conn, mut heard, mut echoed) =
            connect("server-time message-tags echo-message draft/message-redaction").await;
        let req = next_heard(&mut heard, "CAP REQ").await;
        assert!(req.contains("draft/message-redaction"), "{req}");
        assert!(offered(&conn));
        conn.send_raw("PRIVMSG #chan :untracked");
        conn.send_tracked("PRIVMSG #chan :first line", "$event");
        conn.send_tracked("PRIVMSG #chan :second line", "$event");
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            (echoed.recv().await.unwrap(), echoed.recv().await.unwrap())
        })
        .await
        .unwrap();
        let tag = |id: &str| ("$event".to_owned(), "#chan".to_owned(), id.to_owned());
        assert_eq!(got, (tag("id2"), tag("id3")));
        conn.stop("done");
    }

    #[tokio::test]
    async fn where_not_offered_it_is_neither_requested_nor_used() {
        let (conn, mut heard, _echoed) = connect("server-time message-tags echo-message").await;
        let req = next_heard(&mut heard, "CAP REQ").await;
        assert!(!req.contains("message-redaction"), "{req}");
        assert!(!offered(&conn));
        assert_eq!(
            lines_for(
                offered(&conn),
                Some(&Sent {
                    target: "#chan".to_owned(),
                    via: VIA_RELAY.to_owned(),
                    msgids: vec!["id1".to_owned()],
                })
            ),
            Err(NotSent::NotOffered)
        );
        conn.stop("done");
    }
}
