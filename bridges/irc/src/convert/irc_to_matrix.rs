//! IRC text to Matrix content: mIRC control codes become HTML, `/me` becomes `m.emote`, nicks of
//! bridged Matrix users become pills.

use appservice_sdk::format::{escape_html, mention_pill};
use serde_json::{Value, json};

/// The 16 mIRC colours, as Matrix HTML colours.
pub const PALETTE: [&str; 16] = [
    "#ffffff", "#000000", "#00007f", "#009300", "#ff0000", "#7f0000", "#9c009c", "#fc7f00",
    "#ffff00", "#00fc00", "#009393", "#00ffff", "#0000fc", "#ff00ff", "#7f7f7f", "#d2d2d2",
];

const BOLD: char = '\u{02}';
const COLOR: char = '\u{03}';
const HEX_COLOR: char = '\u{04}';
const RESET: char = '\u{0f}';
const MONOSPACE: char = '\u{11}';
const REVERSE: char = '\u{16}';
const ITALIC: char = '\u{1d}';
const STRIKE: char = '\u{1e}';
const UNDERLINE: char = '\u{1f}';

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    italic: bool,
    underline: bool,
    strike: bool,
    monospace: bool,
    fg: Option<String>,
    bg: Option<String>,
}

impl Style {
    fn open(&self, out: &mut String) {
        if self.fg.is_some() || self.bg.is_some() {
            out.push_str("<font");
            if let Some(fg) = &self.fg {
                out.push_str(&format!(" data-mx-color=\"{fg}\""));
            }
            if let Some(bg) = &self.bg {
                out.push_str(&format!(" data-mx-bg-color=\"{bg}\""));
            }
            out.push('>');
        }
        for (on, tag) in self.tags() {
            if on {
                out.push_str(&format!("<{tag}>"));
            }
        }
    }

    fn close(&self, out: &mut String) {
        for (on, tag) in self.tags().into_iter().rev() {
            if on {
                out.push_str(&format!("</{tag}>"));
            }
        }
        if self.fg.is_some() || self.bg.is_some() {
            out.push_str("</font>");
        }
    }

    fn tags(&self) -> [(bool, &'static str); 5] {
        [
            (self.bold, "strong"),
            (self.italic, "em"),
            (self.underline, "u"),
            (self.strike, "del"),
            (self.monospace, "code"),
        ]
    }
}

/// IRC text split into its plain text and, if it had any formatting, Matrix HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formatted {
    /// Text without control codes.
    pub plain: String,
    /// HTML, when the text was formatted or mentions someone.
    pub html: Option<String>,
}

/// Reads two-digit-at-most colour numbers after `\x03`.
fn read_color(chars: &[char], i: &mut usize) -> Option<String> {
    let start = *i;
    while *i < chars.len() && *i - start < 2 && chars[*i].is_ascii_digit() {
        *i += 1;
    }
    if *i == start {
        return None;
    }
    let n: usize = chars[start..*i].iter().collect::<String>().parse().ok()?;
    PALETTE.get(n).map(|c| (*c).to_owned())
}

fn read_hex(chars: &[char], i: &mut usize) -> Option<String> {
    if *i + 6 <= chars.len() && chars[*i..*i + 6].iter().all(char::is_ascii_hexdigit) {
        let hex: String = chars[*i..*i + 6].iter().collect();
        *i += 6;
        return Some(format!("#{}", hex.to_ascii_lowercase()));
    }
    None
}

/// Converts IRC text with mIRC codes. `mention` maps a word that may be a nick to the Matrix
/// user it stands for (`(user id, name)`), for pills.
///
/// ```
/// use irc_bridge::convert::irc_to_matrix::format;
/// let f = format("\x02bold\x02 and \x0304red\x03", |_| None);
/// assert_eq!(f.plain, "bold and red");
/// assert_eq!(
///     f.html.as_deref(),
///     Some("<strong>bold</strong> and <font data-mx-color=\"#ff0000\">red</font>")
/// );
/// ```
pub fn format<F>(text: &str, mention: F) -> Formatted
where
    F: Fn(&str) -> Option<(String, String)>,
{
    let chars: Vec<char> = text.chars().collect();
    let mut plain = String::new();
    let mut html = String::new();
    let mut formatted = false;
    let mut style = Style::default();
    let mut run = String::new();
    let flush = |run: &mut String, style: &Style, html: &mut String, formatted: &mut bool| {
        if run.is_empty() {
            return;
        }
        let (linked, found) = link_mentions(run, &mention);
        *formatted |= found;
        style.open(html);
        html.push_str(&linked);
        style.close(html);
        run.clear();
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        let before = style.clone();
        match c {
            BOLD => style.bold = !style.bold,
            ITALIC => style.italic = !style.italic,
            UNDERLINE => style.underline = !style.underline,
            STRIKE => style.strike = !style.strike,
            MONOSPACE => style.monospace = !style.monospace,
            REVERSE => {}
            RESET => style = Style::default(),
            COLOR | HEX_COLOR => {
                let read = if c == COLOR { read_color } else { read_hex };
                match read(&chars, &mut i) {
                    Some(fg) => {
                        style.fg = Some(fg);
                        if i + 1 < chars.len() && chars[i] == ',' {
                            let mut j = i + 1;
                            if let Some(bg) = read(&chars, &mut j) {
                                style.bg = Some(bg);
                                i = j;
                            }
                        }
                    }
                    None => {
                        style.fg = None;
                        style.bg = None;
                    }
                }
            }
            c => {
                plain.push(c);
                run.push(c);
                continue;
            }
        }
        formatted = true;
        if before != style {
            flush(&mut run, &before, &mut html, &mut formatted);
        }
    }
    flush(&mut run, &style, &mut html, &mut formatted);
    Formatted {
        plain,
        html: formatted.then(|| html.replace('\n', "<br>")),
    }
}

/// Escapes a run of text, turning nicks of bridged Matrix users into pills.
fn link_mentions<F>(text: &str, mention: &F) -> (String, bool)
where
    F: Fn(&str) -> Option<(String, String)>,
{
    let mut out = String::new();
    let mut found = false;
    let mut word = String::new();
    let mut push_word = |word: &mut String, out: &mut String| {
        if word.is_empty() {
            return;
        }
        match mention(word) {
            Some((user_id, name)) => {
                found = true;
                out.push_str(&mention_pill(&user_id, &name));
            }
            None => out.push_str(&escape_html(word)),
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_alphanumeric() || "[]\\`_^{|}-".contains(c) {
            word.push(c);
        } else {
            push_word(&mut word, &mut out);
            out.push_str(&escape_html(&c.to_string()));
        }
    }
    push_word(&mut word, &mut out);
    (out, found)
}

/// What kind of IRC message it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PRIVMSG.
    Text,
    /// NOTICE.
    Notice,
    /// CTCP ACTION (`/me`).
    Action,
}

/// The body of a PRIVMSG without a CTCP ACTION wrapper, and whether it had one; `None` for other
/// CTCP requests (VERSION, PING...), which are not chat.
pub fn strip_action(body: &str) -> Option<(&str, bool)> {
    let Some(ctcp) = body.strip_prefix('\u{01}') else {
        return Some((body, false));
    };
    let ctcp = ctcp.strip_suffix('\u{01}').unwrap_or(ctcp);
    match ctcp.strip_prefix("ACTION") {
        Some(rest) if rest.is_empty() || rest.starts_with(' ') => Some((rest.trim_start(), true)),
        _ => None,
    }
}

/// `m.room.message` content for an IRC line.
pub fn content<F>(kind: Kind, text: &str, mention: F) -> Value
where
    F: Fn(&str) -> Option<(String, String)>,
{
    let formatted = format(text, mention);
    let msgtype = match kind {
        Kind::Text => "m.text",
        Kind::Notice => "m.notice",
        Kind::Action => "m.emote",
    };
    let mut content = json!({"msgtype": msgtype, "body": formatted.plain});
    if let Some(html) = formatted.html {
        content["format"] = json!("org.matrix.custom.html");
        content["formatted_body"] = json!(html);
    }
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<(String, String)> {
        None
    }

    #[test]
    fn plain_text_has_no_html() {
        let f = format("just <text> & more", none);
        assert_eq!(f.plain, "just <text> & more");
        assert_eq!(f.html, None);
    }

    #[test]
    fn every_style_maps_to_a_tag_and_reset_closes_them() {
        let f = format(
            "\x1ditalic\x1d \x1funder\x0f \x1estrike\x1e \x11mono\x11 x",
            none,
        );
        assert_eq!(f.plain, "italic under strike mono x");
        assert_eq!(
            f.html.unwrap(),
            "<em>italic</em> <u>under</u> <del>strike</del> <code>mono</code> x"
        );
        let nested = format("\x02b\x1dbi\x02i\x0f", none).html.unwrap();
        assert_eq!(
            nested,
            "<strong>b</strong><strong><em>bi</em></strong><em>i</em>"
        );
    }

    #[test]
    fn colours_take_a_background_and_bare_colour_codes_end_them() {
        let f = format("\x0302,08blue on yellow\x03 plain \x04ff8800hex\x04", none);
        assert_eq!(f.plain, "blue on yellow plain hex");
        assert_eq!(
            f.html.unwrap(),
            "<font data-mx-color=\"#00007f\" data-mx-bg-color=\"#ffff00\">blue on yellow</font> plain <font data-mx-color=\"#ff8800\">hex</font>"
        );
        // A comma not followed by a colour stays text.
        assert_eq!(format("\x034,x", none).plain, ",x");
        // Digits after a two-digit colour stay text.
        assert_eq!(format("\x031234", none).plain, "34");
    }

    #[test]
    fn html_in_irc_text_is_escaped() {
        let f = format("\x02<b>&\x02", none);
        assert_eq!(f.html.unwrap(), "<strong>&lt;b&gt;&amp;</strong>");
    }

    #[test]
    fn nicks_of_matrix_users_become_pills() {
        let mention =
            |w: &str| (w == "alice[m]").then(|| ("@alice:x".to_owned(), "Alice".to_owned()));
        let f = format("alice[m]: hi <3", mention);
        assert_eq!(f.plain, "alice[m]: hi <3");
        assert_eq!(
            f.html.unwrap(),
            "<a href=\"https://matrix.to/#/@alice:x\">Alice</a>: hi &lt;3"
        );
    }

    #[test]
    fn actions_lose_their_ctcp_wrapper_and_other_ctcp_is_not_chat() {
        assert_eq!(strip_action("\x01ACTION waves\x01"), Some(("waves", true)));
        assert_eq!(strip_action("\x01ACTION waves"), Some(("waves", true)));
        assert_eq!(strip_action("hello"), Some(("hello", false)));
        assert_eq!(strip_action("\x01VERSION\x01"), None);
        let c = content(Kind::Action, "waves", none);
        assert_eq!(c["msgtype"], "m.emote");
        assert_eq!(content(Kind::Notice, "n", none)["msgtype"], "m.notice");
    }
}
