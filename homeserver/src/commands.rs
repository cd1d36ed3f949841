//! The CLI's commands.

pub(crate) mod register_user;
pub(crate) mod run;

use std::path::Path;

use homeserver::config::{GenerateOptions, generate};

/// A command failure and the exit status it deserves: 2 for bad config or arguments, else 1.
pub(crate) struct Failure {
    error: anyhow::Error,
    code: u8,
}

impl Failure {
    pub(crate) fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self {
            error: error.into(),
            code: 2,
        }
    }
    pub(crate) fn exit_code(&self) -> u8 {
        self.code
    }
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            code: 1,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if f.alternate() {
            write!(f, "{:#}", self.error)
        } else {
            write!(f, "{}", self.error)
        }
    }
}

pub(crate) fn generate_config(
    config_path: &Path,
    server_name: &str,
    data_dir: &Path,
) -> Result<(), Failure> {
    if ruma::ServerName::parse(server_name).is_err() {
        return Err(Failure::usage(anyhow::anyhow!(
            "--server-name: `{server_name}` is not a valid server name"
        )));
    }
    let opts = GenerateOptions {
        server_name: server_name.to_owned(),
        config_path: config_path.to_owned(),
        data_dir: data_dir.to_owned(),
    };
    generate(&opts).map_err(Failure::usage)?;
    println!("wrote {}", config_path.display());
    Ok(())
}

pub(crate) fn hash_password(password: Option<String>) -> Result<(), Failure> {
    let password = match password {
        Some(p) => p,
        None => register_user::prompt("Password: ")?,
    };
    println!("{}", homeserver::service::passwords::hash(&password));
    Ok(())
}
