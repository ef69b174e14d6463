//! What the store's test suites share: a database of its own for each test.

use keygate_store::Backend;

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
