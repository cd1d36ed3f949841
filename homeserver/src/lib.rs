//! Causeway: a Matrix homeserver.
//!
//! `api -> service -> store`: axum handlers parse and authenticate requests, the service layer holds
//! the domain, and the store is the only place with SQL.

pub mod api;
pub mod config;
pub mod error;
pub mod service;
pub mod store;

use std::future::Future;

use axum::Router;
use tokio::net::TcpListener;

pub use config::Config;
pub use service::Services;
pub use store::Store;

/// Opens the database and builds the services for a config.
pub async fn services(config: Config) -> anyhow::Result<Services> {
    let store = Store::open(&config.backend()).await?;
    Services::new(config, store).await
}

/// The HTTP application for these services: the client (and admin) API, as served by an HTTP
/// listener that does not list the `metrics` resource.
pub fn app(services: Services) -> Router {
    api::router(services)
}

/// What one configured listener serves, or `None` if it is not started: a `manhole` listener,
/// or a `type: metrics` one while `enable_metrics` is off (see [`Config::warnings`]).
pub fn listener_app(services: &Services, listener: &config::Listener) -> Option<Router> {
    match (listener.kind.as_str(), &services.metrics) {
        ("http", Some(metrics)) if listener.serves("metrics") => {
            Some(app(services.clone()).merge(api::metrics::resource(metrics.clone())))
        }
        ("http", _) => Some(app(services.clone())),
        ("metrics", Some(metrics)) => Some(api::metrics::listener(metrics.clone())),
        _ => None,
    }
}

/// Serves each router on its listener until `shutdown` resolves.
pub async fn run(
    listeners: Vec<(TcpListener, Router)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = tokio::task::JoinSet::new();
    for (listener, app) in listeners {
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        let mut rx = tx.subscribe();
        tasks.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.recv().await;
                })
                .await
        });
    }
    shutdown.await;
    let _ = tx.send(());
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    Ok(())
}
