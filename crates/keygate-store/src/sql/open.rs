//! Opening a store: the pools each database wants, its migrations, and a cause that says why a
//! database cannot be reached.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Executor};

use crate::backend::{encode_path, Backend};
use crate::sql::group_commit::GroupCommitter;
use crate::sql::SqlStore;
use crate::store::{Result, StoreError};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// How long a request waits for a database connection before answering 503: a database that
/// is down should be reported quickly, not after a client has timed out.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl SqlStore {
    /// Opens the database a URL names (`sqlite://…` or `postgres://…`), creating it if it is a
    /// SQLite file that does not exist yet, and applies pending migrations. On PostgreSQL,
    /// several nodes may start at once: sqlx's migrator holds an advisory lock while it runs.
    pub async fn open(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        match Backend::of_url(url) {
            Some(Backend::Sqlite) => open_sqlite(url).await,
            Some(Backend::Postgres) => open_postgres(url).await,
            None => Err(StoreError::Unavailable(
                "the database URL must start with sqlite:// or postgres://".into(),
            )),
        }
    }
}

async fn open_sqlite(url: &str) -> Result<SqlStore> {
    let opts = SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL: {e}")))?;
    let file = opts.get_filename().to_owned();
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
    }
    let in_file = |e: sqlx::Error| {
        StoreError::Unavailable(format!("SQLite database {}: {e}", file.display()))
    };
    let base = format!("sqlite://{}", encode_path(&file));
    // One writer: SQLite serialises writers anyway, and a lone writer never meets SQLITE_BUSY
    // on upgrading a transaction. WAL lets readers run beside it; synchronous=FULL makes every
    // commit durable before the 201/204 leaves, and the group committer lets concurrent writes
    // share one commit (one fsync) instead of queueing for one each.
    let writer = AnyPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    "PRAGMA synchronous = FULL",
                    "PRAGMA foreign_keys = ON",
                    "PRAGMA busy_timeout = 10000",
                ] {
                    conn.execute(pragma).await?;
                }
                Ok(())
            })
        })
        .connect(&format!("{base}?mode=rwc"))
        .await
        .map_err(in_file)?;
    SQLITE_MIGRATIONS
        .run(&writer)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
    let reader = AnyPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 10000").await?;
                Ok(())
            })
        })
        .connect(&format!("{base}?mode=ro"))
        .await
        .map_err(in_file)?;
    Ok(SqlStore {
        group: Some(GroupCommitter::start(writer.clone())),
        writer,
        reader,
        backend: Backend::Sqlite,
        feed_url: None,
        replication_signal: Default::default(),
    })
}

async fn open_postgres(url: &str) -> Result<SqlStore> {
    probe_postgres(url).await?;
    // Never put the URL in a message: it may hold a password.
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // PostgreSQL's notices ("relation ... already exists, skipping" from every
                // node's migration check after the first) tell an operator nothing; warnings
                // and errors still arrive.
                conn.execute("SET client_min_messages = warning").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))?;
    POSTGRES_MIGRATIONS
        .run(&pool)
        .await
        .map_err(|e| StoreError::Unavailable(format!("migration failed: {e}")))?;
    Ok(SqlStore {
        writer: pool.clone(),
        reader: pool,
        backend: Backend::Postgres,
        feed_url: Some(url.to_owned()),
        replication_signal: Default::default(),
        group: None,
    })
}

/// One connection made directly, so that a database that cannot be reached is reported with
/// its cause (connection refused, unknown host, bad password) at once: a pool retries until its
/// timeout and then says only that it timed out.
async fn probe_postgres(url: &str) -> Result<()> {
    let unavailable = |cause: String| StoreError::Unavailable(format!("PostgreSQL: {cause}"));
    let conn = tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::AnyConnection::connect(url))
        .await
        .map_err(|_| unavailable(format!("no connection within {ACQUIRE_TIMEOUT:?}")))?
        .map_err(|e| unavailable(e.to_string()))?;
    // A failed goodbye leaves nothing behind: the server drops the connection either way.
    let _ = conn.close().await;
    Ok(())
}
