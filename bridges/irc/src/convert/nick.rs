//! Nicks: RFC 1459 case mapping, ghost ids for IRC users, and IRC nicks for Matrix users.

use appservice_sdk::bridge::Bridge;

/// The ghost localpart prefix: IRC user `Bob` on network `libera` is `@irc_libera_bob:domain`.
pub const GHOST_PREFIX: &str = "irc_";

/// Lowercases a nick or channel under the `rfc1459` case mapping (the IRC default), where
/// `[]\~` are the upper case of `{}|^`.
///
/// ```
/// assert_eq!(irc_bridge::convert::nick::irc_lower("Bob[Away]"), "bob{away}");
/// ```
pub fn irc_lower(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether two nicks or channels are the same to IRC.
pub fn same(a: &str, b: &str) -> bool {
    irc_lower(a) == irc_lower(b)
}

/// The SDK's remote id of an IRC user: `<network>_<lowercased nick>`; the ghost's localpart is
/// the ghost prefix and this id with what Matrix does not allow in a localpart escaped as `=xx`.
pub fn ghost_remote_id(network: &str, nick: &str) -> String {
    format!("{network}_{}", irc_lower(nick))
}

/// The localpart of the ghost of `nick` on `network`.
///
/// ```
/// use irc_bridge::convert::nick::ghost_localpart;
/// assert_eq!(ghost_localpart("libera", "Bob"), "irc_libera_bob");
/// assert_eq!(ghost_localpart("libera", "b[o]b|"), "irc_libera_b=7bo=7db=7c");
/// ```
pub fn ghost_localpart(network: &str, nick: &str) -> String {
    Bridge::ghost_localpart_for(GHOST_PREFIX, &ghost_remote_id(network, nick))
}

/// The IRC nick behind a ghost localpart, for one of `networks`: `(network, nick)`. The nick comes
/// back lowercased, which IRC treats as the same nick.
pub fn nick_of_ghost<'a>(
    localpart: &str,
    networks: impl IntoIterator<Item = &'a str>,
) -> Option<(String, String)> {
    let rest = localpart.strip_prefix(GHOST_PREFIX)?;
    let network = networks
        .into_iter()
        .filter(|n| rest.starts_with(&format!("{n}_")))
        .max_by_key(|n| n.len())?;
    let escaped = &rest[network.len() + 1..];
    let mut bytes = Vec::with_capacity(escaped.len());
    let mut iter = escaped.bytes();
    while let Some(b) = iter.next() {
        if b == b'=' {
            let hex = [iter.next()?, iter.next()?];
            let hex = std::str::from_utf8(&hex).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    let nick = String::from_utf8(bytes).ok()?;
    is_valid_nick(&nick).then(|| (network.to_owned(), nick))
}

/// Whether IRC accepts `nick` (RFC 2812 letters, digits and specials; not starting with a digit or `-`).
pub fn is_valid_nick(nick: &str) -> bool {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || is_special(first)) && nick.chars().all(is_nick_char)
}

fn is_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

fn is_nick_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || is_special(c) || c == '-'
}

/// The IRC nick of a Matrix user from the nick template (`{displayname}` and `{localpart}` are
/// replaced): characters IRC does not allow are dropped, spaces become `_`, and the result is cut
/// to `max_len` bytes, keeping the template's own text (such as `[m]`).
///
/// ```
/// use irc_bridge::convert::nick::puppet_nick;
/// assert_eq!(puppet_nick("{displayname}[m]", "Alice Liddell", "alice", 30), "Alice_Liddell[m]");
/// assert_eq!(puppet_nick("{displayname}[m]", "Zoë ☃", "zoe", 30), "Zo_[m]");
/// assert_eq!(puppet_nick("{displayname}[m]", "42", "u42", 30), "_42[m]");
/// assert_eq!(puppet_nick("{displayname}[m]", "averyveryverylongname", "x", 12), "averyvery[m]");
/// ```
pub fn puppet_nick(template: &str, displayname: &str, localpart: &str, max_len: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .filter_map(|c| match c {
                ' ' => Some('_'),
                c if is_nick_char(c) => Some(c),
                _ => None,
            })
            .collect()
    };
    let mut name = clean(displayname.trim());
    if name.trim_matches('_').is_empty() {
        name = clean(localpart);
    }
    let fixed = template
        .replace("{displayname}", "")
        .replace("{localpart}", "");
    let room = max_len.saturating_sub(fixed.len()).max(1);
    name.truncate(room);
    let mut nick = template
        .replace("{displayname}", &name)
        .replace("{localpart}", &clean(localpart));
    if !nick.starts_with(|c: char| c.is_ascii_alphabetic() || is_special(c)) {
        nick.insert(0, '_');
        if nick.len() > max_len {
            // Cut from the name part, which comes first in every sensible template.
            nick.remove(1);
        }
    }
    nick
}

/// Other nicks to try when `nick` is taken: underscores, then digits, before any `[m]`-like suffix.
///
/// ```
/// let alts = irc_bridge::convert::nick::alternative_nicks("alice[m]", 3);
/// assert_eq!(alts, ["alice_[m]", "alice1[m]", "alice2[m]"]);
/// ```
pub fn alternative_nicks(nick: &str, count: usize) -> Vec<String> {
    let split = nick.find('[').filter(|i| *i > 0).unwrap_or(nick.len());
    let (base, suffix) = nick.split_at(split);
    let mut out = vec![format!("{base}_{suffix}")];
    out.extend((1..count).map(|i| format!("{base}{i}{suffix}")));
    out.truncate(count);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_mapping_treats_brackets_as_case() {
        assert!(same("[Bob]", "{bob}"));
        assert!(same("a\\b~", "A|B^"));
        assert!(!same("bob", "bob_"));
    }

    #[test]
    fn ghost_ids_are_valid_localparts_and_come_back_to_the_nick() {
        for nick in ["Bob", "b[o]b", "x^y`z", "a-b_c", "d|e\\f", "Zz{}"] {
            let local = ghost_localpart("libera", nick);
            assert!(
                local
                    .chars()
                    .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '=' | '-' | '/')),
                "{local}"
            );
            let (network, back) = nick_of_ghost(&local, ["libera", "oftc"]).unwrap();
            assert_eq!(network, "libera");
            assert!(same(&back, nick), "{nick} -> {local} -> {back}");
        }
    }

    #[test]
    fn the_longest_network_name_wins_when_one_prefixes_another() {
        let local = ghost_localpart("lib_era", "bob");
        assert_eq!(
            nick_of_ghost(&local, ["lib", "lib_era"]),
            Some(("lib_era".to_owned(), "bob".to_owned()))
        );
        assert_eq!(nick_of_ghost("irc_nowhere_bob", ["libera"]), None);
        assert_eq!(nick_of_ghost("telegram_1", ["libera"]), None);
    }

    #[test]
    fn nicks_are_checked_like_irc_does() {
        assert!(is_valid_nick("alice[m]"));
        assert!(is_valid_nick("_x"));
        assert!(!is_valid_nick("1abc"));
        assert!(!is_valid_nick("-abc"));
        assert!(!is_valid_nick("a b"));
        assert!(!is_valid_nick(""));
    }

    #[test]
    fn puppet_nicks_are_valid_for_any_displayname() {
        for name in [
            "",
            "   ",
            "☃☃",
            "Ünïcode Name",
            "0day",
            "-dash",
            "a".repeat(100).as_str(),
        ] {
            let nick = puppet_nick("{displayname}[m]", name, "some.user", 16);
            assert!(is_valid_nick(&nick), "{name:?} -> {nick:?}");
            assert!(nick.len() <= 16, "{nick}");
            assert!(nick.ends_with("[m]"), "{nick}");
        }
        assert_eq!(puppet_nick("{displayname}[m]", "☃", "bob", 30), "bob[m]");
        assert_eq!(puppet_nick("m_{localpart}", "Bob", "bob", 30), "m_bob");
    }
}
