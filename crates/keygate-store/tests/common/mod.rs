//! What the store's test suites share: a database of its own for each test, opened with the
//! default tenant, and the macro that runs a suite's cases on both backends. Not every suite uses
//! every item, hence the `dead_code` allowances.

use std::sync::Arc;

use keygate_store::{now, Backend, SqlStore, Store, Write, DEFAULT_TENANT};

/// A database of its own for one test.
pub enum TestDb {
    /// Held so the directory (and the database in it) lives as long as the test.
    Sqlite {
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl TestDb {
    pub async fn create(backend: Backend) -> (TestDb, String) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = keygate_store::sqlite_url_in_dir(dir.path());
                (TestDb::Sqlite { _dir: dir }, url)
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin_url = std::env::var("KEYGATE_TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin_url} is unreachable ({e}); start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start")
                });
                let mut suffix = String::new();
                keygate_core::base62::random(12, &mut suffix);
                let name = format!("kg_store_{}", suffix.to_lowercase());
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
                (TestDb::Postgres { admin_url, name }, url)
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { admin_url, name } = self {
            let _ = std::process::Command::new("psql")
                .arg(&*admin_url)
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                ])
                .output();
        }
    }
}

/// A token of the default tenant, owned by the tenant, with `tokens:read`: not stored yet.
#[allow(dead_code)]
pub fn service_token() -> keygate_store::TokenRecord {
    use keygate_core::{PlainToken, ScopeSet, TokenId, TokenPrefix};
    let (_, plain) = PlainToken::mint(&TokenPrefix::default());
    keygate_store::TokenRecord::minted(
        TokenId::from_stored(plain.expose()[..19].to_owned()),
        DEFAULT_TENANT.into(),
        plain.hash(),
        "t".into(),
        DEFAULT_TENANT.into(),
        ScopeSet::parse(["tokens:read"]).unwrap(),
        now(),
    )
}

/// A fresh database with the default tenant, open.
#[allow(dead_code)]
pub struct Db {
    _db: TestDb,
    pub url: String,
    pub store: Arc<SqlStore>,
}

#[allow(dead_code)]
pub async fn db(backend: Backend) -> Db {
    let (test_db, url) = TestDb::create(backend).await;
    let store = Arc::new(SqlStore::open(&url).await.unwrap());
    store
        .apply(
            &[Write::InsertTenant {
                id: DEFAULT_TENANT.into(),
                created_at: now(),
            }],
            &[],
        )
        .await
        .unwrap();
    Db {
        _db: test_db,
        url,
        store,
    }
}

/// A connection of its own to the test's database, beside the store, as an operator's console
/// would open one.
#[allow(dead_code)]
pub async fn connect_beside(db: &Db) -> sqlx::AnyConnection {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(&db.url).await.unwrap()
}

/// Runs one statement on the database beside the store.
#[allow(dead_code)]
pub async fn console(db: &Db, sql: &str) {
    let mut c = connect_beside(db).await;
    sqlx::query(sql).execute(&mut c).await.unwrap();
}

/// `on_both_backends!(a, b)` makes each `async fn a(db: Db)` two tests, `sqlite::a` and
/// `postgres::a`, each on a fresh [`Db`].
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(common::db(Backend::Sqlite).await).await })*
        }
        mod postgres {
            use super::*;
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(common::db(Backend::Postgres).await).await })*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use on_both_backends;
