//! Matrix `org.matrix.custom.html` -> the HTML subset Telegram's `parse_mode=HTML` accepts.
//!
//! Telegram knows `b i u s code pre a blockquote tg-spoiler` and nothing else (not even `<br>`), refuses
//! unclosed or mismatched tags and formatting inside `code`/`pre`. So: supported tags are mapped, block tags
//! become line breaks, lists get bullets, the reply fallback (`<mx-reply>`) is dropped, every other tag is
//! removed keeping its text, and all text is escaped.

use crate::html::{Token, escape, tokenize};

/// Maps Matrix ids of the bridge's ghosts back to Telegram user ids, for mentions.
pub trait GhostIds {
    fn telegram_user_id(&self, mxid: &str) -> Option<u64>;
}

/// No ghosts known: Matrix user links keep their text only.
pub struct NoGhosts;

impl GhostIds for NoGhosts {
    fn telegram_user_id(&self, _mxid: &str) -> Option<u64> {
        None
    }
}

/// One open Matrix element and what closes it in the output.
struct Open {
    name: String,
    close: String,
}

#[derive(Default)]
struct Writer {
    out: String,
    stack: Vec<Open>,
    /// Depth inside elements whose content is dropped (`mx-reply`, `script`, `style`).
    skip: usize,
    /// Counters of the open lists: `None` for `ul`, the next number for `ol`.
    lists: Vec<Option<u64>>,
}

impl Writer {
    fn in_code(&self) -> bool {
        self.stack
            .iter()
            .any(|o| o.name == "pre" || o.name == "code")
    }

    fn in_link(&self) -> bool {
        self.stack.iter().any(|o| o.close == "</a>")
    }

    fn at_line_start(&self) -> bool {
        let trimmed = self.out.trim_end_matches([' ', '\t']);
        trimmed.is_empty() || trimmed.ends_with('\n') || ends_with_open_tag(trimmed)
    }

    fn newline(&mut self) {
        if !self.at_line_start() {
            self.out.push('\n');
        }
    }

    fn blank_line(&mut self) {
        self.newline();
        if !self.out.is_empty() && !self.out.ends_with("\n\n") && !ends_with_open_tag(&self.out) {
            self.out.push('\n');
        }
    }

    fn open(&mut self, name: &str, open: &str, close: &str) {
        self.out.push_str(open);
        self.stack.push(Open {
            name: name.to_owned(),
            close: close.to_owned(),
        });
    }
}

fn ends_with_open_tag(s: &str) -> bool {
    s.ends_with('>') && s.rfind('<').is_some_and(|lt| !s[lt..].starts_with("</"))
}

/// Converts Matrix HTML to Telegram HTML.
pub fn matrix_to_telegram(html: &str, ghosts: &dyn GhostIds) -> String {
    let mut w = Writer::default();
    for token in tokenize(html) {
        match token {
            Token::Text(text) if w.skip == 0 => {
                let text = if w.in_code() {
                    text
                } else {
                    // HTML collapses source newlines; Matrix clients put them between block tags.
                    text.replace('\n', if w.at_line_start() { "" } else { " " })
                };
                w.out.push_str(&escape(&text));
            }
            Token::Text(_) => {}
            Token::Start {
                ref name,
                self_closing,
                ..
            } => {
                if matches!(name.as_str(), "mx-reply" | "script" | "style") {
                    if !self_closing {
                        w.skip += 1;
                    }
                    continue;
                }
                if w.skip == 0 {
                    start_tag(&mut w, name, &token, ghosts, self_closing);
                }
            }
            Token::End { name, .. } => {
                if matches!(name.as_str(), "mx-reply" | "script" | "style") {
                    w.skip = w.skip.saturating_sub(1);
                    continue;
                }
                if w.skip == 0 {
                    end_tag(&mut w, &name);
                }
            }
        }
    }
    while let Some(open) = w.stack.pop() {
        w.out.push_str(&open.close);
    }
    trim_outer_newlines(&w.out)
}

fn start_tag(w: &mut Writer, name: &str, token: &Token, ghosts: &dyn GhostIds, self_closing: bool) {
    let void = self_closing || matches!(name, "br" | "hr" | "img");
    if void {
        match name {
            "br" => w.out.push('\n'),
            "hr" => {
                w.newline();
                w.out.push_str("———\n");
            }
            "img" => {
                let alt = token.attr("alt").or(token.attr("title")).unwrap_or("image");
                w.out.push_str(&escape(alt));
            }
            _ => {}
        }
        return;
    }
    // Inside code and pre, Telegram allows no other tag: keep the text only.
    if w.in_code() && !(name == "code" && w.stack.last().is_some_and(|o| o.name == "pre")) {
        w.open(name, "", "");
        return;
    }
    let (open, close) = match name {
        "b" | "strong" => ("<b>".to_owned(), "</b>"),
        "i" | "em" | "cite" => ("<i>".to_owned(), "</i>"),
        "u" | "ins" => ("<u>".to_owned(), "</u>"),
        "s" | "del" | "strike" => ("<s>".to_owned(), "</s>"),
        "code" => match token
            .attr("class")
            .and_then(|c| c.strip_prefix("language-"))
        {
            Some(lang) if w.stack.last().is_some_and(|o| o.name == "pre") => (
                format!("<code class=\"language-{}\">", escape(lang)),
                "</code>",
            ),
            _ if w.stack.last().is_some_and(|o| o.name == "pre") => (String::new(), ""),
            _ => ("<code>".to_owned(), "</code>"),
        },
        "pre" => {
            w.newline();
            ("<pre>".to_owned(), "</pre>")
        }
        "blockquote" => {
            w.newline();
            ("<blockquote>".to_owned(), "</blockquote>")
        }
        "span" | "font" if token.attr("data-mx-spoiler").is_some() => {
            ("<tg-spoiler>".to_owned(), "</tg-spoiler>")
        }
        "a" if !w.in_link() => link(token, ghosts),
        "p" | "div" => {
            w.blank_line();
            (String::new(), "")
        }
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            w.blank_line();
            ("<b>".to_owned(), "</b>")
        }
        "ul" => {
            w.newline();
            w.lists.push(None);
            (String::new(), "")
        }
        "ol" => {
            w.newline();
            let start = token
                .attr("start")
                .and_then(|s| s.parse().ok())
                .unwrap_or(1);
            w.lists.push(Some(start));
            (String::new(), "")
        }
        "li" => {
            w.newline();
            let depth = w.lists.len().saturating_sub(1);
            let bullet = match w.lists.last_mut() {
                Some(Some(n)) => {
                    *n += 1;
                    format!("{}. ", *n - 1)
                }
                _ => "• ".to_owned(),
            };
            (format!("{}{bullet}", "  ".repeat(depth)), "")
        }
        _ => (String::new(), ""),
    };
    w.open(name, &open, close);
}

/// `<a>`: a ghost mention becomes a Telegram user mention, other Matrix user links keep their text.
fn link(token: &Token, ghosts: &dyn GhostIds) -> (String, &'static str) {
    let href = token.attr("href").unwrap_or_default();
    if let Some(target) = href
        .strip_prefix("https://matrix.to/#/")
        .map(|t| t.split('?').next().unwrap_or(t))
    {
        let target = crate::html::decode_entities(&target.replace("%40", "@").replace("%3A", ":"));
        if target.starts_with('@') {
            return match ghosts.telegram_user_id(&target) {
                Some(id) => (format!("<a href=\"tg://user?id={id}\">"), "</a>"),
                None => (String::new(), ""),
            };
        }
    }
    let safe = ["http://", "https://", "mailto:", "tel:", "tg://"]
        .iter()
        .any(|scheme| href.to_ascii_lowercase().starts_with(scheme));
    match safe {
        true => (format!("<a href=\"{}\">", escape(href)), "</a>"),
        false => (String::new(), ""),
    }
}

fn end_tag(w: &mut Writer, name: &str) {
    let Some(depth) = w.stack.iter().rposition(|o| o.name == name) else {
        return; // a stray end tag
    };
    // Elements left open inside this one are closed with it, as browsers do.
    while w.stack.len() > depth {
        let open = w.stack.pop().expect("len > depth");
        if !open.close.is_empty() {
            // A closing tag goes before trailing line breaks; code blocks and quotes drop them.
            let kept = w.out.trim_end_matches('\n').len();
            let newlines = w.out.len() - kept;
            w.out.truncate(kept);
            w.out.push_str(&open.close);
            if !matches!(open.name.as_str(), "pre" | "blockquote") {
                w.out.push_str(&"\n".repeat(newlines));
            }
        }
        match open.name.as_str() {
            "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => w.blank_line(),
            "pre" | "blockquote" | "li" => w.newline(),
            "ul" | "ol" => {
                w.lists.pop();
                w.newline();
            }
            _ => {}
        }
    }
}

fn trim_outer_newlines(s: &str) -> String {
    s.trim_matches(|c: char| c == '\n' || c == ' ').to_owned()
}

/// Plain Matrix text (no `formatted_body`) as Telegram HTML: only escaped.
pub fn plain_to_telegram(body: &str) -> String {
    escape(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tg(html: &str) -> String {
        matrix_to_telegram(html, &NoGhosts)
    }

    struct Ghosts;
    impl GhostIds for Ghosts {
        fn telegram_user_id(&self, mxid: &str) -> Option<u64> {
            mxid.strip_prefix("@telegram_")?
                .split(':')
                .next()?
                .parse()
                .ok()
        }
    }

    #[test]
    fn inline_formatting_maps_to_telegram_tags() {
        assert_eq!(
            tg("<strong>b</strong> <em>i</em> <u>u</u> <del>s</del> <code>c</code>"),
            "<b>b</b> <i>i</i> <u>u</u> <s>s</s> <code>c</code>"
        );
        assert_eq!(tg("<b><i>both</i></b>"), "<b><i>both</i></b>");
    }

    #[test]
    fn unknown_tags_are_dropped_and_text_escaped() {
        assert_eq!(
            tg("<table><tr><td>1 &lt; 2 &amp; 3</td></tr></table>"),
            "1 &lt; 2 &amp; 3"
        );
        assert_eq!(tg("<font color=\"red\">red</font> <sup>x</sup>"), "red x");
    }

    #[test]
    fn line_breaks_and_paragraphs_become_newlines_never_br() {
        assert_eq!(tg("a<br>b<br/>c"), "a\nb\nc");
        assert_eq!(tg("<p>one</p><p>two</p>"), "one\n\ntwo");
        assert_eq!(tg("<p>one</p>\n<p>two</p>\n"), "one\n\ntwo");
        assert_eq!(tg("<h1>Title</h1><p>text</p>"), "<b>Title</b>\n\ntext");
    }

    #[test]
    fn code_blocks_keep_their_language_and_no_inner_tags() {
        assert_eq!(
            tg("<pre><code class=\"language-rust\">fn <b>x</b>() {}\n</code></pre>"),
            "<pre><code class=\"language-rust\">fn x() {}</code></pre>"
        );
        assert_eq!(
            tg("<pre><code>a &lt; b</code></pre>"),
            "<pre>a &lt; b</pre>"
        );
        assert_eq!(tg("x <code><em>y</em></code>"), "x <code>y</code>");
    }

    #[test]
    fn spoilers_quotes_and_lists() {
        assert_eq!(
            tg("<span data-mx-spoiler=\"why\">secret</span>"),
            "<tg-spoiler>secret</tg-spoiler>"
        );
        assert_eq!(
            tg("<blockquote><p>quoted</p></blockquote><p>answer</p>"),
            "<blockquote>quoted</blockquote>\n\nanswer"
        );
        assert_eq!(tg("<ul><li>a</li><li>b</li></ul>"), "• a\n• b");
        assert_eq!(
            tg("<ol start=\"3\"><li>c</li><li>d</li></ol>"),
            "3. c\n4. d"
        );
        assert_eq!(tg("<ul><li>a<ul><li>b</li></ul></li></ul>"), "• a\n  • b");
    }

    #[test]
    fn the_reply_fallback_is_removed() {
        let html = "<mx-reply><blockquote><a href=\"https://matrix.to/#/!r:x/$e\">In reply to</a> \
                    <a href=\"https://matrix.to/#/@a:x\">@a:x</a><br>original</blockquote></mx-reply>answer";
        assert_eq!(tg(html), "answer");
    }

    #[test]
    fn links_are_kept_and_ghost_mentions_become_telegram_mentions() {
        assert_eq!(
            tg("<a href=\"https://x.org/?a=1&amp;b=2\">x</a>"),
            "<a href=\"https://x.org/?a=1&amp;b=2\">x</a>"
        );
        assert_eq!(tg("<a href=\"javascript:alert(1)\">x</a>"), "x");
        let html = "<a href=\"https://matrix.to/#/@telegram_42:example.org\">Zoë</a>: hi \
                    <a href=\"https://matrix.to/#/%40alice%3Aexample.org\">Alice</a>";
        assert_eq!(
            matrix_to_telegram(html, &Ghosts),
            "<a href=\"tg://user?id=42\">Zoë</a>: hi Alice"
        );
    }

    #[test]
    fn broken_html_still_yields_balanced_telegram_html() {
        assert_eq!(tg("<b>open <i>both"), "<b>open <i>both</i></b>");
        assert_eq!(tg("<b>x</i></b>"), "<b>x</b>");
        assert_eq!(tg("<b><i>x</b> y</i>"), "<b><i>x</i></b> y");
        assert_eq!(
            tg("<a href=\"https://a\"><a href=\"https://b\">x</a></a>"),
            "<a href=\"https://a\">x</a>"
        );
    }

    #[test]
    fn images_show_their_alt_text() {
        assert_eq!(
            tg("look <img src=\"mxc://a/b\" alt=\":cat:\">"),
            "look :cat:"
        );
    }

    #[test]
    fn plain_bodies_are_escaped() {
        assert_eq!(plain_to_telegram("1 < 2 & <b>"), "1 &lt; 2 &amp; &lt;b&gt;");
    }
}
