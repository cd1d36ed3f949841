//! `homeserver generate-config`: a commented config with fresh secrets and a signing key.

use std::path::{Path, PathBuf};

use base64::Engine;
use rand::Rng;

/// What the generated config is for.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub server_name: String,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
}

/// Writes the config and the signing key. Refuses to overwrite an existing config.
pub fn generate(opts: &GenerateOptions) -> anyhow::Result<()> {
    if opts.config_path.exists() {
        anyhow::bail!(
            "{} already exists; refusing to overwrite it (delete it or pass another --config-path)",
            opts.config_path.display()
        );
    }
    std::fs::create_dir_all(&opts.data_dir)?;
    let key_path = opts.data_dir.join(format!(
        "{}.signing.key",
        opts.server_name.replace(':', "_")
    ));
    if !key_path.exists() {
        write_private(&key_path, &signing_key_line())?;
    }
    let text = render(opts, &key_path);
    if let Some(parent) = opts.config_path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    write_private(&opts.config_path, &text)?;
    Ok(())
}

fn render(opts: &GenerateOptions, key_path: &Path) -> String {
    let data = opts.data_dir.display();
    let secret = random_secret();
    format!(
        r#"# Causeway homeserver configuration (Synapse's homeserver.yaml keys).
server_name: "{server_name}"
# public_baseurl: "https://matrix.example.org/"

listeners:
  - port: 8008
    bind_addresses: ["127.0.0.1"]
    type: http
    tls: false
    x_forwarded: true
    resources:
      - names: [client, federation]

database:
  name: sqlite3
  args:
    database: "{data}/homeserver.db"
# For PostgreSQL:
# database:
#   name: psycopg2
#   args: {{user: synapse, password: secret, database: synapse, host: localhost, port: 5432, cp_min: 5, cp_max: 10}}

media_store_path: "{data}/media_store"
max_upload_size: 50M
signing_key_path: "{key}"

enable_registration: false
registration_shared_secret: "{secret}"
allow_guest_access: false

app_service_config_files: []

url_preview_enabled: false
user_directory:
  enabled: true
  search_all_users: false
presence:
  enabled: true
serve_server_wellknown: false

rc_message: {{per_second: 0.2, burst_count: 10}}
rc_registration: {{per_second: 0.17, burst_count: 3}}
rc_login:
  address: {{per_second: 0.17, burst_count: 3}}
  account: {{per_second: 0.17, burst_count: 3}}
  failed_attempts: {{per_second: 0.17, burst_count: 3}}
"#,
        server_name = opts.server_name,
        key = key_path.display(),
    )
}

/// A Synapse-format signing key line: `ed25519 <key id> <unpadded base64 seed>`.
fn signing_key_line() -> String {
    let mut seed = [0u8; 32];
    rand::rng().fill(&mut seed);
    let id: String = rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(6)
        .map(char::from)
        .collect();
    format!(
        "ed25519 a_{id} {}\n",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(seed)
    )
}

fn random_secret() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?
    };
    #[cfg(not(unix))]
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}
