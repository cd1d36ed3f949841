//! `parse_mode=HTML`: Telegram's HTML subset to text plus `MessageEntity` objects (offsets in UTF-16 units).
//!
//! Strict like Telegram: an unsupported tag (`<br>`, `<p>`, ...) or a mismatched end tag is a 400, so a bridge
//! that sends bad HTML fails in tests the way it would in production.

use serde_json::{Value, json};

use super::error::ApiError;
use crate::html::{Token, tokenize};

/// The longest text a message may have after entity parsing.
pub const MAX_TEXT: usize = 4096;
/// The longest media caption.
pub const MAX_CAPTION: usize = 1024;

struct Open {
    tag: String,
    entity: Option<Value>,
    offset: usize,
}

/// Parses `html` into plain text and entities.
pub fn parse_html(html: &str) -> Result<(String, Vec<Value>), ApiError> {
    let mut text = String::new();
    let mut utf16_len = 0;
    let mut stack: Vec<Open> = Vec::new();
    let mut entities = Vec::new();
    for token in tokenize(html) {
        match token {
            Token::Text(t) => {
                utf16_len += t.encode_utf16().count();
                text.push_str(&t);
            }
            Token::Start {
                ref name, offset, ..
            } => {
                let entity = entity_for(&token, name, &stack).ok_or_else(|| {
                    cant_parse(format!(
                        "Unsupported start tag \"{name}\" at byte offset {offset}"
                    ))
                })?;
                stack.push(Open {
                    tag: name.clone(),
                    entity,
                    offset: utf16_len,
                });
            }
            Token::End { name, offset } => {
                let Some(open) = stack.pop() else {
                    return Err(cant_parse(format!(
                        "Unexpected end tag at byte offset {offset}"
                    )));
                };
                if open.tag != name {
                    return Err(cant_parse(format!(
                        "Unmatched end tag at byte offset {offset}, expected \"</{}>\", found \"</{name}>\"",
                        open.tag
                    )));
                }
                if let Some(mut entity) = open.entity
                    && utf16_len > open.offset
                {
                    entity["offset"] = open.offset.into();
                    entity["length"] = (utf16_len - open.offset).into();
                    entities.push(entity);
                }
            }
        }
    }
    if let Some(open) = stack.pop() {
        return Err(cant_parse(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.tag
        )));
    }
    entities.sort_by_key(|e| {
        let offset = e["offset"].as_u64().unwrap_or_default();
        let length = e["length"].as_u64().unwrap_or_default();
        (offset, std::cmp::Reverse(length))
    });
    Ok((text, merge_languages(entities)))
}

/// The entity a start tag opens (`None` inside the Option for `<code>` inside `<pre>`, which only sets the
/// language); `None` for unsupported tags.
fn entity_for(token: &Token, name: &str, stack: &[Open]) -> Option<Option<Value>> {
    let simple = |kind: &str| Some(Some(json!({"type": kind})));
    match name {
        "b" | "strong" => simple("bold"),
        "i" | "em" => simple("italic"),
        "u" | "ins" => simple("underline"),
        "s" | "strike" | "del" => simple("strikethrough"),
        "tg-spoiler" => simple("spoiler"),
        "span" if token.attr("class") == Some("tg-spoiler") => simple("spoiler"),
        "blockquote" if token.attr("expandable").is_some() => simple("expandable_blockquote"),
        "blockquote" => simple("blockquote"),
        "code" => {
            let in_pre = stack.last().filter(|o| o.tag == "pre");
            let language = token
                .attr("class")
                .and_then(|c| c.strip_prefix("language-"));
            match (in_pre, language) {
                // Telegram puts the language on the enclosing `pre` entity; see `merge_languages`.
                (Some(_), Some(language)) => {
                    Some(Some(json!({"type": "__language", "language": language})))
                }
                (Some(_), None) => Some(None),
                (None, _) => simple("code"),
            }
        }
        "pre" => simple("pre"),
        "a" => {
            let href = token.attr("href").unwrap_or_default();
            match href
                .strip_prefix("tg://user?id=")
                .and_then(|id| id.parse::<i64>().ok())
            {
                Some(id) => Some(Some(json!({"type": "text_mention",
                    "user": {"id": id, "is_bot": false, "first_name": ""}}))),
                None => Some(Some(json!({"type": "text_link", "url": href}))),
            }
        }
        "tg-emoji" => {
            let id = token.attr("emoji-id").unwrap_or_default();
            Some(Some(json!({"type": "custom_emoji", "custom_emoji_id": id})))
        }
        _ => None,
    }
}

/// Moves `<pre><code class="language-x">` languages onto their `pre` entity.
fn merge_languages(entities: Vec<Value>) -> Vec<Value> {
    let (languages, mut out): (Vec<Value>, Vec<Value>) = entities
        .into_iter()
        .partition(|e| e["type"] == "__language");
    for language in languages {
        let same_span = |e: &&mut Value| {
            e["type"] == "pre"
                && e["offset"] == language["offset"]
                && e["length"] == language["length"]
        };
        if let Some(pre) = out.iter_mut().find(same_span) {
            pre["language"] = language["language"].clone();
        }
    }
    out
}

fn cant_parse(what: String) -> ApiError {
    ApiError::bad_request(format!("can't parse entities: {what}"))
}

/// Checks a text after parsing the way `sendMessage` does.
pub fn check_text(text: &str, max: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("message text is empty"));
    }
    if text.chars().count() > max {
        let what = if max == MAX_CAPTION {
            "message caption is too long"
        } else {
            "message is too long"
        };
        return Err(ApiError::bad_request(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(html: &str) -> (String, Vec<Value>) {
        parse_html(html).unwrap()
    }

    #[test]
    fn nested_tags_become_entities_with_utf16_offsets() {
        let (text, entities) = parse("😀 <b>bold <i>both</i></b> &lt;x&gt;");
        assert_eq!(text, "😀 bold both <x>");
        assert_eq!(
            entities,
            vec![
                json!({"type": "bold", "offset": 3, "length": 9}),
                json!({"type": "italic", "offset": 8, "length": 4}),
            ]
        );
    }

    #[test]
    fn links_mentions_spoilers_and_quotes_are_recognised() {
        let (_, entities) = parse(
            r#"<a href="https://x.org">l</a><a href="tg://user?id=42">m</a><tg-spoiler>s</tg-spoiler><span class="tg-spoiler">t</span><blockquote expandable>q</blockquote>"#,
        );
        let kinds: Vec<&str> = entities
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "text_link",
                "text_mention",
                "spoiler",
                "spoiler",
                "expandable_blockquote"
            ]
        );
        assert_eq!(entities[0]["url"], "https://x.org");
        assert_eq!(entities[1]["user"]["id"], 42);
    }

    #[test]
    fn pre_with_a_language_is_one_pre_entity() {
        let (text, entities) = parse(r#"<pre><code class="language-rust">fn x() {}</code></pre>"#);
        assert_eq!(text, "fn x() {}");
        assert_eq!(
            entities,
            vec![json!({"type": "pre", "offset": 0, "length": 9, "language": "rust"})]
        );
    }

    #[test]
    fn unsupported_and_mismatched_tags_are_refused_like_telegram() {
        let err = parse_html("a<br>b").unwrap_err();
        assert_eq!(
            err.description,
            "Bad Request: can't parse entities: Unsupported start tag \"br\" at byte offset 1"
        );
        let err = parse_html("<b><i>x</b></i>").unwrap_err();
        assert!(
            err.description
                .contains("Unmatched end tag at byte offset 7"),
            "{}",
            err.description
        );
        let err = parse_html("<b>x").unwrap_err();
        assert!(
            err.description
                .contains("Can't find end tag corresponding to start tag \"b\"")
        );
    }

    #[test]
    fn empty_and_too_long_texts_are_refused() {
        assert_eq!(
            check_text(" \n", MAX_TEXT).unwrap_err().description,
            "Bad Request: message text is empty"
        );
        let long = "é".repeat(MAX_TEXT + 1);
        assert_eq!(
            check_text(&long, MAX_TEXT).unwrap_err().description,
            "Bad Request: message is too long"
        );
        assert!(check_text(&"é".repeat(MAX_TEXT), MAX_TEXT).is_ok());
    }
}
