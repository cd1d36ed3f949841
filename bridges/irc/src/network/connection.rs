//! One IRC connection (the relay bot's, or a Matrix user's): connects with the `irc` crate,
//! negotiates capabilities, keeps a wanted set of channels joined across reconnects, reconnects
//! with exponential backoff and jitter, and sends queued lines in order under flood control.
//! Lines queued while the server is unreachable wait and go out, in order, once it is back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use irc::client::Client;
use irc::client::data::Config as ClientConfig;
use irc::proto::Message;
use rand::Rng;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use super::caps::{Negotiation, Sasl};
use super::line::Line;
use crate::convert::nick::irc_lower;

/// How a connection is made.
#[derive(Debug, Clone)]
pub struct ConnSpec {
    /// Network name (logs).
    pub network: String,
    /// Server host.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// TLS.
    pub tls: bool,
    /// Server password.
    pub password: Option<String>,
    /// SASL.
    pub sasl: Option<Sasl>,
    /// Nick to ask for.
    pub nick: String,
    /// Nicks to try when it is taken.
    pub alt_nicks: Vec<String>,
    /// Username (ident).
    pub username: String,
    /// Real name (GECOS).
    pub realname: String,
    /// Lines per second after the burst.
    pub rate: f64,
    /// Lines sent back to back.
    pub burst: u32,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Channel keys (`+k`), by lowercased channel.
    pub keys: BTreeMap<String, String>,
}

/// What a connection tells its owner.
#[async_trait]
pub trait IrcHandler: Send + Sync + 'static {
    /// Registered (after every reconnect); channels are being joined.
    async fn on_registered(&self, conn: &Connection);
    /// A line from the server.
    async fn on_line(&self, conn: &Connection, line: Line);
    /// The connection was lost (or could not be made); a retry follows unless stopped.
    async fn on_disconnected(&self, conn: &Connection, reason: &str);
    /// The server echoed (`echo-message`) a line sent with [`Connection::send_tracked`], with
    /// the `msgid` it gave it.
    async fn on_echo(&self, _conn: &Connection, _tag: &str, _target: &str, _msgid: &str) {}
}

/// Most tracked lines waiting for their echo; older ones are forgotten (they were refused).
const MAX_TRACKED: usize = 1024;

/// Lines sent with a tag, waiting for the server's echo, oldest first. The server echoes a
/// connection's messages in the order it received them, so an echo belongs to the oldest
/// waiting line with the same target and text; older ones without an echo were refused.
#[derive(Debug, Default)]
pub(crate) struct Echoes {
    waiting: VecDeque<(String, String, String)>,
}

impl Echoes {
    /// Remembers a sent `PRIVMSG`/`NOTICE` line's target and text under `tag`.
    pub(crate) fn sent(&mut self, target: &str, text: &str, tag: &str) {
        if self.waiting.len() >= MAX_TRACKED {
            self.waiting.pop_front();
        }
        self.waiting.push_back((
            irc_lower(target),
            text.trim_end().to_owned(),
            tag.to_owned(),
        ));
    }

    /// The tag of the line an echo (`target`, `text`) answers, if one waits for it.
    pub(crate) fn echoed(&mut self, target: &str, text: &str) -> Option<String> {
        let (target, text) = (irc_lower(target), text.trim_end());
        let at = self
            .waiting
            .iter()
            .position(|(t, x, _)| *t == target && x == text)?;
        let (_, _, tag) = self.waiting.drain(..=at).next_back()?;
        Some(tag)
    }
}

#[derive(Debug, Default)]
struct State {
    nick: String,
    /// The nick to ask for on (re)connecting: the spec's, until changed with `set_wanted_nick`.
    wanted_nick: String,
    caps: BTreeSet<String>,
    /// Channels to be in (lowercased), rejoined after every reconnect.
    channels: BTreeSet<String>,
    connected: bool,
    /// Registered at least once (a new connection that never did may be refused for good).
    registered_once: bool,
}

struct Inner {
    spec: ConnSpec,
    state: Mutex<State>,
    queue: mpsc::UnboundedSender<Message>,
    stop: watch::Sender<bool>,
    up: watch::Sender<bool>,
    /// Every line received, for whoever waits for an answer (commands); cloned only while
    /// someone listens.
    lines: broadcast::Sender<Line>,
    echoes: Mutex<Echoes>,
}

/// A handle to one connection; cheap to clone.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("network", &self.inner.spec.network)
            .field("nick", &self.nick())
            .finish()
    }
}

impl Connection {
    /// Starts connecting in the background.
    pub fn spawn(spec: ConnSpec, handler: Arc<dyn IrcHandler>) -> Self {
        let (queue, queue_rx) = mpsc::unbounded_channel();
        let state = State {
            nick: spec.nick.clone(),
            wanted_nick: spec.nick.clone(),
            ..State::default()
        };
        let conn = Self {
            inner: Arc::new(Inner {
                spec,
                state: Mutex::new(state),
                queue,
                stop: watch::channel(false).0,
                up: watch::channel(false).0,
                lines: broadcast::channel(256).0,
                echoes: Mutex::new(Echoes::default()),
            }),
        };
        tokio::spawn(conn.clone().run(queue_rx, handler));
        conn
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The nick in use now (or asked for, before registration).
    pub fn nick(&self) -> String {
        self.state().nick.clone()
    }

    /// Whether this connection's nick is `nick`.
    pub fn is_me(&self, nick: &str) -> bool {
        irc_lower(&self.state().nick) == irc_lower(nick)
    }

    /// Whether the server acknowledged a capability.
    pub fn has_cap(&self, cap: &str) -> bool {
        self.state().caps.contains(cap)
    }

    /// Whether registered now.
    pub fn is_connected(&self) -> bool {
        self.state().connected
    }

    /// Whether `other` is a handle to this same connection.
    pub fn is_same(&self, other: &Connection) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether it has registered at least once (it may be reconnecting now).
    pub fn has_registered(&self) -> bool {
        self.state().registered_once
    }

    /// Waits until registered, at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut up = self.inner.up.subscribe();
        tokio::time::timeout(timeout, up.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The spec.
    pub fn spec(&self) -> &ConnSpec {
        &self.inner.spec
    }

    /// The nick to ask for from the next connection on (a `NICK` for now is the caller's).
    pub fn set_wanted_nick(&self, nick: &str) {
        self.state().wanted_nick = nick.to_owned();
    }

    /// The channels it is in, or joins when connected (lowercased).
    pub fn channels(&self) -> Vec<String> {
        self.state().channels.iter().cloned().collect()
    }

    /// Whether `channel` is wanted.
    pub fn wants(&self, channel: &str) -> bool {
        self.state().channels.contains(&irc_lower(channel))
    }

    /// Joins a channel now (if connected) and after every reconnect.
    pub fn join(&self, channel: &str) {
        let new = self.state().channels.insert(irc_lower(channel));
        if new {
            for line in join_lines(&[channel.to_owned()], &self.inner.spec.keys) {
                self.send_raw(&line);
            }
        }
    }

    /// Leaves a channel and stops rejoining it.
    pub fn part(&self, channel: &str, reason: &str) {
        if self.state().channels.remove(&irc_lower(channel)) {
            self.send_raw(&format!("PART {channel} :{reason}"));
        }
    }

    /// Forgets a channel without parting (we were kicked).
    pub fn forget(&self, channel: &str) -> bool {
        self.state().channels.remove(&irc_lower(channel))
    }

    /// Queues a line; lines go out in order under flood control, after registration.
    pub fn send(&self, message: Message) {
        let _ = self.inner.queue.send(message);
    }

    /// Queues a `PRIVMSG`/`NOTICE` line whose echo (with the server's `msgid`) is wanted:
    /// [`IrcHandler::on_echo`] gets `tag` when it comes (only with `echo-message`).
    pub fn send_tracked(&self, raw: &str, tag: &str) {
        if let Some(line) = Line::parse(raw)
            && matches!(line.command.as_str(), "PRIVMSG" | "NOTICE")
        {
            self.echoes().sent(line.param(0), line.param(1), tag);
        }
        self.send_raw(raw);
    }

    fn echoes(&self) -> MutexGuard<'_, Echoes> {
        self.inner
            .echoes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every line received from now on (until the receiver is dropped), for waiting for the
    /// answer to a command.
    pub fn lines(&self) -> broadcast::Receiver<Line> {
        self.inner.lines.subscribe()
    }

    /// Queues a raw line (`PRIVMSG #a :hi`).
    pub fn send_raw(&self, raw: &str) {
        match raw.parse::<Message>() {
            Ok(message) => self.send(message),
            Err(e) => tracing::warn!(line = raw, error = %e, "not sending an unparsable line"),
        }
    }

    /// Disconnects with a QUIT and stops reconnecting.
    pub fn stop(&self, reason: &str) {
        self.send_raw(&format!("QUIT :{reason}"));
        let _ = self.inner.stop.send(true);
    }

    async fn run(self, mut queue: mpsc::UnboundedReceiver<Message>, handler: Arc<dyn IrcHandler>) {
        let spec = self.inner.spec.clone();
        let mut stop = self.inner.stop.subscribe();
        let mut attempt: u32 = 0;
        loop {
            if *stop.borrow() {
                break;
            }
            let started = Instant::now();
            let result = self.session(&mut queue, &handler, &mut stop).await;
            let was_up = {
                let mut state = self.state();
                std::mem::replace(&mut state.connected, false)
            };
            let _ = self.inner.up.send(false);
            let reason = match &result {
                Ok(()) => "closed".to_owned(),
                Err(e) => e.clone(),
            };
            if *stop.borrow() {
                break;
            }
            tracing::warn!(network = %spec.network, nick = %self.nick(), reason, "IRC connection lost");
            handler.on_disconnected(&self, &reason).await;
            if was_up && started.elapsed() > Duration::from_secs(60) {
                attempt = 0;
            }
            let delay = backoff(attempt, spec.max_backoff);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// One connection, from connect to loss. Lines taken from the queue are sent only once
    /// registered, so nothing queued is lost to a dead connection before it was written.
    async fn session(
        &self,
        queue: &mut mpsc::UnboundedReceiver<Message>,
        handler: &Arc<dyn IrcHandler>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let spec = &self.inner.spec;
        let nick = self.state().wanted_nick.clone();
        let config = ClientConfig {
            nickname: Some(nick.clone()),
            alt_nicks: spec.alt_nicks.clone(),
            username: Some(spec.username.clone()),
            realname: Some(spec.realname.clone()),
            server: Some(spec.host.clone()),
            port: Some(spec.port),
            use_tls: Some(spec.tls),
            ping_time: Some(60),
            ping_timeout: Some(30),
            encoding: Some("UTF-8".to_owned()),
            ..ClientConfig::default()
        };
        let connect = Client::from_config(config);
        let mut client = match tokio::time::timeout(Duration::from_secs(30), connect).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(format!(
                    "cannot connect to {}:{}: {e}",
                    spec.host, spec.port
                ));
            }
            Err(_) => {
                return Err(format!(
                    "cannot connect to {}:{}: timed out",
                    spec.host, spec.port
                ));
            }
        };
        let sender = client.sender();
        let mut stream = client.stream().map_err(|e| e.to_string())?;
        let raw = |line: &str| -> Result<(), String> {
            let message: Message = line.parse().map_err(|e| format!("{e}"))?;
            sender.send(message).map_err(|e| e.to_string())
        };
        let mut negotiation = Negotiation::new(spec.sasl.clone());
        raw(Negotiation::start())?;
        if let Some(password) = &spec.password {
            raw(&format!("PASS {password}"))?;
        }
        raw(&format!("NICK {nick}"))?;
        raw(&format!("USER {} 0 * :{}", spec.username, spec.realname))?;
        let mut bucket = TokenBucket::new(spec.rate, spec.burst);
        let mut pending: Option<Message> = None;
        let mut registered = false;
        loop {
            let ready_at = bucket.ready_at();
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    // Flush what is queued (the QUIT last), then go. The `irc` crate writes
                    // only while its stream is polled: read on until the server closes the
                    // connection after the QUIT, or a moment has passed. (Sleeping instead
                    // dropped the QUIT: the server saw "Connection closed".)
                    while let Ok(message) = queue.try_recv() {
                        let _ = sender.send(message);
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Some(Ok(_)) = stream.next().await {}
                    })
                    .await;
                    return Ok(());
                }
                received = stream.next() => {
                    let message = match received {
                        Some(Ok(message)) => message,
                        Some(Err(e)) => return Err(e.to_string()),
                        None => return Err("the server closed the connection".to_owned()),
                    };
                    let line = Line::from_message(&message);
                    if !negotiation.ended() || line.command == "AUTHENTICATE" {
                        for reply in negotiation.on_line(&line) {
                            raw(&reply)?;
                        }
                    }
                    match line.command.as_str() {
                        "001" => {
                            registered = true;
                            let channels: Vec<String> = {
                                let mut state = self.state();
                                state.nick = line.param(0).to_owned();
                                state.caps = negotiation.enabled.clone();
                                state.connected = true;
                                state.registered_once = true;
                                state.channels.iter().cloned().collect()
                            };
                            if let Some(error) = &negotiation.sasl_error {
                                tracing::warn!(network = %spec.network, error, "SASL failed; connected without it");
                            }
                            tracing::info!(network = %spec.network, nick = %self.nick(), caps = ?negotiation.enabled, "IRC registered");
                            for join in join_lines(&channels, &spec.keys) {
                                raw(&join)?;
                            }
                            let _ = self.inner.up.send(true);
                            handler.on_registered(self).await;
                        }
                        "NICK" if line.nick.as_deref().is_some_and(|n| self.is_me(n)) => {
                            self.state().nick = line.param(0).to_owned();
                        }
                        "CAP" if negotiation.ended() => {
                            for reply in negotiation.on_line(&line) {
                                raw(&reply)?;
                            }
                            self.state().caps = negotiation.enabled.clone();
                        }
                        "ERROR" => return Err(format!("server error: {}", line.param(0))),
                        "PRIVMSG" | "NOTICE" if line.nick.as_deref().is_some_and(|n| self.is_me(n)) => {
                            let tag = self.echoes().echoed(line.param(0), line.param(1));
                            if let (Some(tag), Some(msgid)) = (tag, line.msgid()) {
                                handler.on_echo(self, &tag, line.param(0), msgid).await;
                            }
                        }
                        _ => {}
                    }
                    if self.inner.lines.receiver_count() > 0 {
                        let _ = self.inner.lines.send(line.clone());
                    }
                    handler.on_line(self, line).await;
                }
                _ = tokio::time::sleep_until(ready_at), if pending.is_some() => {
                    if let Some(message) = pending.take() {
                        bucket.take();
                        sender.send(message).map_err(|e| e.to_string())?;
                    }
                }
                next = queue.recv(), if registered && pending.is_none() => {
                    let Some(message) = next else { return Ok(()) };
                    if bucket.ready_at() <= Instant::now() {
                        bucket.take();
                        sender.send(message).map_err(|e| e.to_string())?;
                    } else {
                        pending = Some(message);
                    }
                }
            }
        }
    }
}

/// `JOIN` lines for channels, ten a line; channels with a key first in their line, since keys
/// go to a line's channels in order (`JOIN #a,#b,#c ka,kb`).
fn join_lines(channels: &[String], keys: &BTreeMap<String, String>) -> Vec<String> {
    channels
        .chunks(10)
        .map(|chunk| {
            let (keyed, open): (Vec<&String>, Vec<&String>) =
                chunk.iter().partition(|c| keys.contains_key(&irc_lower(c)));
            let names: Vec<&str> = keyed.iter().chain(&open).map(|c| c.as_str()).collect();
            let keys: Vec<&str> = keyed.iter().map(|c| keys[&irc_lower(c)].as_str()).collect();
            if keys.is_empty() {
                format!("JOIN {}", names.join(","))
            } else {
                format!("JOIN {} {}", names.join(","), keys.join(","))
            }
        })
        .collect()
}

/// `2^attempt` seconds, at most `max`, times a random factor in [0.5, 1.5).
fn backoff(attempt: u32, max: Duration) -> Duration {
    let base = Duration::from_secs(1u64 << attempt.min(16)).min(max);
    base.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// Flood control: `burst` lines at once, then `rate` per second.
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: u32) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate,
            at: Instant::now(),
        }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    fn ready_at(&mut self) -> Instant {
        self.refill();
        if self.tokens >= 1.0 {
            self.at
        } else {
            self.at + Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }

    fn take(&mut self) {
        self.refill();
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let max = Duration::from_secs(300);
        for attempt in 0..20 {
            let d = backoff(attempt, max);
            let base = Duration::from_secs(1u64 << attempt.min(16)).min(max);
            assert!(
                d >= base.mul_f64(0.5) && d < base.mul_f64(1.5),
                "{attempt}: {d:?}"
            );
        }
    }

    #[test]
    fn an_echo_finds_its_line_and_lines_without_an_echo_are_forgotten() {
        let mut echoes = Echoes::default();
        echoes.sent("#Chan", "one", "$a");
        echoes.sent("#chan", "two", "$b");
        echoes.sent("#chan", "two", "$c");
        echoes.sent("bob", "two", "$d");
        // "one" was refused (no echo): the echo of the first "two" takes it away too.
        assert_eq!(echoes.echoed("#chan", "two").as_deref(), Some("$b"));
        assert_eq!(echoes.echoed("#chan", "one"), None);
        assert_eq!(echoes.echoed("#CHAN", "two ").as_deref(), Some("$c"));
        assert_eq!(
            echoes.echoed("#chan", "two"),
            None,
            "bob's is not the channel's"
        );
        assert_eq!(echoes.echoed("Bob", "two").as_deref(), Some("$d"));
        assert!(echoes.waiting.is_empty());
    }

    #[test]
    fn tracked_lines_are_bounded() {
        let mut echoes = Echoes::default();
        for i in 0..MAX_TRACKED + 10 {
            echoes.sent("#c", &format!("line {i}"), "t");
        }
        assert_eq!(echoes.waiting.len(), MAX_TRACKED);
        assert_eq!(
            echoes.echoed("#c", "line 3"),
            None,
            "the oldest were forgotten"
        );
        assert!(echoes.echoed("#c", "line 20").is_some());
    }

    #[test]
    fn keyed_channels_join_with_their_keys_first() {
        let keys = BTreeMap::from([("#secret".to_owned(), "hunter2".to_owned())]);
        let channels: Vec<String> = ["#open", "#Secret"].map(str::to_owned).into();
        assert_eq!(join_lines(&channels, &keys), ["JOIN #Secret,#open hunter2"]);
        let many: Vec<String> = (0..12).map(|i| format!("#c{i}")).collect();
        assert_eq!(
            join_lines(&many, &keys),
            [
                "JOIN #c0,#c1,#c2,#c3,#c4,#c5,#c6,#c7,#c8,#c9",
                "JOIN #c10,#c11"
            ]
        );
    }

    #[tokio::test]
    async fn the_bucket_allows_a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(20.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(bucket.ready_at() <= Instant::now());
            bucket.take();
        }
        let next = bucket.ready_at();
        assert!(
            next >= start + Duration::from_millis(45),
            "{:?}",
            next - start
        );
        tokio::time::sleep_until(next).await;
        bucket.take();
        let after = bucket.ready_at() - start;
        assert!(after >= Duration::from_millis(95), "{after:?}");
    }
}
