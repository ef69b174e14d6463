//! The limiter as callers see it, on both backends. The Redis tests use the real server at
//! `KEYGATE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::ratelimit::decision::Applied;
use crate::ratelimit::limiter::RateLimiter;

fn limit(name: &str, limit: u64, duration_ms: u64, cost: u64) -> Applied<'_> {
    Applied {
        name,
        limit,
        duration_ms,
        cost,
        auto_apply: true,
    }
}

/// A token id no other test run has used, so runs never see each other's keys.
fn unique_token(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "tok_{test}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Redis to test against, or `None` (said loudly) when it is not running here. With
/// `CI=true` a missing Redis fails the test instead.
async fn redis_url(test: &str) -> Option<String> {
    let url = std::env::var("KEYGATE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let reachable = async {
        let client = ::redis::Client::open(url.as_str()).ok()?;
        let mut connection = client.get_multiplexed_async_connection().await.ok()?;
        ::redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .ok()
    };
    if reachable.await.is_some() {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: Redis is not reachable at {url}, and CI=true requires it");
    }
    eprintln!("SKIPPED: {test}: Redis is not reachable at {url} (set KEYGATE_TEST_REDIS_URL)");
    None
}

/// A port on which nothing listens: bound, then closed.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn no_limits_is_allowed_with_no_reports() {
    let decision = RateLimiter::local().check("tok_x", &[]).await;
    assert!(decision.allowed);
    assert!(decision.reports.is_empty());
    assert_eq!(decision.retry_after_ms, 0);
}

#[tokio::test]
async fn a_malformed_redis_url_is_refused_without_echoing_it() {
    assert!(RateLimiter::redis("not a url").await.is_err());
    let error = RateLimiter::redis("redis://:hunter2@127.0.0.1:notaport")
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("not valid"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn redis_counts_a_burst_then_refuses_all_or_nothing() {
    let Some(url) = redis_url("redis_counts_a_burst_then_refuses_all_or_nothing").await else {
        return;
    };
    let limiter = RateLimiter::redis(&url).await.unwrap();
    assert_eq!(limiter.backend_name(), "redis");
    let token = unique_token("burst");
    let (wide, narrow) = (limit("wide", 10, 60_000, 1), limit("narrow", 3, 60_000, 1));
    for remaining in [2, 1, 0] {
        let d = limiter.check(&token, &[wide, narrow]).await;
        assert!(d.allowed);
        assert_eq!(d.reports[1].remaining, remaining);
        assert!(!d.reports[1].exceeded);
    }
    let refused = limiter.check(&token, &[wide, narrow]).await;
    assert!(!refused.allowed);
    assert!(refused.reports[1].exceeded && !refused.reports[0].exceeded);
    assert_eq!(
        refused.reports[0].remaining, 7,
        "the wide limit was not charged"
    );
    assert!(refused.retry_after_ms > 19_000 && refused.retry_after_ms <= 20_000);
    let now_ms = crate::ratelimit::local::now_us() / 1_000;
    let reset = u64::try_from(refused.reports[1].reset_ms).unwrap();
    // Redis's clock and ours are the same machine's here.
    assert!(
        reset > now_ms + 59_000 && reset <= now_ms + 61_000,
        "{reset} vs {now_ms}"
    );

    let cost_zero = limiter
        .check(&token, &[limit("narrow", 3, 60_000, 0)])
        .await;
    assert!(cost_zero.allowed);
    assert_eq!(cost_zero.reports[0].remaining, 0);
    let too_dear = limiter
        .check(&token, &[limit("wide", 10, 60_000, 11)])
        .await;
    assert!(!too_dear.allowed);
    assert_eq!(too_dear.retry_after_ms, 60_000);
    let alone = limiter.check(&token, &[wide]).await;
    assert!(alone.allowed);
    assert_eq!(alone.reports[0].remaining, 6);
}

#[tokio::test]
async fn redis_keys_expire_when_their_limit_is_full_again() {
    let Some(url) = redis_url("redis_keys_expire_when_their_limit_is_full_again").await else {
        return;
    };
    let limiter = RateLimiter::redis(&url).await.unwrap();
    let token = unique_token("expire");
    limiter
        .check(&token, &[limit("hour", 4, 3_600_000, 1)])
        .await;
    let client = ::redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(format!("keygate:rl:{{{token}}}:hour"))
        .query_async(&mut connection)
        .await
        .unwrap();
    // One of four used: full again after a quarter of the hour.
    assert!((899_000..=900_002).contains(&ttl), "ttl {ttl}");
}

/// Two nodes sharing one Redis, hammering one token at once: exactly the limit passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_admit_exactly_the_limit() {
    let Some(url) = redis_url("two_nodes_on_one_redis_admit_exactly_the_limit").await else {
        return;
    };
    let nodes = [
        RateLimiter::redis(&url).await.unwrap(),
        RateLimiter::redis(&url).await.unwrap(),
    ];
    let token = Arc::new(unique_token("two_nodes"));
    let admitted = Arc::new(AtomicU64::new(0));
    // 500 a day: nothing refills during the test (one every 173 s), however slow the machine.
    let mut tasks = Vec::new();
    for node in &nodes {
        for _ in 0..8 {
            let (limiter, token, admitted) = (node.clone(), token.clone(), admitted.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..100 {
                    let limits = [
                        limit("day", 500, 86_400_000, 1),
                        limit("other", 100_000, 1_000, 1),
                    ];
                    if limiter.check(&token, &limits).await.allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(admitted.load(Ordering::Relaxed), 500);
    let d = nodes[1]
        .check(&token, &[limit("day", 500, 86_400_000, 0)])
        .await;
    assert_eq!(d.reports[0].remaining, 0);
}

/// With Redis unreachable, checks are still answered, by this node's own counts.
#[tokio::test]
async fn an_unreachable_redis_falls_back_to_this_node() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let limiter = RateLimiter::redis(&url).await.unwrap();
    assert_eq!(limiter.backend_name(), "redis");
    let token = unique_token("fallback");
    let hour = limit("hour", 2, 3_600_000, 1);
    assert!(limiter.check(&token, &[hour]).await.allowed);
    assert!(limiter.check(&token, &[hour]).await.allowed);
    let refused = limiter.check(&token, &[hour]).await;
    assert!(!refused.allowed);
    assert_eq!(refused.reports[0].remaining, 0);
}

/// A TCP proxy in front of the real Redis, to take Redis away and bring it back.
struct Proxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: &str, port: u16) -> Self {
        let upstream = upstream
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            // Dropping this set (when the proxy is stopped) closes every forwarded connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                connections.spawn(async move {
                    let mut server = tokio::net::TcpStream::connect(upstream).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        });
        Self { port, task }
    }

    async fn stop(self) -> u16 {
        self.task.abort();
        let _ = self.task.await;
        self.port
    }
}

/// A Redis that goes away mid-life: the limiter keeps answering, from this node's counts; once
/// Redis answers again, its counts are used again.
#[tokio::test]
async fn a_redis_that_goes_away_falls_back_and_is_used_again() {
    let Some(url) = redis_url("a_redis_that_goes_away_falls_back_and_is_used_again").await else {
        return;
    };
    let proxy = Proxy::start(&url, 0).await;
    let limiter = RateLimiter::redis(&format!("redis://127.0.0.1:{}", proxy.port))
        .await
        .unwrap();
    let token = unique_token("goes_away");
    let three = limit("three", 3, 3_600_000, 1);
    let first = limiter.check(&token, &[three]).await;
    assert!(first.allowed && first.reports[0].remaining == 2);

    let port = proxy.stop().await;
    // This node's own counts start afresh: three more pass, then the fourth is refused.
    for remaining in [2, 1, 0] {
        let d = limiter.check(&token, &[three]).await;
        assert!(d.allowed && d.reports[0].remaining == remaining);
    }
    assert!(!limiter.check(&token, &[three]).await.allowed);

    let _proxy = Proxy::start(&url, port).await;
    // Redis is tried again a second after the last failure; a reconnection may need a second
    // try. Cost 0 reads without charging: Redis still has 2 remaining, this node 0.
    let read = limit("three", 3, 3_600_000, 0);
    let mut remaining = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let d = limiter.check(&token, &[read]).await;
        remaining.push(d.reports[0].remaining);
        if d.reports[0].remaining == 2 {
            return;
        }
    }
    panic!("Redis was not used again; remaining seen: {remaining:?}");
}

/// A Redis that cannot be reached at start is used as soon as it answers.
#[tokio::test]
async fn a_redis_that_comes_up_later_is_used() {
    let Some(url) = redis_url("a_redis_that_comes_up_later_is_used").await else {
        return;
    };
    let port = Proxy::start(&url, 0).await.stop().await;
    let limiter = RateLimiter::redis(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap();
    let token = unique_token("comes_up");
    let two = limit("two", 2, 3_600_000, 1);
    assert_eq!(limiter.check(&token, &[two]).await.reports[0].remaining, 1);

    let _proxy = Proxy::start(&url, port).await;
    // In memory 1 remains; Redis, which has counted nothing, says 2.
    let read = limit("two", 2, 3_600_000, 0);
    let mut remaining = Vec::new();
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let d = limiter.check(&token, &[read]).await;
        remaining.push(d.reports[0].remaining);
        if d.reports[0].remaining == 2 {
            return;
        }
    }
    panic!("Redis was not used once it answered; remaining seen: {remaining:?}");
}
