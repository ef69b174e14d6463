//! Tests that need a tool from outside Rust (nginx, Chromium, wrk, a PyPI package): without it
//! they are skipped, loudly, on a developer's machine, and fail in CI, which must run them all.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether this is a CI run (`CI` set to anything but empty or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// Fails the test in CI; elsewhere prints a banner that no one can miss. The caller returns.
pub fn skip_outside_ci(test: &str, why: &str) {
    assert!(!in_ci(), "{test} cannot run, and CI must run it: {why}");
    eprintln!("\n################################################################");
    eprintln!("### SKIPPED {test}: {why}");
    eprintln!("################################################################\n");
}

/// Whether `program` is on the PATH (or in /usr/sbin, where Debian puts nginx).
pub fn installed(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "command -v {program} || test -x /usr/sbin/{program}"
        ))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The root of the workspace, where `bench/` and `target/` are.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The last `n` lines of `text`, for failure messages that would drown in a whole log.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
