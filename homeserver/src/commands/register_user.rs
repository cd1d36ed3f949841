//! `homeserver register-user`: Synapse's `register_new_matrix_user`, over the shared-secret API.

use std::{io::Write, path::Path};

use homeserver::{Config, service::shared_secret};
use serde_json::{Value, json};

use super::Failure;

#[derive(clap::Args)]
pub(crate) struct Args {
    /// Local part of the new user (prompted for when absent).
    #[arg(short, long)]
    user: Option<String>,
    /// Password (prompted for when absent).
    #[arg(short, long)]
    password: Option<String>,
    /// Make the user a server admin.
    #[arg(short = 'a', long, conflicts_with = "no_admin")]
    admin: bool,
    /// Make a regular user.
    #[arg(long)]
    no_admin: bool,
    /// The shared secret (default: `registration_shared_secret` from the config).
    #[arg(short = 'k', long)]
    shared_secret: Option<String>,
    /// The homeserver's URL (default: the config's first listener, else http://localhost:8008).
    url: Option<String>,
}

pub(crate) async fn run(config_path: &Path, args: Args) -> Result<(), Failure> {
    let config = if config_path.exists() {
        Some(Config::load(config_path).map_err(Failure::usage)?)
    } else {
        None
    };
    let secret = args
        .shared_secret
        .or_else(|| {
            config
                .as_ref()
                .and_then(|c| c.registration_shared_secret.clone())
        })
        .ok_or_else(|| {
            Failure::usage(anyhow::anyhow!(
                "no shared secret: pass -k or set `registration_shared_secret` in {}",
                config_path.display()
            ))
        })?;
    let url = args.url.unwrap_or_else(|| {
        config
            .as_ref()
            .and_then(|c| c.http_addresses().first().copied())
            .map(|a| format!("http://{a}"))
            .unwrap_or_else(|| "http://localhost:8008".to_owned())
    });
    let user = match args.user {
        Some(u) => u,
        None => prompt("New user localpart: ")?,
    };
    let password = match args.password {
        Some(p) => p,
        None => prompt("Password: ")?,
    };
    let endpoint = format!("{}/_synapse/admin/v1/register", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let nonce: Value = client
        .get(&endpoint)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let nonce = nonce["nonce"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the server sent no nonce"))?
        .to_owned();
    let mac = shared_secret::mac(
        &secret,
        &shared_secret::MacInput {
            nonce: &nonce,
            user: &user,
            password: &password,
            admin: args.admin,
            user_type: None,
        },
    );
    let body = json!({ "nonce": nonce, "username": user, "password": password, "admin": args.admin, "mac": mac });
    let response = client.post(&endpoint).json(&body).send().await?;
    let status = response.status();
    let reply: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(anyhow::anyhow!(
            "registration failed ({status}): {}",
            reply["error"].as_str().unwrap_or("no reason given")
        )
        .into());
    }
    println!(
        "Success! Registered {}",
        reply["user_id"].as_str().unwrap_or(&user)
    );
    Ok(())
}

/// Reads one line from standard input after printing `label`.
pub(crate) fn prompt(label: &str) -> Result<String, Failure> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!("nothing entered")));
    }
    Ok(line)
}
