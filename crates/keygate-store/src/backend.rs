//! Which database a URL names, where SQLite's file lives in a data directory, and the channel
//! PostgreSQL nodes announce changes on: what both the opening code and the queries in `sql`
//! need to know about the backend, with no SQL of its own.

use std::path::Path;

/// The channel on which PostgreSQL nodes announce token changes.
pub const CHANGES_CHANNEL: &str = "keygate_token_changes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if keygate supports it.
    pub fn of_url(url: &str) -> Option<Backend> {
        match url.split_once(':').map(|(s, _)| s) {
            Some("sqlite") => Some(Backend::Sqlite),
            Some("postgres" | "postgresql") => Some(Backend::Postgres),
            _ => None,
        }
    }
}

/// `sqlite://<dir>/keygate.db`: the default database inside a data directory.
pub fn sqlite_url_in_dir(dir: &Path) -> String {
    format!("sqlite://{}", encode_path(&dir.join("keygate.db")))
}

/// Percent-encodes what a URL path cannot hold as is (sqlx decodes it again).
pub(crate) fn encode_path(p: &Path) -> String {
    let mut out = String::new();
    for c in p.display().to_string().chars() {
        match c {
            '%' | '?' | '#' | ' ' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}
