//! Matrix content to IRC text: HTML becomes mIRC codes, pills become nicks, media becomes a
//! download link, replies are quoted, edits are corrections.

use appservice_sdk::format::html_to_plain;
use serde_json::Value;

use super::irc_to_matrix::PALETTE;

/// What to send to IRC for one Matrix message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcText {
    /// The text, possibly several lines.
    pub text: String,
    /// Send as CTCP ACTION (`m.emote`).
    pub action: bool,
    /// Send as NOTICE (`m.notice`).
    pub notice: bool,
}

/// Converts Matrix HTML to IRC text with mIRC codes. `pill` maps a mentioned Matrix user id (and
/// the pill's text) to what IRC should read, usually a nick.
///
/// ```
/// use irc_bridge::convert::matrix_to_irc::html_to_irc;
/// let text = html_to_irc("<b>hi</b> <a href=\"https://matrix.to/#/@bob:x\">Bob</a>", |_, name| name.to_owned());
/// assert_eq!(text, "\x02hi\x02 Bob");
/// ```
pub fn html_to_irc<F>(html: &str, pill: F) -> String
where
    F: Fn(&str, &str) -> String,
{
    let mut out = String::new();
    let mut rest = html;
    let mut skip = 0usize;
    // Open links: (href, where their text starts in `out`).
    let mut links: Vec<(Option<String>, usize)> = Vec::new();
    let mut colours: Vec<bool> = Vec::new();
    let mut list_numbers: Vec<Option<usize>> = Vec::new();
    let mut quote_depth = 0usize;
    while !rest.is_empty() {
        let lt = rest.find('<').unwrap_or(rest.len());
        if skip == 0 {
            push_text(&mut out, &decode_entities(&rest[..lt]), quote_depth);
        }
        if lt == rest.len() {
            break;
        }
        let Some(gt) = rest[lt..].find('>') else {
            if skip == 0 {
                push_text(&mut out, &decode_entities(&rest[lt..]), quote_depth);
            }
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "mx-reply" {
            skip = if closing {
                skip.saturating_sub(1)
            } else {
                skip + 1
            };
            continue;
        }
        if skip > 0 {
            continue;
        }
        match (name.as_str(), closing) {
            ("b" | "strong", _) => out.push('\u{02}'),
            ("i" | "em", _) => out.push('\u{1d}'),
            ("u", _) => out.push('\u{1f}'),
            ("s" | "del" | "strike", _) => out.push('\u{1e}'),
            ("code", _) => out.push('\u{11}'),
            ("br", _) => out.push('\n'),
            ("p" | "div" | "pre" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "tr", true) => {
                newline(&mut out)
            }
            ("blockquote", false) => {
                newline(&mut out);
                quote_depth += 1;
            }
            ("blockquote", true) => {
                quote_depth = quote_depth.saturating_sub(1);
                newline(&mut out);
            }
            ("ul", false) => list_numbers.push(None),
            ("ol", false) => list_numbers.push(Some(
                attr(tag, "start").and_then(|s| s.parse().ok()).unwrap_or(1),
            )),
            ("ul" | "ol", true) => {
                list_numbers.pop();
                newline(&mut out);
            }
            ("li", false) => {
                newline(&mut out);
                match list_numbers.last_mut() {
                    Some(Some(n)) => {
                        out.push_str(&format!("{n}. "));
                        *n += 1;
                    }
                    _ => out.push_str("• "),
                }
            }
            ("a", false) => links.push((attr(tag, "href"), out.len())),
            ("a", true) => {
                let Some((href, start)) = links.pop() else {
                    continue;
                };
                let Some(href) = href else {
                    continue;
                };
                let text = out[start..].to_owned();
                if let Some(target) = href.strip_prefix("https://matrix.to/#/") {
                    let target = percent_decode(target.split('?').next().unwrap_or(target));
                    if target.starts_with('@') {
                        out.truncate(start);
                        out.push_str(&pill(&target, &text));
                    }
                } else if text != href && !href.starts_with("mailto:") {
                    out.push_str(&format!(" <{href}>"));
                }
            }
            ("font" | "span", false) => {
                let colour = attr(tag, "data-mx-color").or_else(|| attr(tag, "color"));
                match colour.as_deref().and_then(nearest_colour) {
                    Some(n) => {
                        out.push_str(&format!("\u{03}{n:02}"));
                        colours.push(true);
                    }
                    None => colours.push(false),
                }
            }
            ("font" | "span", true) if colours.pop() == Some(true) => out.push('\u{03}'),
            _ => {}
        }
    }
    out.trim_end_matches('\n')
        .trim_start_matches('\n')
        .to_owned()
}

fn push_text(out: &mut String, text: &str, quote_depth: usize) {
    for (i, part) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if quote_depth > 0 && (out.is_empty() || out.ends_with('\n')) && !part.is_empty() {
            out.push_str(&"> ".repeat(quote_depth));
        }
        out.push_str(part);
    }
}

fn newline(out: &mut String) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn attr(tag: &str, name: &str) -> Option<String> {
    let lower = tag.to_ascii_lowercase();
    let mut from = 0;
    while let Some(found) = lower[from..].find(name) {
        let at = from + found;
        from = at + name.len();
        let preceded = lower[..at].ends_with(|c: char| c.is_whitespace());
        let rest = lower[from..].trim_start();
        if !preceded || !rest.starts_with('=') {
            continue;
        }
        let offset = tag.len() - rest.len() + 1;
        let value = tag[offset..].trim_start();
        let (quote, body) = match value.chars().next() {
            Some(q @ ('"' | '\'')) => (Some(q), &value[1..]),
            _ => (None, value),
        };
        let end = match quote {
            Some(q) => body.find(q).unwrap_or(body.len()),
            None => body.find(char::is_whitespace).unwrap_or(body.len()),
        };
        return Some(decode_entities(&body[..end]));
    }
    None
}

/// The mIRC colour closest to an HTML `#rrggbb` colour.
fn nearest_colour(hex: &str) -> Option<usize> {
    let rgb = |h: &str| -> Option<(i32, i32, i32)> {
        let h = h.strip_prefix('#')?;
        if h.len() != 6 {
            return None;
        }
        let n = |i: usize| i32::from_str_radix(&h[i..i + 2], 16).ok();
        Some((n(0)?, n(2)?, n(4)?))
    };
    let (r, g, b) = rgb(hex)?;
    PALETTE
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            rgb(p).map(|(pr, pg, pb)| (i, (pr - r).pow(2) + (pg - g).pow(2) + (pb - b).pow(2)))
        })
        .min_by_key(|(_, d)| *d)
        .map(|(i, _)| i)
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    // The SDK's plain-text conversion decodes entities and nothing else for text without tags.
    html_to_plain(&text.replace('<', "&lt;").replace('>', "&gt;"))
}

/// Removes a reply fallback (`> <@user> quoted` lines and the blank line after them) from a body.
pub fn strip_reply_fallback(body: &str) -> &str {
    if !body.starts_with("> ") {
        return body;
    }
    match body.find("\n\n") {
        Some(i) if body[..i].lines().all(|l| l.starts_with('>')) => &body[i + 2..],
        _ => body,
    }
}

/// IRC text for an `m.room.message` content. `media_url` turns an `mxc://` URI and the file's
/// name (`filename`, else `body`) into a link anyone can open; `pill` maps mentioned user ids to
/// nicks.
pub fn message_text<M, P>(content: &Value, media_url: M, pill: P) -> IrcText
where
    M: Fn(&str, &str) -> Option<String>,
    P: Fn(&str, &str) -> String,
{
    let msgtype = content["msgtype"].as_str().unwrap_or("m.text");
    let body = strip_reply_fallback(content["body"].as_str().unwrap_or_default());
    let html = (content["format"] == "org.matrix.custom.html")
        .then(|| content["formatted_body"].as_str())
        .flatten();
    let text = match msgtype {
        "m.image" | "m.file" | "m.audio" | "m.video" => {
            let name = content["filename"].as_str().unwrap_or(body);
            let url = content["url"].as_str().and_then(|mxc| media_url(mxc, name));
            let size = content["info"]["size"].as_u64().map(human_size);
            let mut line = match (url, size) {
                (Some(url), Some(size)) => format!("{name} ({size}) {url}"),
                (Some(url), None) => format!("{name} {url}"),
                (None, _) => format!("{name} (encrypted or unavailable media)"),
            };
            // A caption: a body that is not just the file name.
            if content["filename"].is_string() && body != name && !body.is_empty() {
                line = format!("{body} — {line}");
            }
            line
        }
        "m.location" => {
            let geo = content["geo_uri"].as_str().unwrap_or_default();
            format!("{body} {geo}").trim().to_owned()
        }
        _ => match html {
            Some(html) => html_to_irc(html, pill),
            None => body.to_owned(),
        },
    };
    IrcText {
        text,
        action: msgtype == "m.emote",
        notice: msgtype == "m.notice",
    }
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / f64::from(1 << 10)),
        b => format!("{b} B"),
    }
}

/// A reply as IRC reads it: the replied-to user addressed, their words quoted (cut short).
///
/// ```
/// use irc_bridge::convert::matrix_to_irc::quote_reply;
/// assert_eq!(quote_reply("bob", "where is it?", "here"), "bob: \"where is it?\" <- here");
/// ```
pub fn quote_reply(nick: &str, quoted: &str, reply: &str) -> String {
    let quoted = quoted.lines().next().unwrap_or_default();
    let short: String = if quoted.chars().count() > 40 {
        let cut: String = quoted.chars().take(39).collect();
        format!("{cut}…")
    } else {
        quoted.to_owned()
    };
    format!("{nick}: \"{short}\" <- {reply}")
}

/// An edit as IRC reads it: a correction of the earlier line.
///
/// ```
/// assert_eq!(irc_bridge::convert::matrix_to_irc::correction("fixed text"), "* fixed text");
/// ```
pub fn correction(new_text: &str) -> String {
    format!("* {new_text}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn by_name(_: &str, name: &str) -> String {
        name.to_owned()
    }

    #[test]
    fn styles_become_mirc_codes() {
        let t = html_to_irc(
            "<strong>b</strong><em>i</em><u>u</u><del>s</del><code>c</code>",
            by_name,
        );
        assert_eq!(t, "\x02b\x02\x1di\x1d\x1fu\x1f\x1es\x1e\x11c\x11");
    }

    #[test]
    fn colours_go_to_the_nearest_mirc_colour() {
        let t = html_to_irc("<font data-mx-color=\"#fe0101\">red</font> x", by_name);
        assert_eq!(t, "\x0304red\x03 x");
        let t = html_to_irc("<span data-mx-color='#00007f'>blue</span>", by_name);
        assert_eq!(t, "\x0302blue\x03");
    }

    #[test]
    fn blocks_lists_quotes_and_links_read_well() {
        let t = html_to_irc(
            "<p>one</p><p>two<br>three</p><ul><li>a</li><li>b</li></ul><ol start=\"3\"><li>c</li></ol>",
            by_name,
        );
        assert_eq!(t, "one\ntwo\nthree\n• a\n• b\n3. c");
        let t = html_to_irc("<blockquote>quoted\nmore</blockquote>reply", by_name);
        assert_eq!(t, "> quoted\n> more\nreply");
        let t = html_to_irc(
            "see <a href=\"https://x.org\">docs</a> &amp; <a href=\"https://y.org\">https://y.org</a>",
            by_name,
        );
        assert_eq!(t, "see docs <https://x.org> & https://y.org");
    }

    #[test]
    fn pills_become_nicks_and_reply_fallbacks_go() {
        let nick = |id: &str, _: &str| {
            if id == "@irc_libera_bob:x" {
                "bob".to_owned()
            } else {
                "?".to_owned()
            }
        };
        let t = html_to_irc(
            "<mx-reply><blockquote>old</blockquote></mx-reply><a href=\"https://matrix.to/#/%40irc_libera_bob%3Ax\">bob (IRC)</a>: hi",
            nick,
        );
        assert_eq!(t, "bob: hi");
        assert_eq!(strip_reply_fallback("> <@a:x> old\n> more\n\nnew"), "new");
        assert_eq!(strip_reply_fallback("> not a fallback"), "> not a fallback");
    }

    #[test]
    fn media_becomes_a_download_link() {
        let content = json!({"msgtype": "m.image", "body": "cat.png", "url": "mxc://x.org/abc",
                             "info": {"size": 2048}});
        let t = message_text(
            &content,
            |mxc, name| Some(format!("https://dl/{}/{name}", &mxc[6..])),
            by_name,
        );
        assert_eq!(t.text, "cat.png (2.0 KiB) https://dl/x.org/abc/cat.png");
        let content = json!({"msgtype": "m.file", "body": "look at this", "filename": "a.pdf",
                             "url": "mxc://x.org/f"});
        let t = message_text(&content, |_, name| Some(format!("L/{name}")), by_name);
        assert_eq!(t.text, "look at this — a.pdf L/a.pdf");
    }

    #[test]
    fn emotes_and_notices_keep_their_kind() {
        let t = message_text(
            &json!({"msgtype": "m.emote", "body": "waves"}),
            |_, _| None,
            by_name,
        );
        assert!(t.action && !t.notice);
        assert_eq!(t.text, "waves");
        let t = message_text(
            &json!({"msgtype": "m.notice", "body": "n"}),
            |_, _| None,
            by_name,
        );
        assert!(t.notice);
    }

    #[test]
    fn long_replies_are_cut_short() {
        let long = "x".repeat(100);
        let line = quote_reply("bob", &long, "ok");
        assert!(line.starts_with("bob: \"xxx"));
        assert!(line.contains("…\" <- ok"));
    }
}
