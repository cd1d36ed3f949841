//! Causeway's appservice SDK: everything a Matrix bridge needs besides the remote network.
//!
//! | module | what |
//! | --- | --- |
//! | [`config`] | the bridge config (mautrix layout) and permissions |
//! | [`registration`] | generating and loading the registration YAML |
//! | [`server`] | the HTTP server the homeserver pushes transactions to |
//! | [`client`], [`appservice`], [`intent`] | acting on the homeserver as the bot and the ghosts |
//! | [`content`], [`format`](mod@format) | event content builders, HTML <-> text/markdown |
//! | [`backfill`] | inserting history (batch send, or one `ts` send per event) |
//! | [`store`] | portals, puppets, messages, settings, cursors, processed transactions, the network's key/value pairs |
//! | [`bridge`], [`commands`], [`status`], [`metrics`] | the framework a network plugs into |
//!
//! A bridge implements [`bridge::Network`] and hands it to [`bridge::Bridge`]; the
//! `examples/echo-bridge` crate is the complete walk-through.
#![warn(missing_docs)]

pub mod appservice;
pub mod backfill;
pub mod bridge;
pub mod client;
pub mod commands;
pub mod config;
pub mod content;
pub mod error;
pub mod format;
pub mod intent;
pub mod metrics;
pub mod process;
pub mod registration;
pub mod server;
pub mod status;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use appservice::Appservice;
pub use bridge::{Bridge, Network};
pub use error::{Error, Result};
