//! What the suites that care about the client's address share: requests sent from a chosen
//! loopback address, and waiting for what the server writes after its answer (audit entries of
//! refusals, written in a task of their own).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;

/// An HTTP client whose requests leave from `source`.
pub fn client_from(source: &str) -> Client {
    Client::builder()
        .local_address(source.parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Polls until `probe` gives a value, for work keygate does after it answers (audit entries,
/// deliveries and their retries, scans); panics after 60 s with `what`. A bound for correctness,
/// never a measure of speed: a loaded CI machine may take seconds, a lease tens of them.
pub fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
