//! IRCv3 capability negotiation (`CAP LS 302`, `REQ`, `ACK`/`NAK`, SASL), as a state machine that
//! reads server lines and says what to send. Pure, so it is tested without a server.

use std::collections::BTreeSet;

use super::line::Line;

/// Capabilities the bridge asks for when the server offers them.
pub const WANTED: &[&str] = &[
    "server-time",
    "message-tags",
    "batch",
    "echo-message",
    "draft/chathistory",
    "draft/event-playback",
    "draft/message-redaction",
    "away-notify",
    "account-tag",
    "multi-prefix",
    "sasl",
];

/// SASL credentials of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sasl {
    /// `PLAIN` with account and password.
    Plain {
        /// Account.
        username: String,
        /// Password.
        password: String,
    },
    /// `EXTERNAL` (a TLS client certificate).
    External,
}

/// Where negotiation is.
#[derive(Debug, Default)]
pub struct Negotiation {
    offered: BTreeSet<String>,
    /// What the server acknowledged.
    pub enabled: BTreeSet<String>,
    sasl: Option<Sasl>,
    ended: bool,
    /// Why SASL failed, if it did.
    pub sasl_error: Option<String>,
}

impl Negotiation {
    /// A negotiation that will authenticate with `sasl` if the server offers it.
    pub fn new(sasl: Option<Sasl>) -> Self {
        Self {
            sasl,
            ..Self::default()
        }
    }

    /// The first line to send, before NICK and USER.
    pub fn start() -> &'static str {
        "CAP LS 302"
    }

    /// Whether `CAP END` was sent (or the server does not speak CAP).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// Reads one server line; returns raw lines to send.
    pub fn on_line(&mut self, line: &Line) -> Vec<String> {
        match line.command.as_str() {
            "CAP" => self.on_cap(line),
            "AUTHENTICATE" if line.param(0) == "+" => match &self.sasl {
                Some(Sasl::Plain { username, password }) => {
                    let blob = base64(format!("{username}\0{username}\0{password}").as_bytes());
                    let mut out: Vec<String> = blob
                        .as_bytes()
                        .chunks(400)
                        .map(|c| format!("AUTHENTICATE {}", String::from_utf8_lossy(c)))
                        .collect();
                    if blob.len().is_multiple_of(400) {
                        out.push("AUTHENTICATE +".to_owned());
                    }
                    out
                }
                Some(Sasl::External) => vec!["AUTHENTICATE +".to_owned()],
                None => vec!["AUTHENTICATE *".to_owned()],
            },
            // RPL_SASLSUCCESS, or already logged in.
            "903" | "907" => self.end(),
            // RPL_NICKLOCKED, ERR_SASLFAIL, ERR_SASLTOOLONG, ERR_SASLABORTED
            "902" | "904" | "905" | "906" => {
                self.sasl_error = Some(line.params.last().cloned().unwrap_or_default());
                self.end()
            }
            // RPL_WELCOME without negotiation: the server has no CAP.
            "001" => {
                self.ended = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn on_cap(&mut self, line: &Line) -> Vec<String> {
        let sub = line.param(1).to_ascii_uppercase();
        let list = line.params.last().cloned().unwrap_or_default();
        let names = list.split_whitespace().map(|c| {
            c.split('=')
                .next()
                .unwrap_or(c)
                .trim_start_matches('-')
                .to_owned()
        });
        match sub.as_str() {
            "LS" => {
                self.offered.extend(names);
                // `CAP * LS * :...` continues on the next line.
                if line.params.len() >= 4 && line.param(2) == "*" {
                    return Vec::new();
                }
                let wanted: Vec<&str> = WANTED
                    .iter()
                    .copied()
                    .filter(|c| self.offered.contains(*c))
                    .filter(|c| *c != "sasl" || self.sasl.is_some())
                    .collect();
                if wanted.is_empty() || self.ended {
                    return self.end();
                }
                vec![format!("CAP REQ :{}", wanted.join(" "))]
            }
            "ACK" => {
                for name in list.split_whitespace() {
                    match name.strip_prefix('-') {
                        Some(gone) => {
                            self.enabled.remove(gone);
                        }
                        None => {
                            self.enabled.insert(name.to_owned());
                        }
                    }
                }
                if self.ended {
                    return Vec::new();
                }
                match &self.sasl {
                    Some(Sasl::Plain { .. }) if self.enabled.contains("sasl") => {
                        vec!["AUTHENTICATE PLAIN".to_owned()]
                    }
                    Some(Sasl::External) if self.enabled.contains("sasl") => {
                        vec!["AUTHENTICATE EXTERNAL".to_owned()]
                    }
                    _ => self.end(),
                }
            }
            "NAK" => self.end(),
            "NEW" => {
                let wanted: Vec<String> = names
                    .filter(|c| WANTED.contains(&c.as_str()) && c != "sasl")
                    .collect();
                if wanted.is_empty() {
                    Vec::new()
                } else {
                    vec![format!("CAP REQ :{}", wanted.join(" "))]
                }
            }
            "DEL" => {
                for name in names {
                    self.enabled.remove(&name);
                }
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn end(&mut self) -> Vec<String> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec!["CAP END".to_owned()]
    }
}

/// Standard base64 with padding (SASL PLAIN); small enough not to need a crate.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(n: &mut Negotiation, raw: &str) -> Vec<String> {
        n.on_line(&Line::parse(raw).unwrap())
    }

    #[test]
    fn offered_caps_are_requested_across_multiline_ls() {
        let mut n = Negotiation::new(None);
        assert!(feed(&mut n, ":s CAP * LS * :server-time batch foo").is_empty());
        let out = feed(
            &mut n,
            ":s CAP * LS :echo-message sasl=PLAIN,EXTERNAL message-tags",
        );
        assert_eq!(
            out,
            ["CAP REQ :server-time message-tags batch echo-message"]
        );
        assert_eq!(
            feed(
                &mut n,
                ":s CAP * ACK :server-time message-tags batch echo-message"
            ),
            ["CAP END"]
        );
        assert!(n.ended());
        assert!(n.enabled.contains("echo-message"));
    }

    #[test]
    fn sasl_plain_authenticates_before_cap_end() {
        let sasl = Sasl::Plain {
            username: "bot".into(),
            password: "pw".into(),
        };
        let mut n = Negotiation::new(Some(sasl));
        assert_eq!(feed(&mut n, ":s CAP * LS :sasl"), ["CAP REQ :sasl"]);
        assert_eq!(feed(&mut n, ":s CAP * ACK :sasl"), ["AUTHENTICATE PLAIN"]);
        assert_eq!(
            feed(&mut n, "AUTHENTICATE +"),
            ["AUTHENTICATE Ym90AGJvdABwdw=="]
        );
        assert_eq!(
            feed(&mut n, ":s 903 * :SASL authentication successful"),
            ["CAP END"]
        );
        assert_eq!(n.sasl_error, None);
    }

    #[test]
    fn a_sasl_failure_is_remembered_and_registration_goes_on() {
        let mut n = Negotiation::new(Some(Sasl::External));
        feed(&mut n, ":s CAP * LS :sasl");
        assert_eq!(
            feed(&mut n, ":s CAP * ACK :sasl"),
            ["AUTHENTICATE EXTERNAL"]
        );
        assert_eq!(feed(&mut n, "AUTHENTICATE +"), ["AUTHENTICATE +"]);
        assert_eq!(
            feed(&mut n, ":s 904 * :SASL authentication failed"),
            ["CAP END"]
        );
        assert_eq!(n.sasl_error.as_deref(), Some("SASL authentication failed"));
    }

    #[test]
    fn nothing_wanted_or_a_nak_ends_at_once() {
        let mut n = Negotiation::new(None);
        assert_eq!(feed(&mut n, ":s CAP * LS :foo bar sasl"), ["CAP END"]);
        let mut n = Negotiation::new(None);
        feed(&mut n, ":s CAP * LS :batch");
        assert_eq!(feed(&mut n, ":s CAP * NAK :batch"), ["CAP END"]);
        assert!(n.enabled.is_empty());
    }

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
