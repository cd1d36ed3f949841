//! Matrix HTML -> Telegram HTML -> (Telegram's parser, as the fake runs it) -> entities -> Matrix HTML.
//!
//! Every conversion the bridge sends must be accepted by Telegram's strict parser, and what comes back must
//! carry the same formatting.

use telegram_bridge::convert::entities::{NoMentions, telegram_to_matrix};
use telegram_bridge::convert::matrix_html::{NoGhosts, matrix_to_telegram};
use telegram_bridge::convert::relay::{DEFAULT_MESSAGE_TEMPLATE, render};
use telegram_bridge::fake_bot_api::parse_mode::parse_html;
use teloxide::types::MessageEntity;

fn round_trip(matrix_html: &str) -> (String, Option<String>) {
    let telegram = render(
        DEFAULT_MESSAGE_TEMPLATE,
        "Zoë 😀",
        "@zoe:example.org",
        &matrix_to_telegram(matrix_html, &NoGhosts),
    );
    let (text, entities) =
        parse_html(&telegram).unwrap_or_else(|e| panic!("{telegram:?}: {}", e.description));
    let entities: Vec<MessageEntity> = serde_json::from_value(entities.into()).unwrap();
    let back = telegram_to_matrix(&text, &entities, &NoMentions);
    (back.body, back.html)
}

#[test]
fn formatting_survives_the_trip_to_telegram_and_back() {
    let (body, html) =
        round_trip("<strong>bold 𝕏</strong> and <em>it<u>al</u>ic</em> 🇫🇷 <code>x &lt; y</code>");
    assert_eq!(body, "Zoë 😀: bold 𝕏 and italic 🇫🇷 x < y");
    assert_eq!(
        html.unwrap(),
        "<strong>Zoë 😀</strong>: <strong>bold 𝕏</strong> and <em>it<u>al</u>ic</em> 🇫🇷 <code>x &lt; y</code>"
    );
}

#[test]
fn blocks_lists_quotes_and_code_are_accepted_by_telegram() {
    let html = "<mx-reply><blockquote>fallback</blockquote></mx-reply><h2>Plan</h2><p>one<br>two</p>\
                <ul><li><del>a</del></li><li><span data-mx-spoiler>b</span></li></ul>\
                <blockquote><p>quote</p></blockquote><pre><code class=\"language-rust\">let x = 1;\n</code></pre>\
                <a href=\"https://example.org/?q=1&amp;r=2\">link</a> <table><tr><td>cell</td></tr></table>";
    let (body, html) = round_trip(html);
    assert_eq!(
        body,
        "Zoë 😀: Plan\n\none\ntwo\n\n• a\n• b\nquote\nlet x = 1;\nlink cell"
    );
    let html = html.unwrap();
    for expected in [
        "<strong>Plan</strong>",
        "<del>a</del>",
        "<span data-mx-spoiler>b</span>",
        "<blockquote>quote</blockquote>",
        "<pre><code class=\"language-rust\">let x = 1;</code></pre>",
        "<a href=\"https://example.org/?q=1&amp;r=2\">link</a>",
    ] {
        assert!(html.contains(expected), "{expected} not in {html}");
    }
    assert!(!html.contains("fallback"));
}
