//! A replica in front of a real keygate, measured: how long its snapshot takes, how much resident
//! memory the held tokens take, and how soon a token created or revoked in keygate is accepted or
//! refused by it. `bench/run.py replica` runs it (BENCHMARKS.md); it prints one line,
//! `RESULT {...}` (JSON, times in ms).
//!
//! ```sh
//! KEYGATE_ADMIN_TOKEN=… KEYGATE_REPLICATION_TOKEN=… \
//!     cargo run --release -p keygate-client --example replica_bench -- \
//!     http://127.0.0.1:8080 http://127.0.0.1:8081 100
//! ```
//!
//! The replica follows the first URL; tokens are created and revoked on the second (the same
//! URL for one node, another node of the same database to measure across nodes). The admin
//! token creates and revokes; the replication token holds `tokens:replicate`. Each round creates
//! a token with scope `metrics:read`, waits until the replica accepts it, revokes it and waits
//! until the replica refuses it; each time is taken from the moment keygate's answer arrived.

use std::time::{Duration, Instant};

use keygate_client::{LocalAnswer, Options, Replica, Request};
use serde_json::{json, Value};

#[path = "support/rss.rs"]
mod rss;

/// The allocator `keygate serve` runs with, as in `replica_memory`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Longer than this, a change counts as lost: the run fails rather than report it.
const LOST_AFTER: Duration = Duration::from_secs(10);

const USAGE: &str = "usage: KEYGATE_ADMIN_TOKEN=… KEYGATE_REPLICATION_TOKEN=… \
                     replica_bench FOLLOW_URL CHANGE_URL ROUNDS";

type Failure = Box<dyn std::error::Error>;

/// Whether the replica, on its own, accepts `token` for `metrics:read`.
fn accepts(replica: &Replica, token: &str) -> bool {
    let req = Request {
        token,
        scopes: &["metrics:read"],
        ..Request::default()
    };
    matches!(replica.check_local(&req), LocalAnswer::Answered(v) if v.is_valid())
}

/// Waits, woken by each answer the replica gets from keygate, until it accepts `token` (or
/// refuses it, if `accepted` is false); the time since `since`.
async fn until(
    replica: &Replica,
    token: &str,
    accepted: bool,
    since: Instant,
) -> Result<Duration, Failure> {
    if replica
        .wait_until(|_| accepts(replica, token) == accepted, LOST_AFTER)
        .await
    {
        Ok(since.elapsed())
    } else {
        Err(format!(
            "the replica did not {} a token within {LOST_AFTER:?}: {:?}",
            if accepted { "accept" } else { "refuse" },
            replica.stats()
        )
        .into())
    }
}

/// Percentiles of the samples, in ms (the nearest-rank p99: of 100 samples, the 99th).
fn summary(mut samples: Vec<Duration>) -> Value {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rank = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        ms(samples[i])
    };
    json!({
        "n": samples.len(),
        "p50_ms": rank(0.5),
        "p99_ms": rank(0.99),
        "max_ms": ms(*samples.last().expect("at least one round")),
    })
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [follow, change, rounds] = args.as_slice() else {
        return Err(USAGE.into());
    };
    let rounds: usize = rounds.parse().map_err(|_| USAGE)?;
    if rounds == 0 {
        return Err(USAGE.into());
    }
    let admin = std::env::var("KEYGATE_ADMIN_TOKEN").map_err(|_| USAGE)?;
    let replication = std::env::var("KEYGATE_REPLICATION_TOKEN").map_err(|_| USAGE)?;
    let http = reqwest::Client::new();

    let rss_before = rss::rss();
    let started = Instant::now();
    let replica = Replica::connect(follow, replication, Options::default()).await?;
    let snapshot_s = started.elapsed().as_secs_f64();
    let rss_after = rss::rss();
    let held = replica.stats().tokens;

    let mut created = Vec::with_capacity(rounds);
    let mut refused = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let answer = http
            .post(format!("{change}/api/v1/tokens"))
            .bearer_auth(&admin)
            .json(&json!({ "name": format!("replica-bench-{i}"), "scopes": ["metrics:read"] }))
            .send()
            .await?;
        let at = Instant::now();
        if answer.status() != 201 {
            return Err(format!("creating a token: {}", answer.status()).into());
        }
        let body: Value = answer.json().await?;
        let (Some(id), Some(token)) = (body["id"].as_str(), body["token"].as_str()) else {
            return Err(format!("no id or token in {body}").into());
        };
        created.push(until(&replica, token, true, at).await?);

        let answer = http
            .delete(format!("{change}/api/v1/tokens/{id}"))
            .bearer_auth(&admin)
            .send()
            .await?;
        let at = Instant::now();
        if answer.status() != 204 {
            return Err(format!("revoking {id}: {}", answer.status()).into());
        }
        refused.push(until(&replica, token, false, at).await?);
    }

    let stats = replica.stats();
    println!(
        "RESULT {}",
        json!({
            "snapshot_s": snapshot_s,
            "tokens": held,
            "rss_before": rss_before,
            "rss_after": rss_after,
            "bytes_per_token": rss_after.saturating_sub(rss_before) as f64 / held.max(1) as f64,
            "created": summary(created),
            "refused": summary(refused),
            "changes_applied": stats.changes_applied,
            "reconnects": stats.reconnects,
            "snapshots": stats.snapshots,
        })
    );
    Ok(())
}
