//! `fake-bot-api --listen 127.0.0.1:PORT`: a Telegram Bot API server for tests and demos.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use telegram_bridge::fake_bot_api::{self, FakeBotApi, FakeConfig};
use tracing_subscriber::EnvFilter;

/// A fake Telegram Bot API (Bot API 10.1) for any token, with /_fake/* control routes for tests.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Make getMe report can_read_all_group_messages=false, as a bot in privacy mode does.
    #[arg(long)]
    privacy_mode: bool,
    /// The bot's first_name in getMe and in the messages it sends.
    #[arg(long, default_value = "Causeway Bot")]
    bot_name: String,
    /// The bot's username.
    #[arg(long, default_value = "causeway_bot")]
    bot_username: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let config = FakeConfig {
        can_read_all_group_messages: !args.privacy_mode,
        bot_first_name: args.bot_name,
        bot_username: args.bot_username,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "fake Bot API listening");
    println!("fake-bot-api listening on http://{addr}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    fake_bot_api::run(listener, FakeBotApi::new(config), shutdown).await?;
    Ok(())
}
