//! The relay template: how a Matrix user's message looks when the bot posts it in Telegram.
//!
//! Placeholders: `{displayname}` and `{user_id}` (escaped for Telegram HTML) and `{message}` (the message,
//! already Telegram HTML). Replacement is one pass, so a displayname containing `{message}` stays literal.

use crate::html::escape;

/// The default template for text: `<b>displayname</b>: text`.
pub const DEFAULT_MESSAGE_TEMPLATE: &str = "<b>{displayname}</b>: {message}";
/// The default template for emotes (`/me waves`).
pub const DEFAULT_EMOTE_TEMPLATE: &str = "* <b>{displayname}</b> {message}";

const PLACEHOLDERS: [&str; 3] = ["{displayname}", "{user_id}", "{message}"];

/// Fills `template` for a sender; `message_html` must already be Telegram HTML.
pub fn render(template: &str, displayname: &str, user_id: &str, message_html: &str) -> String {
    let mut out = String::with_capacity(template.len() + message_html.len() + displayname.len());
    let mut rest = template;
    while let Some(brace) = rest.find('{') {
        out.push_str(&rest[..brace]);
        rest = &rest[brace..];
        match PLACEHOLDERS.iter().find(|p| rest.starts_with(*p)) {
            Some(&placeholder) => {
                match placeholder {
                    "{displayname}" => out.push_str(&escape(displayname)),
                    "{user_id}" => out.push_str(&escape(user_id)),
                    _ => out.push_str(message_html),
                }
                rest = &rest[placeholder.len()..];
            }
            None => {
                out.push('{');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Why a template cannot be used, for the config check.
pub fn check(template: &str) -> Result<(), String> {
    if !template.contains("{message}") {
        return Err("must contain {message}".to_owned());
    }
    let sample = render(template, "Alice <&>", "@alice:example.org", "hello");
    crate::fake_bot_api::parse_mode::parse_html(&sample)
        .map(|_| ())
        .map_err(|e| format!("is not valid Telegram HTML ({})", e.description))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_template_bolds_the_escaped_displayname() {
        assert_eq!(
            render(DEFAULT_MESSAGE_TEMPLATE, "Bob <3", "@bob:x", "<i>hi</i>"),
            "<b>Bob &lt;3</b>: <i>hi</i>"
        );
        assert_eq!(
            render(DEFAULT_EMOTE_TEMPLATE, "Bob", "@bob:x", "waves"),
            "* <b>Bob</b> waves"
        );
    }

    #[test]
    fn placeholders_are_replaced_once_and_unknown_braces_kept() {
        assert_eq!(
            render(
                "[{user_id}] {displayname} {x}: {message}",
                "{message}",
                "@e:x",
                "m"
            ),
            "[@e:x] {message} {x}: m"
        );
    }

    #[test]
    fn templates_are_checked_for_a_message_and_valid_html() {
        assert!(check(DEFAULT_MESSAGE_TEMPLATE).is_ok());
        assert_eq!(
            check("<b>{displayname}</b>").unwrap_err(),
            "must contain {message}"
        );
        let err = check("<b>{displayname}: {message}").unwrap_err();
        assert!(err.contains("Can't find end tag"), "{err}");
        assert!(
            check("{displayname}<br>{message}").is_err(),
            "Telegram has no <br>"
        );
    }
}
