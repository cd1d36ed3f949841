//! Causeway's appservice SDK.
#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod error;
pub mod registration;
pub mod store;

pub use error::{Error, Result};
