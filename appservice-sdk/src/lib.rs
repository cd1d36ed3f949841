//! Causeway's appservice SDK.
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod error;
pub mod registration;
pub mod store;

pub use error::{Error, Result};
pub mod appservice;
pub mod content;
pub mod intent;
pub use appservice::Appservice;
pub mod metrics;
pub mod server;
