//! SQL on a server's SQLite file from outside the server, with Python's sqlite3 module (Python
//! is on every machine these tests run on; the sqlite3 shell is not): to check what a killed
//! server left, or to put in place what no API writes yet.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs SQL on the file opened read-only. One line per row, columns joined by `|`, as the
/// shell prints them.
pub fn sqlite_readonly(path: &Path, sql: &str) -> String {
    run(path, sql, "?mode=ro")
}

/// Runs one statement on the file, beside a running server (waiting for its writer as long as
/// needed), and commits it.
pub fn sqlite_write(path: &Path, sql: &str) -> String {
    run(path, sql, "")
}

fn run(path: &Path, sql: &str, mode: &str) -> String {
    const RUN: &str = "import pathlib, sqlite3, sys\n\
        db = sqlite3.connect(pathlib.Path(sys.argv[1]).as_uri() + sys.argv[3], uri=True, timeout=60)\n\
        for row in db.execute(sys.argv[2]):\n\
        \x20   print('|'.join('' if v is None else str(v) for v in row))\n\
        db.commit()\n";
    let out = Command::new("python3")
        .args(["-c", RUN])
        .arg(path)
        .arg(sql)
        .arg(mode)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("this test reads the database with python3's sqlite3: {e}"));
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
