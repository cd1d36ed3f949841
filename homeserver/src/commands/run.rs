//! `homeserver` (no subcommand): load or create the config, open the database, serve.

use std::path::Path;

use homeserver::{Config, config::ConfigError};
use tokio::net::TcpListener;

use super::{Failure, generate_config};

pub(crate) async fn run(config_path: &Path) -> Result<(), Failure> {
    if !config_path.exists() {
        tracing::info!(path = %config_path.display(), "no config found; generating one for `localhost` with data under ./data");
        generate_config(config_path, "localhost", Path::new("data"))?;
    }
    let config = Config::load(config_path).map_err(|e: ConfigError| Failure::usage(e))?;
    // A bad registration file is a config error too: exit 2 naming the file and key.
    homeserver::service::appservice::load_files(&config.app_service_config_files)
        .map_err(|e: ConfigError| Failure::usage(e))?;
    let server_name = config.server_name.clone();
    let configured = config.listeners.clone();
    let services = homeserver::services(config).await?;
    reload_on_sighup(services.clone());
    let mut listeners = Vec::new();
    for listener in &configured {
        // Not started (a metrics listener without `enable_metrics`): warned about at load.
        let Some(app) = homeserver::listener_app(&services, listener) else {
            continue;
        };
        for addr in listener.addresses() {
            let bound = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
            tracing::info!(%addr, server_name, kind = listener.kind, "listening");
            listeners.push((bound, app.clone()));
        }
    }
    homeserver::run(listeners, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("cannot install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// SIGHUP re-reads the appservice registration files; a bad file keeps the old ones in force.
fn reload_on_sighup(services: homeserver::Services) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot install the SIGHUP handler; registrations load only at start");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: re-reading application service registrations");
            if let Err(e) = services.reload_appservices() {
                tracing::error!(error = %e, "registrations not reloaded; the previous ones stay in force");
            }
        }
    });
    #[cfg(not(unix))]
    let _ = services;
}
