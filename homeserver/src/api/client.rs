//! The client-server API, one module per spec section.

mod account;
mod account_data;
mod appservice;
mod device;
mod directory;
mod discovery;
mod ephemeral;
mod event;
mod keys;
mod media;
mod membership;
mod message;
mod presence;
mod profile;
mod redact;
mod register;
mod relations;
mod room;
mod session;
mod state;
mod sync;
mod thirdparty;
mod to_device;
mod uiaa;

use axum::Router;

use crate::service::Services;

pub(crate) fn router() -> Router<Services> {
    Router::new()
        .merge(discovery::router())
        .merge(register::router())
        .merge(session::router())
        .merge(account::router())
        .merge(device::router())
        .merge(profile::router())
        .merge(account_data::router())
        .merge(room::router())
        .merge(membership::router())
        .merge(message::router())
        .merge(state::router())
        .merge(redact::router())
        .merge(event::router())
        .merge(relations::router())
        .merge(sync::router())
        .merge(ephemeral::router())
        .merge(presence::router())
        .merge(directory::router())
        .merge(media::router())
        .merge(appservice::router())
        .merge(thirdparty::router())
        .merge(keys::router())
        .merge(to_device::router())
}
