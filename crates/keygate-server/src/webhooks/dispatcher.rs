//! Drains the outbox. A few workers each lease one endpoint at a time from the store (the lease
//! is what keeps one delivery in flight per endpoint across every node), send its oldest pending
//! delivery, record the attempt and let the lease go. A node killed mid-delivery loses nothing:
//! its lease runs out and whichever node claims next sends the delivery again (at least once).
//!
//! The workers wake when this node commits a change (the store's signal) and poll for other
//! nodes' events. Nothing here is awaited by a request: a receiver that hangs costs one worker
//! until `--webhook-timeout`, and no lock is held across the call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keygate_core::AuditAction;
use keygate_store::{Attempt, ClaimedDelivery};
use keygate_store::{NewAudit, Store};
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::WebhookConfig;
use crate::webhooks::address::{check_url, GuardedResolver};
use crate::webhooks::signing::sign;

/// Endpoints delivered at once by one node.
const WORKERS: usize = 4;
/// How long a claim holds an endpoint unless renewed: after a crash, how long its queue waits.
const LEASE: Duration = Duration::from_secs(30);
/// How often a lease is renewed while its delivery is in flight.
const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How late another node's event may be noticed.
const POLL: Duration = Duration::from_secs(1);
/// The longest wait between two retries, however many failures came before.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How long delivered and failed deliveries stay in the log.
const LOG_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The most of a receiver's answer read into an error message.
const MAX_ERROR_CHARS: usize = 300;

/// The running dispatcher; [`Dispatcher::stop`] ends it.
pub struct Dispatcher {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Dispatcher {
    /// Lets each worker finish the attempt in flight (at most `--webhook-timeout`), then ends.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the workers and the log pruner on the current runtime.
pub fn start(store: Arc<dyn Store>, config: WebhookConfig) -> anyhow::Result<Dispatcher> {
    let client = reqwest::Client::builder()
        .timeout(config.timeout)
        .redirect(reqwest::redirect::Policy::none())
        // The receiver is the deployer's: no proxy from the environment stands between.
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver {
            allow_link_local: config.allow_link_local,
        }))
        .user_agent(concat!("keygate-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (stop, stopped) = watch::channel(false);
    let mut node = String::from("node_");
    keygate_core::base62::random(12, &mut node);
    let mut tasks = JoinSet::new();
    for i in 0..WORKERS {
        let worker = Worker {
            store: store.clone(),
            client: client.clone(),
            config,
            owner: format!("{node}/{i}"),
        };
        tasks.spawn(worker.run(stopped.clone()));
    }
    tasks.spawn(prune(store, stopped));
    Ok(Dispatcher { stop, tasks })
}

struct Worker {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    config: WebhookConfig,
    owner: String,
}

impl Worker {
    async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut committed = self.store.replication_signal();
        while !*stopped.borrow() {
            let now = now_ms();
            match self
                .store
                .claim_webhook(&self.owner, now, now + LEASE.as_millis() as i64)
                .await
            {
                Ok(Some(claim)) => {
                    self.deliver(claim).await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "webhooks: claiming a delivery failed"),
            }
            tokio::select! {
                _ = committed.changed() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// One attempt, its lease renewed while it is in flight, then its record.
    async fn deliver(&self, claim: ClaimedDelivery) {
        let at = now_ms();
        let started = Instant::now();
        let sent = {
            let send = self.send(&claim, at);
            tokio::pin!(send);
            loop {
                tokio::select! {
                    sent = &mut send => break sent,
                    _ = tokio::time::sleep(RENEW_EVERY) => {
                        let until = now_ms() + LEASE.as_millis() as i64;
                        let renewed = self
                            .store
                            .renew_webhook_lease(&claim.endpoint_id, &self.owner, until)
                            .await;
                        if !matches!(renewed, Ok(true)) {
                            tracing::warn!(endpoint = %claim.endpoint_id,
                                "webhooks: lost the lease of an endpoint during a delivery");
                        }
                    }
                }
            }
        };
        let latency_ms = started.elapsed().as_millis() as i64;
        let attempt = self.attempt(&claim, at, latency_ms, sent);
        if let Err(e) = self
            .store
            .record_webhook_attempt(&claim, &self.owner, &attempt)
            .await
        {
            // The lease runs out and the delivery is sent again: at least once.
            tracing::warn!(error = %e, "webhooks: recording a delivery attempt failed");
        }
    }

    /// The receiver's status, or why there is none.
    async fn send(&self, claim: &ClaimedDelivery, at_ms: i64) -> Result<u16, String> {
        let url = check_url(&claim.url, self.config.allow_link_local)?;
        let timestamp = at_ms.div_euclid(1000);
        let signature = sign(
            claim.secret.expose_secret(),
            &claim.event_id,
            timestamp,
            &claim.payload,
        )
        .ok_or("the endpoint's secret is not a whsec_ secret")?;
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &claim.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(claim.payload.clone())
            .send()
            .await
            .map_err(|e| describe(&e, self.config.timeout))?;
        Ok(answer.status().as_u16())
    }

    fn attempt(
        &self,
        claim: &ClaimedDelivery,
        at_ms: i64,
        latency_ms: i64,
        sent: Result<u16, String>,
    ) -> Attempt {
        let retry_for = self.config.retry_for.as_millis() as i64;
        // A delivery's window starts at its first attempt (or its redelivery's).
        let retry_until_ms = if claim.attempts == 0 {
            at_ms + retry_for
        } else {
            claim.retry_until_ms
        };
        let (status, error) = match sent {
            Ok(s) if (200..300).contains(&s) => (Some(s as i64), None),
            Ok(s) => (Some(s as i64), Some(format!("the receiver answered {s}"))),
            Err(e) => (None, Some(e)),
        };
        let failed = error.is_some();
        let end = at_ms + latency_ms;
        let retry_at_ms = (failed && end < retry_until_ms).then(|| {
            let wait = backoff(self.config.retry_initial, claim.attempts);
            (end + wait.as_millis() as i64).min(retry_until_ms)
        });
        let failing_since = claim.failing_since_ms.unwrap_or(at_ms);
        let disable = (failed && end - failing_since >= retry_for).then(|| NewAudit {
            tenant_id: claim.tenant_id.clone(),
            at: keygate_store::now(),
            actor: "system".into(),
            action: AuditAction::WebhookDisabled.into(),
            target_id: Some(claim.endpoint_id.clone()),
            ip: None,
            details: Some(json!({
                "reason": "failed for the whole retry window",
                "failingSince": crate::rfc3339_ms::format(
                    keygate_store::model::from_unix_ms(failing_since)
                ),
                "lastError": error,
            })),
        });
        if disable.is_some() {
            tracing::warn!(endpoint = %claim.endpoint_id,
                "webhooks: endpoint disabled after failing for the whole retry window");
        }
        Attempt {
            at_ms,
            status,
            latency_ms,
            error,
            retry_at_ms,
            retry_until_ms,
            disable,
        }
    }
}

/// `initial` doubled for each failure before, at most `MAX_BACKOFF`, times a random 0.5–1 so
/// that endpoints that failed together do not retry together.
fn backoff(initial: Duration, failures_before: i64) -> Duration {
    let doubled = initial.saturating_mul(1u32 << failures_before.clamp(0, 20));
    doubled
        .min(MAX_BACKOFF)
        .mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// What went wrong, for the delivery log: without the URL, which may hold credentials.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    let text = if e.is_timeout() {
        format!("timed out after {}", humanize(timeout))
    } else if e.is_connect() {
        let mut cause = String::new();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            cause = s.to_string();
            source = s.source();
        }
        format!("could not connect: {cause}")
    } else {
        e.to_string()
    };
    let e_url_free = match e.url() {
        Some(url) => text.replace(url.as_str(), "<url>"),
        None => text,
    };
    e_url_free.chars().take(MAX_ERROR_CHARS).collect()
}

fn humanize(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn now_ms() -> i64 {
    keygate_store::model::unix_ms(keygate_store::now())
}

async fn prune(store: Arc<dyn Store>, mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow() {
        let before = now_ms() - LOG_RETENTION.as_millis() as i64;
        if let Err(e) = store.prune_webhook_deliveries(before).await {
            tracing::warn!(error = %e, "webhooks: pruning the delivery log failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
            _ = stopped.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_is_capped() {
        let s = Duration::from_secs(5);
        for n in 0..6 {
            let b = backoff(s, n);
            let full = s * (1 << n);
            assert!(b >= full / 2 && b <= full, "{n}: {b:?}");
        }
        assert!(backoff(s, 60) <= MAX_BACKOFF);
    }
}
