//! `homeserver`: run the server, generate a config, register users, hash passwords.

mod commands;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Causeway, a Matrix homeserver.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (created with defaults for `localhost` if absent).
    #[arg(
        short = 'c',
        long = "config-path",
        global = true,
        default_value = "homeserver.yaml"
    )]
    config_path: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Write a config with fresh secrets and a signing key; refuses to overwrite.
    GenerateConfig {
        /// The domain of your user ids, e.g. `example.org`.
        #[arg(long)]
        server_name: String,
        /// Where the database, media and signing key go.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
    },
    /// Register a user through the shared-secret admin API (like Synapse's register_new_matrix_user).
    RegisterUser(commands::register_user::Args),
    /// Print a password hash usable in the database.
    HashPassword {
        /// The password (prompted for when absent).
        #[arg(short, long)]
        password: Option<String>,
    },
}

/// Large allocations (argon2's 19 MiB per password hash, media buffers) must go back to the OS
/// when freed. glibc raises its mmap threshold after the first such free, after which every
/// block is carved from the heap and stays resident (measured: +19 MiB per login). A fixed
/// threshold keeps them mmapped. glibc also gives each thread that allocates at the same time its
/// own arena (up to eight per core), each keeping freed memory: two arenas are enough here.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called once, before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    tune_allocator();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("cannot start the tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            None => commands::run::run(&cli.config_path).await,
            Some(Command::GenerateConfig {
                server_name,
                data_dir,
            }) => commands::generate_config(&cli.config_path, &server_name, &data_dir),
            Some(Command::RegisterUser(args)) => {
                commands::register_user::run(&cli.config_path, args).await
            }
            Some(Command::HashPassword { password }) => commands::hash_password(password),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code())
        }
    }
}
