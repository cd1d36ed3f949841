//! IRC <-> Matrix conversions, all pure: formatting both ways, line splitting, nicks and ids.
//!
//! - [`irc_to_matrix`]: mIRC colour/bold/italic codes to Matrix HTML, IRC nicks to pills.
//! - [`matrix_to_irc`]: Matrix HTML to mIRC codes, pills to nicks.
//! - [`split`]: one message into IRC lines within the 512-byte limit, never inside a UTF-8 character.
//! - [`nick`]: case mapping, ghost ids, puppet nicks from displaynames.
//! - [`ids`]: portal ids and room aliases.

pub mod ids;
pub mod irc_to_matrix;
pub mod matrix_to_irc;
pub mod nick;
pub mod split;
