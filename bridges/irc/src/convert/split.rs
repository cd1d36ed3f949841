//! Splitting a message into IRC lines: a line is at most 512 bytes with its CRLF, and the server
//! prefixes what it relays with `:nick!user@host`, so the text of one PRIVMSG gets what is left.
//! Splits prefer spaces and never cut a UTF-8 character.

/// Bytes the server may add in front of a relayed line for the source: `:` + nick + `!` + user
/// (up to 10) + `@` + host (up to 63) + space.
fn source_len(nick: &str) -> usize {
    1 + nick.len() + 1 + 10 + 1 + 63 + 1
}

/// How many bytes of text fit in one `PRIVMSG target :text` (or NOTICE) from `nick`. An ACTION
/// takes 9 more bytes for its CTCP wrapper, which the caller subtracts.
///
/// ```
/// use irc_bridge::convert::split::text_budget;
/// assert_eq!(text_budget("bob", "#rust"), 512 - 2 - 80 - "PRIVMSG #rust :".len());
/// ```
pub fn text_budget(nick: &str, target: &str) -> usize {
    512usize
        .saturating_sub(2)
        .saturating_sub(source_len(nick))
        .saturating_sub("PRIVMSG  :".len() + target.len())
        .max(16)
}

/// Splits `text` into lines of at most `max_bytes` bytes: at newlines, then at the last space
/// that fits, else at the last character boundary. Empty lines are dropped (IRC cannot send them).
///
/// ```
/// use irc_bridge::convert::split::split_lines;
/// assert_eq!(split_lines("one two three", 8), ["one two", "three"]);
/// assert_eq!(split_lines("ééé", 4), ["éé", "é"]);
/// ```
pub fn split_lines(text: &str, max_bytes: usize) -> Vec<String> {
    let max = max_bytes.max(4);
    let mut out = Vec::new();
    for line in text.split('\n') {
        let mut rest = line.trim_end_matches('\r');
        while rest.len() > max {
            let mut cut = max;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let at_space = rest[..cut].rfind(' ').filter(|i| *i > 0);
            let (head, tail) = match at_space {
                Some(space) => (&rest[..space], &rest[space + 1..]),
                None => rest.split_at(cut),
            };
            out.push(head.to_owned());
            rest = tail;
        }
        if !rest.is_empty() {
            out.push(rest.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_is_over_the_budget_and_nothing_is_lost() {
        let text = "lorem ipsum dolor sit amet ".repeat(40) + "ünïcödé ☃☃☃ 🎉🎉";
        for max in [16, 31, 100, 400] {
            let lines = split_lines(&text, max);
            assert!(lines.iter().all(|l| l.len() <= max), "{max}: {lines:?}");
            let joined: String = lines.join(" ");
            let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(squash(&joined), squash(&text));
        }
    }

    #[test]
    fn utf8_is_never_cut_even_without_spaces() {
        let text = "🎉".repeat(50);
        let lines = split_lines(&text, 10);
        assert!(
            lines
                .iter()
                .all(|l| l.len() <= 10 && l.chars().all(|c| c == '🎉'))
        );
        assert_eq!(lines.concat(), text);
    }

    #[test]
    fn newlines_split_and_empty_lines_go() {
        assert_eq!(split_lines("a\n\nb\r\nc", 100), ["a", "b", "c"]);
    }

    #[test]
    fn a_full_line_on_the_wire_stays_within_512_bytes() {
        let nick = "a_rather_long_nick[m]";
        let target = "#some-channel";
        let budget = text_budget(nick, target);
        for line in split_lines(&"word ".repeat(300), budget) {
            let wire = format!(
                ":{nick}!{}@{} PRIVMSG {target} :{line}\r\n",
                "u".repeat(10),
                "h".repeat(63)
            );
            assert!(wire.len() <= 512, "{}", wire.len());
        }
    }
}
