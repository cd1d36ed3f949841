//! The client-server API, one module per spec section.

mod account;
mod account_data;
mod device;
mod discovery;
mod media;
mod profile;
mod register;
mod session;
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
        .merge(media::router())
}
