//! Causeway's Telegram bridge: a Bot API relay between Telegram chats and Matrix rooms, built on
//! `appservice-sdk` and teloxide, and `fake-bot-api`, a Bot API server for tests and demos.
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | the `telegram:` config section, checked at start |
//! | [`network`] | the teloxide adapter: `TelegramNetwork` implements the SDK's `Network` |
//! | [`updates`] | what a Telegram update means for the bridge (pure) |
//! | [`convert`] | Telegram <-> Matrix text, HTML and message kinds (pure) |
//! | [`link_codes`] | one-time codes that link a chat to Matrix |
//! | [`fake_bot_api`] | the fake Telegram: Bot API methods, control routes, its world |
//! | [`html`] | the small HTML tokenizer both converters and the fake share |

pub mod config;
pub mod convert;
pub mod fake_bot_api;
pub mod html;
pub mod link_codes;
pub mod network;
pub mod updates;
