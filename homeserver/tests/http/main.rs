//! HTTP-level tests of the homeserver, each run on SQLite and on PostgreSQL.

#[macro_use]
mod support;

mod account;
mod admin_register;
mod appservice;
mod devices;
mod directory;
mod discovery;
mod e2ee;
mod errors;
mod login;
mod media;
mod metrics;
mod profile;
mod register;
mod relations;
mod rooms;
mod storage;
mod sync;
