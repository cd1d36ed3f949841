//! The bridge's database: portals, puppets, messages, reactions, user settings, backfill
//! cursors, processed transaction ids and the network's own key/value pairs, on SQLite or
//! PostgreSQL.
//!
//! This module is the only place with SQL. Both backends run the same queries through
//! [`sqlx::AnyPool`]; migrations live in `migrations/appservice-sdk/{sqlite,postgres}/` and are
//! embedded in the binary.
//!
//! ```no_run
//! # async fn demo() -> appservice_sdk::Result<()> {
//! use appservice_sdk::store::Store;
//! let store = Store::connect("sqlite:bridge.db").await?; // or "postgres://user@host/db"
//! store.mark_txn_processed("txn1").await?;
//! assert!(store.is_txn_processed("txn1").await?);
//! # Ok(()) }
//! ```

mod kv;
mod messages;
mod portals;
mod puppets;
mod settings;
mod txns;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};

use crate::error::{Error, Result};

pub use messages::{MessageRecord, ReactionRecord};
pub use portals::PortalRecord;
pub use puppets::PuppetRecord;
pub use settings::UserSettings;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("../migrations/appservice-sdk/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("../migrations/appservice-sdk/postgres");

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Handle to the bridge database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    cache: Arc<Cache>,
}

/// Read-through caches of the rows read on every event. Every write goes through [`Store`],
/// which updates them, so they stay exact for the one process that owns the database.
#[derive(Debug, Default)]
struct Cache {
    portals_by_room: Mutex<HashMap<String, PortalRecord>>,
    puppets: Mutex<HashMap<String, PuppetRecord>>,
    user_settings: Mutex<HashMap<String, UserSettings>>,
}

/// Entries a cache holds before it starts over; keeps memory bounded.
const CACHE_LIMIT: usize = 10_000;

fn cache_put<V>(map: &Mutex<HashMap<String, V>>, key: &str, value: V) {
    let mut map = map.lock().expect("cache lock");
    if map.len() >= CACHE_LIMIT && !map.contains_key(key) {
        map.clear();
    }
    map.insert(key.to_owned(), value);
}

fn cache_get<V: Clone>(map: &Mutex<HashMap<String, V>>, key: &str) -> Option<V> {
    map.lock().expect("cache lock").get(key).cloned()
}

impl Store {
    /// Connects to `sqlite:PATH` (the file is created if missing) or `postgres://...`, and
    /// applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let (backend, url) = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            (Backend::Postgres, url.to_owned())
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            let url = if rest.contains('?') {
                format!("sqlite://{rest}")
            } else {
                format!("sqlite://{rest}?mode=rwc")
            };
            (Backend::Sqlite, url)
        } else {
            return Err(Error::Config {
                path: "appservice.database".to_owned(),
                message: format!("expected a sqlite: path or a postgres:// URL, got {url:?}"),
            });
        };
        let options = AnyPoolOptions::new().max_connections(match backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 10,
        });
        let options = if backend == Backend::Sqlite {
            options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
        } else {
            options
        };
        let pool = options.connect(&url).await?;
        let store = Self {
            pool,
            backend,
            cache: Arc::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (done by [`Store::connect`]).
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses an id column into a ruma id type.
pub(crate) fn parse_id<T>(column: &str, value: String) -> Result<T>
where
    T: TryFrom<String>,
    T::Error: std::fmt::Display,
{
    T::try_from(value).map_err(|e| Error::Protocol(format!("bad {column} in database: {e}")))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Fresh databases for tests: every storage test runs on both backends.

    use super::*;
    use rand::Rng;
    use sqlx::AssertSqlSafe;

    /// PostgreSQL server used by tests; `CAUSEWAY_TEST_PG` overrides.
    fn pg_base() -> String {
        std::env::var("CAUSEWAY_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
    }

    /// A fresh store and what to clean up afterwards.
    pub(crate) struct TestStore {
        pub(crate) store: Store,
        _dir: Option<tempfile::TempDir>,
        pg_db: Option<String>,
    }

    impl TestStore {
        /// Drops the PostgreSQL database, if any.
        pub(crate) async fn cleanup(self) {
            self.store.close().await;
            if let Some(db) = self.pg_db {
                install_default_drivers();
                let admin = AnyPool::connect(&format!("{}/postgres", pg_base()))
                    .await
                    .unwrap();
                admin
                    .execute(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                    .await
                    .unwrap();
                admin.close().await;
            }
        }
    }

    /// A fresh SQLite store in a temporary directory.
    pub(crate) async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("bridge.db").display());
        TestStore {
            store: Store::connect(&url).await.unwrap(),
            _dir: Some(dir),
            pg_db: None,
        }
    }

    /// A fresh PostgreSQL database, created through the `postgres` database.
    pub(crate) async fn postgres() -> TestStore {
        install_default_drivers();
        let name = format!("sdk_test_{:016x}", rand::rng().random::<u64>());
        let admin = AnyPool::connect(&format!("{}/postgres", pg_base()))
            .await
            .unwrap();
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        admin.close().await;
        let store = Store::connect(&format!("{}/{name}", pg_base()))
            .await
            .unwrap();
        TestStore {
            store,
            _dir: None,
            pg_db: Some(name),
        }
    }

    /// Both backends, fresh.
    pub(crate) async fn both() -> Vec<TestStore> {
        vec![sqlite().await, postgres().await]
    }
}
