//! A load generator for Envoy's ext_authz `Check` over gRPC, as wrk is for HTTP: `concurrency`
//! calls in flight at all times, spread over `channels` HTTP/2 connections (Envoy keeps about
//! one per worker thread), for `duration` seconds. It prints the line `bench/run.py` reads from
//! wrk (`RESULT {...}`, latencies in µs); a call that fails or is not OK counts as failed.
//!
//! ```sh
//! cargo run --release -p keygate-server --example grpc_load -- \
//!     127.0.0.1:9191 "$TOKEN" --concurrency 64 --channels 2 --duration 10 --threads 1
//! ```

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use tonic::transport::{Channel, Endpoint};

struct Options {
    addr: String,
    token: String,
    concurrency: usize,
    channels: usize,
    duration: Duration,
    threads: usize,
}

fn options() -> Options {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: grpc_load ADDR TOKEN [--concurrency N] [--channels N] [--duration S] [--threads N]";
    let addr = args.next().expect(usage);
    let token = args.next().expect(usage);
    let mut o = Options {
        addr,
        token,
        concurrency: 64,
        channels: 2,
        duration: Duration::from_secs(10),
        threads: 1,
    };
    while let Some(flag) = args.next() {
        let value: u64 = args
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number; {usage}"));
        match flag.as_str() {
            "--concurrency" => o.concurrency = value as usize,
            "--channels" => o.channels = value as usize,
            "--duration" => o.duration = Duration::from_secs(value),
            "--threads" => o.threads = value as usize,
            _ => panic!("unknown {flag}; {usage}"),
        }
    }
    o
}

/// The request Envoy sends for `GET /documents` with the token in `Authorization`.
fn check_request(token: &str) -> CheckRequest {
    let http = HttpRequest {
        method: "GET".into(),
        path: "/documents".into(),
        host: "api.example".into(),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
        headers: [
            ("authorization".to_owned(), format!("Bearer {token}")),
            (":authority".to_owned(), "api.example".to_owned()),
            ("user-agent".to_owned(), "grpc_load".to_owned()),
        ]
        .into(),
        ..Default::default()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            context_extensions: [("scopes".to_owned(), "metrics:read".to_owned())].into(),
            ..Default::default()
        }),
    }
}

/// Calls until `end`; the latency of each in µs, and how many failed.
async fn caller(channel: Channel, req: CheckRequest, end: Instant) -> (Vec<u32>, u64) {
    let mut client = AuthorizationClient::new(channel);
    let mut latencies = Vec::with_capacity(100_000);
    let mut failed = 0;
    while Instant::now() < end {
        let started = Instant::now();
        let ok = match client.check(req.clone()).await {
            Ok(r) => r.into_inner().status.is_some_and(|s| s.code == 0),
            Err(_) => false,
        };
        latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
        failed += u64::from(!ok);
    }
    (latencies, failed)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p / 100.0).round() as usize]
}

fn main() {
    let o = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let endpoint = Endpoint::from_shared(format!("http://{}", o.addr))
            .expect("an address")
            .tcp_nodelay(true);
        let mut channels = Vec::new();
        for _ in 0..o.channels.max(1) {
            // One connection each: a `Channel` is one HTTP/2 connection once connected.
            channels.push(endpoint.connect().await.expect("connecting"));
        }
        let req = check_request(&o.token);
        let started = Instant::now();
        let end = started + o.duration;
        let tasks: Vec<_> = (0..o.concurrency.max(1))
            .map(|i| {
                let channel = channels[i % channels.len()].clone();
                tokio::spawn(caller(channel, req.clone(), end))
            })
            .collect();
        let mut latencies = Vec::new();
        let mut failed = 0;
        for t in tasks {
            let (l, f) = t.await.expect("a caller");
            latencies.extend(l);
            failed += f;
        }
        let took = started.elapsed();
        latencies.sort_unstable();
        println!(
            "RESULT {{\"requests\": {}, \"duration_us\": {}, \"failed\": {}, \"p50_us\": {}, \
             \"p90_us\": {}, \"p99_us\": {}, \"max_us\": {}, \"valid\": null}}",
            latencies.len(),
            took.as_micros(),
            failed,
            percentile(&latencies, 50.0),
            percentile(&latencies, 90.0),
            percentile(&latencies, 99.0),
            latencies.last().copied().unwrap_or(0),
        );
    });
}
