//! Resident memory of this process, for the memory example (included with `#[path]`). A copy of
//! keygate-store's: a published crate cannot include a file from outside its own directory.

/// Resident memory of this process, in bytes (Linux: `VmRSS` of `/proc/self/status`).
pub fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}
