//! Telegram text + `MessageEntity` list -> Matrix `body` and `org.matrix.custom.html` `formatted_body`.
//!
//! Entity offsets and lengths count UTF-16 code units, not bytes or chars: "😀" is 2 units, "é" is 1.

use teloxide::types::{MessageEntity, MessageEntityKind};

use crate::html::escape;

/// How Telegram users and usernames map to Matrix ids, for mentions.
pub trait Mentions {
    /// The Matrix id standing for a Telegram user (normally its ghost).
    fn user_mxid(&self, telegram_user_id: u64) -> Option<String>;
    /// The Matrix id of a Telegram `@username`, when the bridge knows it.
    fn username_mxid(&self, _username: &str) -> Option<String> {
        None
    }
}

/// No mentions resolved: text mentions stay plain text.
pub struct NoMentions;

impl Mentions for NoMentions {
    fn user_mxid(&self, _telegram_user_id: u64) -> Option<String> {
        None
    }
}

/// A message text for Matrix.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MatrixText {
    /// The plain `body`.
    pub body: String,
    /// `formatted_body` (`org.matrix.custom.html`), only when the text has formatting.
    pub html: Option<String>,
    /// Matrix users mentioned (for `m.mentions`).
    pub mentions: Vec<String>,
}

/// Byte offsets of every UTF-16 position of `text` (a position inside a surrogate pair maps to its char).
fn utf16_to_byte(text: &str) -> Vec<usize> {
    let mut map = Vec::with_capacity(text.len() + 1);
    for (byte, c) in text.char_indices() {
        for _ in 0..c.len_utf16() {
            map.push(byte);
        }
    }
    map.push(text.len());
    map
}

struct Span<'a> {
    start: usize,
    end: usize,
    kind: &'a MessageEntityKind,
}

/// Converts a Telegram text and its entities (UTF-16 offsets) to Matrix.
pub fn telegram_to_matrix(
    text: &str,
    entities: &[MessageEntity],
    mentions: &dyn Mentions,
) -> MatrixText {
    let map = utf16_to_byte(text);
    let byte_at = |unit: usize| map.get(unit).copied().unwrap_or(text.len());
    let mut spans: Vec<Span<'_>> = entities
        .iter()
        .map(|e| Span {
            start: byte_at(e.offset),
            // An end inside a surrogate pair is rounded up to the end of the character.
            end: {
                let unit = e.offset.saturating_add(e.length);
                let byte = byte_at(unit);
                if unit > 0 && unit < map.len() && map[unit - 1] == byte {
                    text[byte..]
                        .chars()
                        .next()
                        .map_or(byte, |c| byte + c.len_utf8())
                } else {
                    byte
                }
            },
            kind: &e.kind,
        })
        .filter(|s| s.end > s.start)
        .collect();
    // Outer entities first: by start, then longest.
    spans.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));

    let mut out = String::new();
    let mut found_mentions = Vec::new();
    let mut formatted = false;
    // Open spans: (index into spans, closing tags).
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut boundaries: Vec<usize> = spans.iter().flat_map(|s| [s.start, s.end]).collect();
    boundaries.extend([0, text.len()]);
    boundaries.sort_unstable();
    boundaries.dedup();
    let mut next_span = 0;
    for window in boundaries.windows(2) {
        let (at, until) = (window[0], window[1]);
        // Close what ends here; spans above them that go on are closed and reopened (overlaps).
        if let Some(lowest) = stack.iter().position(|(i, _)| spans[*i].end <= at) {
            let popped: Vec<(usize, String)> = stack.drain(lowest..).collect();
            for (_, close) in popped.iter().rev() {
                out.push_str(close);
            }
            for (i, _) in popped.into_iter().filter(|(i, _)| spans[*i].end > at) {
                let (open, close) = tags(&spans[i], text, mentions, &mut found_mentions);
                out.push_str(&open);
                stack.push((i, close));
            }
        }
        while next_span < spans.len() && spans[next_span].start == at {
            let (open, close) = tags(&spans[next_span], text, mentions, &mut found_mentions);
            formatted |= !open.is_empty();
            out.push_str(&open);
            stack.push((next_span, close));
            next_span += 1;
        }
        let in_pre = stack
            .iter()
            .any(|(i, _)| matches!(spans[*i].kind, MessageEntityKind::Pre { .. }));
        push_text(&mut out, &text[at..until], in_pre);
    }
    for (_, close) in stack.iter().rev() {
        out.push_str(close);
    }
    found_mentions.dedup();
    MatrixText {
        body: text.to_owned(),
        html: formatted.then_some(out),
        mentions: found_mentions,
    }
}

fn push_text(out: &mut String, text: &str, in_pre: bool) {
    let escaped = escape(text);
    if in_pre {
        out.push_str(&escaped);
    } else {
        out.push_str(&escaped.replace('\n', "<br>"));
    }
}

/// Opening and closing HTML for one entity ("" for entities Matrix shows as plain text).
fn tags(
    span: &Span<'_>,
    text: &str,
    mentions: &dyn Mentions,
    found: &mut Vec<String>,
) -> (String, String) {
    let inner = &text[span.start..span.end];
    let simple = |tag: &str| (format!("<{tag}>"), format!("</{tag}>"));
    let link = |href: &str| (format!("<a href=\"{}\">", escape(href)), "</a>".to_owned());
    match span.kind {
        MessageEntityKind::Bold => simple("strong"),
        MessageEntityKind::Italic => simple("em"),
        MessageEntityKind::Underline => simple("u"),
        MessageEntityKind::Strikethrough => simple("del"),
        MessageEntityKind::Code => simple("code"),
        MessageEntityKind::Blockquote | MessageEntityKind::ExpandableBlockquote => {
            simple("blockquote")
        }
        MessageEntityKind::Spoiler => ("<span data-mx-spoiler>".to_owned(), "</span>".to_owned()),
        MessageEntityKind::Pre { language } => {
            let class = language
                .as_deref()
                .filter(|l| !l.is_empty())
                .map(|l| format!(" class=\"language-{}\"", escape(l)))
                .unwrap_or_default();
            (format!("<pre><code{class}>"), "</code></pre>".to_owned())
        }
        MessageEntityKind::TextLink { url } => link(url.as_str()),
        MessageEntityKind::Url if inner.contains("://") => link(inner),
        MessageEntityKind::Url => link(&format!("https://{inner}")),
        MessageEntityKind::Email => link(&format!("mailto:{inner}")),
        MessageEntityKind::PhoneNumber => {
            let digits: String = inner
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect();
            link(&format!("tel:{digits}"))
        }
        MessageEntityKind::TextMention { user } => match mentions.user_mxid(user.id.0) {
            Some(mxid) => mention_link(mxid, found),
            None => (String::new(), String::new()),
        },
        MessageEntityKind::Mention => match mentions.username_mxid(inner.trim_start_matches('@')) {
            Some(mxid) => mention_link(mxid, found),
            None => (String::new(), String::new()),
        },
        MessageEntityKind::Hashtag
        | MessageEntityKind::Cashtag
        | MessageEntityKind::BotCommand
        | MessageEntityKind::CustomEmoji { .. } => (String::new(), String::new()),
    }
}

fn mention_link(mxid: String, found: &mut Vec<String>) -> (String, String) {
    let open = format!("<a href=\"https://matrix.to/#/{}\">", escape(&mxid));
    found.push(mxid);
    (open, "</a>".to_owned())
}

#[cfg(test)]
mod tests {
    use teloxide::types::{User, UserId};

    use super::*;

    fn entity(kind: MessageEntityKind, offset: usize, length: usize) -> MessageEntity {
        MessageEntity {
            kind,
            offset,
            length,
        }
    }

    fn html(text: &str, entities: &[MessageEntity]) -> Option<String> {
        telegram_to_matrix(text, entities, &NoMentions).html
    }

    struct Ghosts;
    impl Mentions for Ghosts {
        fn user_mxid(&self, id: u64) -> Option<String> {
            Some(format!("@telegram_{id}:example.org"))
        }
        fn username_mxid(&self, username: &str) -> Option<String> {
            (username == "ann").then(|| "@telegram_7:example.org".to_owned())
        }
    }

    #[test]
    fn plain_text_has_no_html_and_keeps_newlines_in_the_body() {
        let text = telegram_to_matrix("a <b>\nc", &[], &NoMentions);
        assert_eq!(text.body, "a <b>\nc");
        assert_eq!(text.html, None);
    }

    #[test]
    fn offsets_count_utf16_units_around_emoji() {
        // "😀" is 2 UTF-16 units, so "bold" starts at unit 3.
        let bold = entity(MessageEntityKind::Bold, 3, 4);
        assert_eq!(
            html("😀 bold!", &[bold]).unwrap(),
            "😀 <strong>bold</strong>!"
        );
    }

    #[test]
    fn astral_characters_inside_entities_stay_whole() {
        // "𝕏" (U+1D54F) is astral: 2 units. Italic covers "a𝕏b" = units 0..4.
        let italic = entity(MessageEntityKind::Italic, 0, 4);
        assert_eq!(html("a𝕏b c", &[italic]).unwrap(), "<em>a𝕏b</em> c");
        // A length that ends inside a surrogate pair is rounded to the whole character.
        let cut = entity(MessageEntityKind::Bold, 0, 2);
        assert_eq!(html("a𝕏b", &[cut]).unwrap(), "<strong>a𝕏</strong>b");
    }

    #[test]
    fn flags_and_zwj_sequences_count_every_unit() {
        // 🇫🇷 is 4 units, 👨‍👩‍👧 is 8 units (3 astral chars + 2 ZWJ).
        let text = "🇫🇷👨‍👩‍👧 x";
        let code = entity(MessageEntityKind::Code, 13, 1);
        assert_eq!(html(text, &[code]).unwrap(), "🇫🇷👨‍👩‍👧 <code>x</code>");
    }

    #[test]
    fn nested_entities_nest_in_html() {
        let text = "bold and italic";
        let entities = [
            entity(MessageEntityKind::Bold, 0, 15),
            entity(MessageEntityKind::Italic, 9, 6),
        ];
        assert_eq!(
            html(text, &entities).unwrap(),
            "<strong>bold and <em>italic</em></strong>"
        );
        // Same span: the order Telegram listed them does not matter for well-formedness.
        let same = [
            entity(MessageEntityKind::Italic, 0, 4),
            entity(MessageEntityKind::Underline, 0, 4),
        ];
        let out = html("both", &same).unwrap();
        assert!(
            out == "<em><u>both</u></em>" || out == "<u><em>both</em></u>",
            "{out}"
        );
    }

    #[test]
    fn overlapping_entities_still_produce_well_formed_html() {
        let entities = [
            entity(MessageEntityKind::Bold, 0, 4),
            entity(MessageEntityKind::Italic, 2, 4),
        ];
        assert_eq!(
            html("abcdef", &entities).unwrap(),
            "<strong>ab<em>cd</em></strong><em>ef</em>"
        );
    }

    #[test]
    fn text_is_escaped_and_newlines_become_br_except_in_pre() {
        let entities = [
            entity(MessageEntityKind::Bold, 0, 5),
            entity(
                MessageEntityKind::Pre {
                    language: Some("rust".to_owned()),
                },
                6,
                7,
            ),
        ];
        assert_eq!(
            html("<a&b>\nx\n<y>;", &entities).unwrap(),
            "<strong>&lt;a&amp;b&gt;</strong><br><pre><code class=\"language-rust\">x\n&lt;y&gt;;</code></pre>"
        );
    }

    #[test]
    fn links_urls_emails_and_phones_become_anchors() {
        let url: reqwest::Url = "https://example.org/?a=1&b=2".parse().unwrap();
        let text = "site x.org a@b.c +1 555";
        let entities = [
            entity(MessageEntityKind::TextLink { url }, 0, 4),
            entity(MessageEntityKind::Url, 5, 5),
            entity(MessageEntityKind::Email, 11, 5),
            entity(MessageEntityKind::PhoneNumber, 17, 6),
        ];
        assert_eq!(
            html(text, &entities).unwrap(),
            "<a href=\"https://example.org/?a=1&amp;b=2\">site</a> <a href=\"https://x.org\">x.org</a> \
             <a href=\"mailto:a@b.c\">a@b.c</a> <a href=\"tel:+1555\">+1 555</a>"
        );
    }

    #[test]
    fn spoilers_code_and_quotes_use_matrix_tags() {
        let entities = [
            entity(MessageEntityKind::Spoiler, 0, 1),
            entity(MessageEntityKind::Code, 2, 1),
            entity(MessageEntityKind::ExpandableBlockquote, 4, 1),
            entity(MessageEntityKind::Strikethrough, 6, 1),
        ];
        assert_eq!(
            html("s c q d", &entities).unwrap(),
            "<span data-mx-spoiler>s</span> <code>c</code> <blockquote>q</blockquote> <del>d</del>"
        );
    }

    #[test]
    fn mentions_link_to_ghosts_and_are_listed() {
        let user = User {
            id: UserId(42),
            is_bot: false,
            first_name: "Zoë".to_owned(),
            last_name: None,
            username: None,
            language_code: None,
            is_premium: false,
            added_to_attachment_menu: false,
        };
        let entities = [
            entity(MessageEntityKind::TextMention { user }, 3, 3),
            entity(MessageEntityKind::Mention, 7, 4),
            entity(MessageEntityKind::Mention, 12, 4),
        ];
        let text = telegram_to_matrix("hi Zoë @ann @bob", &entities, &Ghosts);
        assert_eq!(
            text.html.unwrap(),
            "hi <a href=\"https://matrix.to/#/@telegram_42:example.org\">Zoë</a> \
             <a href=\"https://matrix.to/#/@telegram_7:example.org\">@ann</a> @bob"
        );
        assert_eq!(
            text.mentions,
            ["@telegram_42:example.org", "@telegram_7:example.org"]
        );
        let plain = telegram_to_matrix("hi @bob #tag /start", &entities[2..], &NoMentions);
        assert_eq!(
            plain.html, None,
            "unresolved mentions, hashtags and commands stay plain"
        );
    }

    #[test]
    fn entities_past_the_end_are_clamped() {
        let bold = entity(MessageEntityKind::Bold, 2, 100);
        assert_eq!(html("abcd", &[bold]).unwrap(), "ab<strong>cd</strong>");
        let beyond = entity(MessageEntityKind::Bold, 10, 2);
        assert_eq!(html("abcd", &[beyond]), None);
    }
}
