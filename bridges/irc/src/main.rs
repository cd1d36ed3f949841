//! `irc-bridge`: a Matrix <-> IRC bridge.
//!
//! ```text
//! irc-bridge -c config.yaml --generate-config        # write an example config
//! irc-bridge -c config.yaml -g -r registration.yaml  # write the registration
//! irc-bridge -c config.yaml -r registration.yaml     # run
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use appservice_sdk::Bridge;
use appservice_sdk::bridge::Network;
use appservice_sdk::process::{shutdown_signal, write_new_file};
use appservice_sdk::registration::Registration;
use clap::Parser;
use irc_bridge::config;
use irc_bridge::media_proxy::MediaProxy;
use irc_bridge::network::IrcNetwork;

/// Bridges IRC channels and Matrix rooms: IRC users as Matrix ghosts, Matrix users with their own
/// IRC connections (or through a relay bot), missed history backfilled.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The bridge config (mautrix layout plus an `irc:` section).
    #[arg(short = 'c', long = "config", default_value = "config.yaml")]
    config: PathBuf,
    /// Write the registration file for the homeserver, then exit.
    #[arg(short = 'g', long = "generate-registration")]
    generate_registration: bool,
    /// The registration file (written with -g, read otherwise).
    #[arg(
        short = 'r',
        long = "registration",
        default_value = "registration.yaml"
    )]
    registration: PathBuf,
    /// Write a commented example config to the --config path (never overwriting), then exit.
    #[arg(long)]
    generate_config: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,appservice_sdk=info,irc_bridge=info,irc=warn".into()),
        )
        .init();
    if cli.generate_config {
        return match write_new_file(&cli.config, config::EXAMPLE) {
            Ok(()) => {
                println!("wrote {}", cli.config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("irc-bridge: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    // A config that cannot be used is exit status 2 with one line naming the file, the key and the fix.
    let loaded = match config::load(&cli.config) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("irc-bridge: {e}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    // The media signing key is read (or made) before anything starts, so a bad one is a config
    // error too; writing the registration needs none.
    let media_proxy = match &loaded.irc.media_proxy {
        Some(proxy) if !cli.generate_registration => {
            match MediaProxy::from_config(proxy, &cli.config) {
                Ok(proxy) => Some(proxy),
                Err(e) => {
                    eprintln!("irc-bridge: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        _ => None,
    };
    match run(cli, loaded, media_proxy).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("irc-bridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    cli: Cli,
    loaded: config::Loaded,
    media_proxy: Option<MediaProxy>,
) -> anyhow::Result<()> {
    let network = Arc::new(IrcNetwork::with_media_proxy(loaded.irc, media_proxy));
    if cli.generate_registration {
        let registration = Registration::generate(&loaded.config, &network.info().prefixes());
        registration.save(&cli.registration)?;
        println!("wrote {}", cli.registration.display());
        return Ok(());
    }
    let registration = Registration::load(&cli.registration).with_context(
        || "generate it first with -g, and list it in the homeserver's app_service_config_files",
    )?;
    let bridge = Bridge::new(&loaded.config, registration, network).await?;
    bridge.run(shutdown_signal()).await?;
    Ok(())
}
