//! Causeway's Telegram bridge: a Bot API relay between Telegram chats and Matrix rooms, and `fake-bot-api`,
//! a Bot API server for tests and demos.

pub mod config;
pub mod convert;
pub mod fake_bot_api;
pub mod html;
pub mod link_codes;
pub mod network;
pub mod updates;
