//! Causeway's IRC bridge, built on `appservice-sdk` and the `irc` crate: IRC users are ghosts
//! `@irc_<network>_<nick>`, Matrix users get their own IRC connection (or speak through the relay
//! bot), channels are portals by config or by alias, and missed history is backfilled once.
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | the `irc:` config section, checked at start |
//! | [`network`] | the `irc` crate adapter: `IrcNetwork` implements the SDK's `Network` |
//! | [`convert`] | IRC <-> Matrix formatting, line splitting, nicks and ids (pure) |
//! | [`media_proxy`] | Matrix media served to IRC users at signed links (`irc.media_proxy`) |

pub mod config;
pub mod convert;
pub mod media_proxy;
pub mod network;
