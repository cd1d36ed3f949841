//! Pure conversions between Telegram and Matrix, both ways. No I/O here.
//!
//! - [`entities`]: Telegram text + entities (UTF-16 offsets) -> Matrix body and HTML.
//! - [`matrix_html`]: Matrix HTML -> Telegram's HTML subset.
//! - [`relay`]: the `<b>displayname</b>: text` template for relayed Matrix messages.
//! - [`message`]: Telegram message kinds -> Matrix content.

pub mod entities;
pub mod matrix_html;
pub mod message;
pub mod relay;
