//! Formatting helpers: Matrix HTML (`org.matrix.custom.html`) to plain text or markdown and
//! back, mention pills, and the relay template.
//!
//! ```
//! use appservice_sdk::format;
//! let html = format::markdown_to_html("**hi** `x` <b>");
//! assert_eq!(html, "<strong>hi</strong> <code>x</code> &lt;b&gt;");
//! assert_eq!(format::html_to_plain(&html), "hi x <b>");
//! assert_eq!(format::html_to_markdown(&html), "**hi** `x` <b>");
//! ```

/// Escapes text for HTML.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Plain text as HTML: escaped, newlines as `<br>`.
pub fn plain_to_html(text: &str) -> String {
    escape_html(text).replace('\n', "<br>")
}

/// A mention pill for a user, as Matrix clients render them.
///
/// ```
/// assert_eq!(
///     appservice_sdk::format::mention_pill("@a:x", "Alice"),
///     r#"<a href="https://matrix.to/#/@a:x">Alice</a>"#
/// );
/// ```
pub fn mention_pill(user_id: &str, name: &str) -> String {
    format!(
        r#"<a href="https://matrix.to/#/{}">{}</a>"#,
        escape_html(user_id),
        escape_html(name)
    )
}

/// The user ids mentioned by pills in Matrix HTML.
pub fn mentioned_user_ids(html: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("https://matrix.to/#/") {
        rest = &rest[start + "https://matrix.to/#/".len()..];
        let end = rest.find(['"', '\'', '?']).unwrap_or(rest.len());
        let id = decode_entities(&rest[..end])
            .replace("%40", "@")
            .replace("%3A", ":");
        if id.starts_with('@') {
            found.push(id);
        }
    }
    found
}

/// Applies the relay template (`{sender}`, `{sender_id}`, `{body}`).
///
/// ```
/// let line = appservice_sdk::format::relay_message("<{sender}> {body}", "Alice", "@a:x", "hi");
/// assert_eq!(line, "<Alice> hi");
/// ```
pub fn relay_message(template: &str, sender: &str, sender_id: &str, body: &str) -> String {
    template
        .replace("{sender_id}", sender_id)
        .replace("{sender}", sender)
        .replace("{body}", body)
}

/// Matrix HTML to plain text: tags dropped, blocks and `<br>` as newlines, pills as their
/// text, reply fallbacks (`<mx-reply>`) removed, entities decoded.
pub fn html_to_plain(html: &str) -> String {
    convert(html, false)
}

/// Matrix HTML to markdown: like [`html_to_plain`], keeping bold, italics, code, strikes,
/// links and quotes as markdown.
pub fn html_to_markdown(html: &str) -> String {
    convert(html, true)
}

fn convert(html: &str, markdown: bool) -> String {
    let mut out = String::new();
    let mut rest = html;
    let mut skip_depth = 0usize;
    let mut link_stack: Vec<Option<String>> = Vec::new();
    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            if skip_depth == 0 {
                out.push_str(&decode_entities(rest));
            }
            break;
        };
        if skip_depth == 0 {
            out.push_str(&decode_entities(&rest[..lt]));
        }
        let Some(gt) = rest[lt..].find('>') else {
            if skip_depth == 0 {
                out.push_str(&decode_entities(&rest[lt..]));
            }
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        rest = &rest[lt + gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "mx-reply" {
            if closing {
                skip_depth = skip_depth.saturating_sub(1);
            } else {
                skip_depth += 1;
            }
            continue;
        }
        if skip_depth > 0 {
            continue;
        }
        let md = |s: &'static str| if markdown { s } else { "" };
        match (name.as_str(), closing) {
            ("br", _) => out.push('\n'),
            ("p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "pre" | "ul" | "ol", true) => {
                if markdown && name == "pre" {
                    out.push_str("\n```");
                }
                if !out.ends_with('\n') {
                    out.push('\n');
                }
            }
            ("pre", false) if markdown => out.push_str("```\n"),
            ("li", false) => out.push_str("- "),
            ("li", true) => out.push('\n'),
            ("blockquote", false) => out.push_str("> "),
            ("blockquote", true) => out.push('\n'),
            ("strong" | "b", _) => out.push_str(md("**")),
            ("em" | "i", _) => out.push_str(md("_")),
            ("del" | "s" | "strike", _) => out.push_str(md("~~")),
            ("code", _) if !out.ends_with("```\n") && !rest.starts_with("</pre") => {
                out.push_str(md("`"))
            }
            ("a", false) => {
                let href = attribute(tag, "href");
                let pill = href
                    .as_deref()
                    .is_some_and(|h| h.starts_with("https://matrix.to/#/@"));
                if markdown && !pill {
                    out.push('[');
                    link_stack.push(href);
                } else {
                    link_stack.push(None);
                }
            }
            ("a", true) => {
                if let Some(Some(href)) = link_stack.pop() {
                    out.push_str(&format!("]({href})"));
                }
            }
            _ => {}
        }
    }
    out.trim_end_matches('\n').to_owned()
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let start = tag.find(&format!("{name}="))? + name.len() + 1;
    let value = &tag[start..];
    let quote = value.chars().next()?;
    if quote == '"' || quote == '\'' {
        let end = value[1..].find(quote)?;
        Some(decode_entities(&value[1..=end]))
    } else {
        Some(
            value
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    }
}

fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|s| *s <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ if entity.starts_with("#x") => u32::from_str_radix(&entity[2..], 16)
                .ok()
                .and_then(char::from_u32),
            _ if entity.starts_with('#') => entity[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A small markdown subset to Matrix HTML: `**bold**`, `*italic*` / `_italic_`, `~~strike~~`,
/// `` `code` ``, `[text](url)`, newlines. Everything else is escaped text.
pub fn markdown_to_html(markdown: &str) -> String {
    let chars: Vec<char> = markdown.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let find = |from: usize, pat: &str| -> Option<usize> {
        let pat: Vec<char> = pat.chars().collect();
        (from..chars.len()).find(|&j| chars[j..].starts_with(&pat))
    };
    let text = |a: usize, b: usize| chars[a..b].iter().collect::<String>();
    while i < chars.len() {
        let c = chars[i];
        let span = |open: &str, tag: &str, i: usize| -> Option<(String, usize)> {
            let len = open.chars().count();
            let end = find(i + len, open)?;
            (end > i + len).then(|| {
                (
                    format!("<{tag}>{}</{tag}>", markdown_to_html(&text(i + len, end))),
                    end + len,
                )
            })
        };
        let replaced = match c {
            '`' => find(i + 1, "`").filter(|e| *e > i + 1).map(|end| {
                (
                    format!("<code>{}</code>", escape_html(&text(i + 1, end))),
                    end + 1,
                )
            }),
            '*' if chars.get(i + 1) == Some(&'*') => span("**", "strong", i),
            '~' if chars.get(i + 1) == Some(&'~') => span("~~", "del", i),
            '*' | '_' => span(&c.to_string(), "em", i),
            '[' => find(i + 1, "](").and_then(|mid| {
                let close = find(mid + 2, ")")?;
                let url = text(mid + 2, close);
                Some((
                    format!(
                        r#"<a href="{}">{}</a>"#,
                        escape_html(&url),
                        markdown_to_html(&text(i + 1, mid))
                    ),
                    close + 1,
                ))
            }),
            _ => None,
        };
        match replaced {
            Some((html, next)) => {
                out.push_str(&html);
                i = next;
            }
            None => {
                if c == '\n' {
                    out.push_str("<br>");
                } else {
                    out.push_str(&escape_html(&c.to_string()));
                }
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pills_become_their_text_and_reply_fallbacks_vanish() {
        let html = format!(
            "<mx-reply><blockquote>old</blockquote></mx-reply>hey {}, look",
            mention_pill("@bob:x", "Bob")
        );
        assert_eq!(html_to_plain(&html), "hey Bob, look");
        assert_eq!(mentioned_user_ids(&html), vec!["@bob:x".to_owned()]);
    }

    #[test]
    fn blocks_and_breaks_become_newlines() {
        assert_eq!(
            html_to_plain("<p>one</p><p>two<br/>three</p>"),
            "one\ntwo\nthree"
        );
        assert_eq!(html_to_plain("<ul><li>a</li><li>b</li></ul>"), "- a\n- b");
    }

    #[test]
    fn markdown_survives_a_round_trip_through_html() {
        for md in [
            "**bold** and _it_",
            "`a*b`",
            "~~gone~~",
            "[site](https://e.org)",
        ] {
            assert_eq!(html_to_markdown(&markdown_to_html(md)), md, "{md}");
        }
    }

    #[test]
    fn entities_decode_and_unknown_ones_stay() {
        assert_eq!(
            html_to_plain("a &amp; b &#x41;&#66; &bogus; &"),
            "a & b AB &bogus; &"
        );
    }

    #[test]
    fn unmatched_markers_stay_literal() {
        assert_eq!(markdown_to_html("2 * 3 and a_b"), "2 * 3 and a_b");
        assert_eq!(markdown_to_html("line\nnext"), "line<br>next");
    }
}
