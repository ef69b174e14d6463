//! The PostgreSQL side of the harness: a fresh database per server on the machine's PostgreSQL
//! (`KEYGATE_TEST_DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`), dropped
//! with it, and `psql` / `pg_dump` for what a test reads from the database directly.

use std::process::{Command, Stdio};

use super::{Backend, Server, ServerBuilder};

/// The server the PostgreSQL tests use; each test gets a database of its own on it.
pub fn postgres_base_url() -> String {
    std::env::var("KEYGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// Splits `scheme://authority/db?query` into (scheme, authority, query).
fn url_parts(url: &str) -> (&str, &str, Option<&str>) {
    let (scheme, rest) = url
        .split_once("://")
        .unwrap_or_else(|| panic!("KEYGATE_TEST_DATABASE_URL must be a postgres:// URL"));
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    (scheme, rest.split('/').next().unwrap_or(rest), query)
}

/// The same server and credentials, naming another database.
fn with_database(url: &str, db: &str) -> String {
    let (scheme, authority, query) = url_parts(url);
    match query {
        Some(q) => format!("{scheme}://{authority}/{db}?{q}"),
        None => format!("{scheme}://{authority}/{db}"),
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    let (scheme, authority, _) = url_parts(url);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or(user);
            format!("{scheme}://{user}@{host}/…")
        }
        None => format!("{scheme}://{authority}/…"),
    }
}

/// Runs one SQL command with `psql`; the trimmed output, or psql's complaint.
pub fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run psql (is the PostgreSQL client installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// A fresh database on a PostgreSQL server, dropped when this value is.
pub struct PgDatabase {
    /// The server's maintenance database, from which this one was created.
    pub admin_url: String,
    pub name: String,
    /// The URL keygate is given.
    pub url: String,
}

impl PgDatabase {
    /// On the machine's server (`KEYGATE_TEST_DATABASE_URL`). Unreachable fails the test.
    pub fn create() -> PgDatabase {
        Self::create_on(&postgres_base_url())
    }

    pub fn create_on(admin_url: &str) -> PgDatabase {
        let mut suffix = String::new();
        keygate_core::base62::random(12, &mut suffix);
        let name = format!("kg_test_{}", suffix.to_lowercase());
        if let Err(e) = psql(admin_url, &format!("CREATE DATABASE {name}")) {
            panic!(
                "these tests need PostgreSQL, and it is not reachable at {} (set \
                 KEYGATE_TEST_DATABASE_URL, or start it: pg_ctlcluster --skip-systemctl-redirect \
                 $(ls /etc/postgresql) main start): {e}",
                redact(admin_url)
            );
        }
        PgDatabase {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    /// A node of a cluster on this database, given `admin` as its bootstrap token, so every
    /// node of a test shares one admin.
    pub fn node(&self, name: &str, admin: &str) -> ServerBuilder {
        Server::on(Backend::Postgres)
            .name(name)
            .database_url(&self.url)
            .bootstrap_token(admin)
            .log_filter("info")
    }

    /// Everything the database holds, as `pg_dump` prints it.
    pub fn dump(&self) -> Vec<u8> {
        let out = Command::new("pg_dump")
            .arg(&self.url)
            .output()
            .expect("running pg_dump");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}
