//! A short run of the HTTP benchmark script (`bench/run.py`), so it keeps working as the code
//! changes. It measures nothing: one-second loads against the debug build, checked only for
//! complete tables and no failed request. The figures come from `bench/run.py` itself (see
//! BENCHMARKS.md). Needs `wrk` and nginx (`.ci/run` installs both); without them this test is
//! skipped loudly outside CI and fails in CI.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// An example (`seed`, `grpc_load`), built by `cargo test --workspace` beside this test's
/// binaries.
fn example(name: &str) -> Option<PathBuf> {
    let exe = Path::new(BIN);
    let path = exe.parent()?.join("examples").join(name);
    path.exists().then_some(path)
}

fn seeder() -> Option<PathBuf> {
    example("seed")
}

#[test]
fn the_benchmark_script_runs_end_to_end() {
    let missing: Vec<&str> = ["wrk", "nginx", "python3"]
        .into_iter()
        .filter(|p| !installed(p))
        .collect();
    let seeder = seeder();
    if !missing.is_empty() || seeder.is_none() {
        let what = format!(
            "missing: {missing:?}{}",
            if seeder.is_none() {
                " and target/debug/examples/seed (run `cargo test --workspace`)"
            } else {
                ""
            }
        );
        skip_outside_ci("the_benchmark_script_runs_end_to_end", &what);
        return;
    }
    let root = workspace_root();
    let out = Command::new("python3")
        .current_dir(&root)
        .args([
            "bench/run.py",
            "all",
            "--no-build",
            "--no-peer",
            "--no-floor",
            "--keygate",
            BIN,
            "--seeder",
            seeder.unwrap().to_str().unwrap(),
            "--duration",
            "1",
            "--rounds",
            "1",
            "--connections",
            "4",
            "--counts",
            "1000",
            "--sample",
            "500",
            "--cold-duration",
            "1",
            "--write-clients",
            "1,4",
            "--flood-tokens",
            "500",
            "--flood-connections",
            "2",
            "--paced-connections",
            "2",
            "--flood-addresses",
            "10",
        ])
        .env("KEYGATE_TEST_DATABASE_URL", common::postgres_base_url())
        .output()
        .expect("running python3 bench/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/run.py failed:\n{stdout}\n{stderr}"
    );
    for table in ["## verify", "## scale", "## writes", "## flood"] {
        assert!(stdout.contains(table), "no {table} table in:\n{stdout}");
    }
    for row in [
        "| `POST /api/v1/verify` | keygate |",
        "| `POST /api/v1/verify` | keygate, imported token |",
        "| `GET /api/v1/auth` | keygate, imported token |",
        "| `GET /api/v1/auth` | nginx |",
        "| 1,000 |",
        "| sqlite | create | 4 |",
        "| postgres | revoke | 1 |",
        "| saturated | lifted | bad_checksum | same |",
        "| headroom | default | unknown | many |",
        "| lifted | unknown |",
    ] {
        assert!(stdout.contains(row), "no row {row:?} in:\n{stdout}");
    }
    // Verification must never fail; a write run may run out of ids to revoke in a short run.
    for line in stderr.lines().filter(|l| l.contains("/api/v1/")) {
        assert!(!line.contains("failed!"), "failed requests: {line}");
    }
}

/// One second, one round, four connections of `bench/run.py MODE` with the test build of
/// keygate (and `extra` arguments): its stdout, with every row of `rows` in it.
fn short_run(mode: &str, extra: &[&str], rows: &[&str]) -> String {
    let out = Command::new("python3")
        .current_dir(workspace_root())
        .args(["bench/run.py", mode, "--no-build", "--keygate", BIN])
        .args(["--duration", "1", "--rounds", "1", "--connections", "4"])
        .args(extra)
        .env("KEYGATE_TEST_DATABASE_URL", common::postgres_base_url())
        .output()
        .expect("running python3 bench/run.py");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/run.py failed:\n{stdout}\n{stderr}"
    );
    for row in rows {
        assert!(stdout.contains(row), "no row {row:?} in:\n{stdout}");
    }
    stdout
}

/// `bench/run.py analytics`: the two servers side by side, and the counting one's usage API
/// agreeing that it counted.
#[test]
fn the_analytics_benchmark_runs_end_to_end() {
    if !installed("wrk") || !installed("python3") {
        skip_outside_ci(
            "the_analytics_benchmark_runs_end_to_end",
            "wrk or python3 missing",
        );
        return;
    }
    let stdout = short_run(
        "analytics",
        &[],
        &[
            "| `/api/v1/verify` | counted |",
            "| `/api/v1/auth` | not counted |",
        ],
    );
    assert!(!stdout.contains("failed or refused!"), "{stdout}");
    let counted: u64 = stdout
        .split("usage API counted ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .map(|n| n.replace(',', ""))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of the usage API in:\n{stdout}"));
    assert!(counted > 0, "{stdout}");
}

/// `bench/run.py gateways`: ext_authz over gRPC, forward-auth and nginx in one run, none failing.
#[test]
fn the_gateways_benchmark_runs_end_to_end() {
    let missing: Vec<&str> = ["wrk", "nginx", "python3"]
        .into_iter()
        .filter(|p| !installed(p))
        .collect();
    let load = example("grpc_load");
    if !missing.is_empty() || load.is_none() {
        skip_outside_ci(
            "the_gateways_benchmark_runs_end_to_end",
            &format!(
                "missing: {missing:?}{}",
                if load.is_none() {
                    " and target/debug/examples/grpc_load (run `cargo test --workspace`)"
                } else {
                    ""
                }
            ),
        );
        return;
    }
    let stdout = short_run(
        "gateways",
        &["--grpc-load", load.unwrap().to_str().unwrap()],
        &[
            "| ext_authz gRPC Check |",
            "| forward-auth GET /api/v1/auth |",
            "| nginx `return 200` |",
        ],
    );
    assert!(!stdout.contains("failed!"), "{stdout}");
}

/// `bench/run.py allowlist`: both tokens verified on both routes, none refused (the bound token's
/// last network is the load generator's).
#[test]
fn the_allowlist_benchmark_runs_end_to_end() {
    if !installed("wrk") || !installed("python3") {
        skip_outside_ci(
            "the_allowlist_benchmark_runs_end_to_end",
            "wrk or python3 missing",
        );
        return;
    }
    let stdout = short_run(
        "allowlist",
        &[],
        &[
            "| `/api/v1/verify` | 100 networks |",
            "| `/api/v1/auth` | plain |",
        ],
    );
    assert!(!stdout.contains("failed or refused!"), "{stdout}");
}

/// `bench/run.py replica`: the replica_bench example against a seeded SQLite keygate and two
/// PostgreSQL nodes; every create accepted and every revoke refused (the example fails
/// otherwise), in both tables' rows.
#[test]
fn the_replica_benchmark_runs_end_to_end() {
    let bench = example("replica_bench");
    let seeder = seeder();
    let (Some(bench), Some(seeder), true) = (&bench, &seeder, installed("python3")) else {
        let missing: Vec<&str> = [
            ("python3", installed("python3")),
            ("target/debug/examples/replica_bench", bench.is_some()),
            ("target/debug/examples/seed", seeder.is_some()),
        ]
        .into_iter()
        .filter_map(|(what, there)| (!there).then_some(what))
        .collect();
        skip_outside_ci(
            "the_replica_benchmark_runs_end_to_end",
            &format!("missing: {missing:?} (run `cargo test --workspace`)"),
        );
        return;
    };
    let stdout = short_run(
        "replica",
        &[
            "--replica-bench",
            bench.to_str().unwrap(),
            "--seeder",
            seeder.to_str().unwrap(),
            "--replica-tokens",
            "2000",
            "--propagation-rounds",
            "5",
        ],
        &[
            "| SQLite, one node | 2,00",
            "| PostgreSQL, two nodes (follows A, changes on B) |",
        ],
    );
    assert!(stdout.contains("## replica"), "{stdout}");
}

/// `bench/run.py webhooks`: every event of the burst reaches the receiver, the latency is
/// measured for every paced create, and both keygates answer every create and verify.
#[test]
fn the_webhooks_benchmark_runs_end_to_end() {
    if !installed("wrk") || !installed("python3") {
        skip_outside_ci(
            "the_webhooks_benchmark_runs_end_to_end",
            "wrk or python3 missing",
        );
        return;
    }
    let stdout = short_run(
        "webhooks",
        &["--webhook-latency-events", "5"],
        &[
            "## webhooks",
            "| create | 3 endpoints |",
            "| verify | none |",
            "(5 creates 20 ms apart)",
        ],
    );
    assert!(!stdout.contains("failed!"), "{stdout}");
    // The whole backlog arrived.
    let line = stdout
        .lines()
        .find(|l| l.starts_with("- delivered to one local receiver"))
        .unwrap_or_else(|| panic!("no rate line in:\n{stdout}"));
    let backlog = line
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(" token.created"))
        .map(|(counts, _)| counts.replace(',', ""))
        .unwrap_or_default();
    let counts: Vec<u64> = backlog.split(' ').filter_map(|w| w.parse().ok()).collect();
    assert!(
        counts.len() == 2 && counts[0] >= counts[1] && counts[1] > 0,
        "not every event of the backlog arrived: {line}"
    );
}
