//! A small HTML tokenizer shared by the Matrix HTML converter and the fake Bot API's `parse_mode=HTML`.
//!
//! It is not a browser: it splits tags from text, decodes character references and keeps byte offsets so the
//! fake can report errors the way Telegram does ("at byte offset N"). Callers decide what a tag means.

/// One piece of an HTML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// `<name attr="value">`; `name` and attribute names are lower-cased.
    Start {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
        offset: usize,
    },
    /// `</name>`.
    End { name: String, offset: usize },
    /// Text with character references decoded.
    Text(String),
}

impl Token {
    /// The value of attribute `key` on a start tag.
    pub fn attr(&self, key: &str) -> Option<&str> {
        match self {
            Self::Start { attrs, .. } => attrs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// Splits `input` into tags and text. A `<` that does not start a tag is kept as text; comments are dropped.
pub fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut text = String::new();
    let mut rest = input;
    let mut offset = 0;
    while let Some(lt) = rest.find('<') {
        text.push_str(&decode_entities(&rest[..lt]));
        let tag_src = &rest[lt..];
        let consumed = if let Some(comment) = tag_src.strip_prefix("<!--") {
            Some(comment.find("-->").map_or(tag_src.len(), |end| end + 7))
        } else {
            parse_tag(tag_src, offset + lt).map(|(token, len)| {
                if !text.is_empty() {
                    tokens.push(Token::Text(std::mem::take(&mut text)));
                }
                tokens.push(token);
                len
            })
        };
        let len = consumed.unwrap_or_else(|| {
            text.push('<');
            1
        });
        offset += lt + len;
        rest = &rest[lt + len..];
    }
    text.push_str(&decode_entities(rest));
    if !text.is_empty() {
        tokens.push(Token::Text(text));
    }
    tokens
}

/// Parses one tag at the start of `src`; returns it and its length in bytes.
fn parse_tag(src: &str, offset: usize) -> Option<(Token, usize)> {
    let end = src.find('>')?;
    let inner = &src[1..end];
    if let Some(name) = inner.strip_prefix('/') {
        let name = name.trim();
        if name.is_empty() || !name.chars().all(is_name_char) {
            return None;
        }
        let token = Token::End {
            name: name.to_ascii_lowercase(),
            offset,
        };
        return Some((token, end + 1));
    }
    let (inner, self_closing) = match inner.strip_suffix('/') {
        Some(inner) => (inner, true),
        None => (inner, false),
    };
    let name_len = inner
        .find(|c: char| !is_name_char(c))
        .unwrap_or(inner.len());
    if name_len == 0 || !inner.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let name = inner[..name_len].to_ascii_lowercase();
    let attrs = parse_attrs(&inner[name_len..])?;
    let token = Token::Start {
        name,
        attrs,
        self_closing,
        offset,
    };
    Some((token, end + 1))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ':'
}

fn parse_attrs(mut src: &str) -> Option<Vec<(String, String)>> {
    let mut attrs = Vec::new();
    loop {
        src = src.trim_start();
        if src.is_empty() {
            return Some(attrs);
        }
        let key_len = src.find(|c: char| !is_name_char(c)).unwrap_or(src.len());
        if key_len == 0 {
            return None;
        }
        let key = src[..key_len].to_ascii_lowercase();
        src = src[key_len..].trim_start();
        let Some(after_eq) = src.strip_prefix('=') else {
            attrs.push((key, String::new()));
            continue;
        };
        let after_eq = after_eq.trim_start();
        let (value, rest) = match after_eq.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let close = after_eq[1..].find(q)? + 1;
                (&after_eq[1..close], &after_eq[close + 1..])
            }
            _ => {
                let len = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                (&after_eq[..len], &after_eq[len..])
            }
        };
        attrs.push((key, decode_entities(value)));
        src = rest;
    }
}

/// Decodes `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&apos;`, `&nbsp;` and numeric references; leaves others as is.
pub fn decode_entities(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let name = &rest[1..semi];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some('\u{a0}'),
                _ => name.strip_prefix('#').and_then(|num| {
                    let code = match num.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => num.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
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

/// Escapes text for use inside an element or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(name: &str, attrs: &[(&str, &str)], offset: usize) -> Token {
        Token::Start {
            name: name.to_owned(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            self_closing: false,
            offset,
        }
    }

    #[test]
    fn tags_text_and_attributes_are_split_with_byte_offsets() {
        let tokens = tokenize(r#"a <B>bold</b> <a href="https://x.org/?a=1&amp;b=2">l</a>"#);
        assert_eq!(
            tokens,
            vec![
                Token::Text("a ".to_owned()),
                start("b", &[], 2),
                Token::Text("bold".to_owned()),
                Token::End {
                    name: "b".to_owned(),
                    offset: 9
                },
                Token::Text(" ".to_owned()),
                start("a", &[("href", "https://x.org/?a=1&b=2")], 14),
                Token::Text("l".to_owned()),
                Token::End {
                    name: "a".to_owned(),
                    offset: 52
                },
            ]
        );
    }

    #[test]
    fn a_lone_less_than_sign_stays_text_and_comments_vanish() {
        let tokens = tokenize("1 < 2 <!-- hidden --> & 3 > 2");
        assert_eq!(tokens, vec![Token::Text("1 < 2  & 3 > 2".to_owned())]);
    }

    #[test]
    fn character_references_are_decoded() {
        assert_eq!(
            decode_entities("&lt;&gt;&amp;&quot;&#128512;&#x1F600;&bogus;"),
            "<>&\"😀😀&bogus;"
        );
    }

    #[test]
    fn self_closing_and_unquoted_attributes_parse() {
        let tokens = tokenize("<br/><img src=mxc://a/b alt='x y'>");
        assert_eq!(
            tokens[0],
            Token::Start {
                name: "br".to_owned(),
                attrs: vec![],
                self_closing: true,
                offset: 0
            }
        );
        assert_eq!(tokens[1].attr("src"), Some("mxc://a/b"));
        assert_eq!(tokens[1].attr("alt"), Some("x y"));
    }

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape(r#"<a href="x">&"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
    }
}
