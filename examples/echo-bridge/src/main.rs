//! `echo-bridge`: a complete small Matrix bridge built on `appservice-sdk`, to an in-process
//! echo network. See README.md for the walk-through.
//!
//! ```text
//! echo-bridge -c config.yaml -g -r registration.yaml   # write the registration
//! echo-bridge -c config.yaml -r registration.yaml      # run
//! ```

mod network;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use appservice_sdk::Bridge;
use appservice_sdk::bridge::Network;
use appservice_sdk::config::BridgeConfig;
use appservice_sdk::process::shutdown_signal;
use appservice_sdk::registration::Registration;
use clap::Parser;

use crate::network::EchoNetwork;

/// A Matrix bridge to an echo network: every message comes back from a ghost.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The bridge config (mautrix layout).
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
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,appservice_sdk=info".into()),
        )
        .init();
    if let Err(e) = run(cli).await {
        eprintln!("echo-bridge: {e:#}");
        std::process::exit(2);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The echo network has no section of its own; unknown keys are kept as YAML.
    let config: BridgeConfig = BridgeConfig::load(&cli.config)?;
    let network = Arc::new(EchoNetwork::default());

    if cli.generate_registration {
        let registration = Registration::generate(&config, &network.info().prefixes());
        registration.save(&cli.registration)?;
        println!("wrote {}", cli.registration.display());
        return Ok(());
    }

    let registration =
        Registration::load(&cli.registration).with_context(|| "generate it first with -g")?;
    let bridge = Bridge::new(&config, registration, network).await?;
    bridge.run(shutdown_signal()).await?;
    Ok(())
}
