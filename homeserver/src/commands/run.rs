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
    let addresses = config.http_addresses();
    let server_name = config.server_name.clone();
    let services = homeserver::services(config).await?;
    let mut listeners = Vec::new();
    for addr in addresses {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
        tracing::info!(%addr, server_name, "listening");
        listeners.push(listener);
    }
    homeserver::run(services, listeners, shutdown_signal()).await?;
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
