//! The only place with SQL. One module per aggregate; SQLite and PostgreSQL behind one interface.
//!
//! Queries are written once, with `$N` placeholders that both SQLite and PostgreSQL accept, and run
//! through sqlx's `Any` driver. SQLite runs in WAL mode with one writer connection and a pool of
//! readers; PostgreSQL uses one pool for both.

mod account_data;
mod appservice;
mod devices;
mod directory;
mod e2e_keys;
mod event_chain;
mod events;
mod filters;
mod media;
mod memberships;
mod presence;
mod receipts;
mod to_device;
mod tokens;
mod users;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AnyPool,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migrator},
};

pub use account_data::AccountDataRow;
pub use appservice::QueuedTxn;
pub use devices::DeviceRow;
pub use e2e_keys::{KeySignatureRow, OneTimeKeyRow};
pub use events::{Direction, EventRow, NewEvent};
pub use media::{MediaRow, ThumbnailRow};
pub use memberships::MembershipRow;
pub use presence::PresenceRow;
pub use receipts::ReceiptRow;
pub use to_device::ToDeviceRow;
pub use tokens::{NewSession, TokenRow};
pub use users::{NewUser, UserRow};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/homeserver/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/homeserver/postgres");

/// Which database a [`Store`] talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (created if missing).
    Sqlite { path: String },
    /// A PostgreSQL server, as a `postgres://` URL, with at most `max_connections` connections
    /// (writers and readers together) and at least `min_connections` readers kept open.
    Postgres {
        url: String,
        max_connections: u32,
        min_connections: u32,
    },
}

/// Storage failures. Constraint violations the domain cares about have their own variants.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Migrate(String),
    #[error("the row already exists")]
    Conflict,
    #[error("the database writer has stopped")]
    Closed,
}

impl StoreError {
    fn from_write(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict,
            _ => StoreError::Db(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Handle to the homeserver database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    writer: AnyPool,
    reader: AnyPool,
    tokens: std::sync::Arc<tokens::TokenCache>,
}

impl Store {
    /// Connects, configures and migrates the database. Refuses a schema newer than this binary.
    pub async fn open(backend: &Backend) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let store = match backend {
            Backend::Sqlite { path } => {
                if let Some(parent) = std::path::Path::new(path).parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Migrate(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let url = format!("sqlite://{path}?mode=rwc");
                let writer = sqlite_pool(&url, 1).await?;
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&writer)
                    .await?;
                let reader = sqlite_pool(&url, SQLITE_READERS).await?;
                Self {
                    writer,
                    reader,
                    tokens: Default::default(),
                }
            }
            Backend::Postgres {
                url,
                max_connections,
                min_connections,
            } => {
                // Writes get connections of their own, so that the event writer never queues
                // behind woken `/sync`s for a connection; both pools open theirs at start.
                let readers = max_connections.saturating_sub(POSTGRES_WRITERS).max(2);
                let writer = postgres_pool(url, POSTGRES_WRITERS, POSTGRES_WRITERS).await?;
                let reader = postgres_pool(url, readers, (*min_connections).min(readers)).await?;
                Self {
                    writer,
                    reader,
                    tokens: Default::default(),
                }
            }
        };
        let migrator = match backend {
            Backend::Sqlite { .. } => &SQLITE_MIGRATIONS,
            Backend::Postgres { .. } => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&store.writer).await.map_err(|e| match e {
            MigrateError::VersionMissing(v) => StoreError::Migrate(format!(
                "the database schema (migration {v}) is newer than this homeserver knows; \
                 run the newer homeserver binary that created it, or restore a backup"
            )),
            other => StoreError::Migrate(format!("applying migrations failed: {other}")),
        })?;
        Ok(store)
    }

    /// Whether the database is SQLite (one writer connection) rather than PostgreSQL.
    pub fn is_sqlite(&self) -> bool {
        self.writer.connect_options().database_url.scheme() == "sqlite"
    }

    /// Connections open and idle in the writer and reader pools, for metrics.
    pub fn pool_usage(&self) -> [PoolUsage; 2] {
        [("writer", &self.writer), ("reader", &self.reader)].map(|(pool, p)| PoolUsage {
            pool,
            open: p.size(),
            idle: p.num_idle(),
        })
    }

    /// Closes every connection (used on shutdown and by tests that reopen the same database).
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

/// The connections of one pool at one moment.
#[derive(Clone, Copy, Debug)]
pub struct PoolUsage {
    /// `writer` or `reader`.
    pub pool: &'static str,
    /// Connections open, idle or in use.
    pub open: u32,
    /// Open connections no query holds.
    pub idle: usize,
}

/// PostgreSQL connections kept for writes: the event writer's, and one for everything else.
const POSTGRES_WRITERS: u32 = 2;
async fn postgres_pool(url: &str, max: u32, min: u32) -> Result<AnyPool> {
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(min)
        .acquire_timeout(Duration::from_secs(30))
        .connect(url)
        .await?)
}

/// SQLite reader connections. Woken `/sync`s are mostly answered from memory, so a few suffice;
/// each holds its own page cache and prepared statements.
const SQLITE_READERS: u32 = 4;
async fn sqlite_pool(url: &str, max: u32) -> Result<AnyPool> {
    // `AnyConnectOptions` has no SQLite pragmas, so each connection sets them itself.
    let _ = sqlx::any::AnyConnectOptions::from_str(url)?;
    Ok(AnyPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA busy_timeout = 10000")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                // Each connection's page cache: 1,000 KiB (SQLite's default is 2,000). The
                // operating system caches the file as well, so more mostly costs memory.
                sqlx::query("PRAGMA cache_size = -1000")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect(url)
        .await?)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
