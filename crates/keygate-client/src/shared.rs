//! What the follower task and every clone of a replica share: the tokens held, the contact
//! with keygate, and the verification rules (keygate's verifier's, in the same order).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keygate_core::permission::Query;
use keygate_core::{token, TokenHash, TokenPrefix};
use time::OffsetDateTime;
use tokio::sync::Notify;

use crate::held::Held;
use crate::http::Keygate;
use crate::options::{OnStale, Options};
use crate::verification::{AnsweredBy, Code, Request, TokenInfo, Verification};
use crate::wire::{VerifyAnswer, VerifyBody, VerifyCost};

/// Counters of the follower and of the verifications, read by [`Replica::stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub snapshots: AtomicU64,
    pub resyncs: AtomicU64,
    pub changes_applied: AtomicU64,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    pub delegated: AtomicU64,
    pub unreadable: AtomicU64,
}

/// What the follower task and every clone of a [`Replica`] share.
pub(crate) struct Shared {
    pub held: Held,
    pub prefix: TokenPrefix,
    /// `None` in tests that feed the replica by hand: then nothing is delegated.
    pub keygate: Option<Keygate>,
    pub counters: Counters,
    pub changed: Notify,
    cursor: Mutex<String>,
    started: Instant,
    /// Milliseconds after `started` of the last answer from keygate.
    last_contact_ms: AtomicU64,
    pub(crate) max_staleness: Duration,
    on_stale: OnStale,
}

impl Shared {
    pub fn new(held: Held, prefix: TokenPrefix, cursor: String, options: &Options) -> Self {
        Self {
            held,
            prefix,
            keygate: None,
            counters: Counters::default(),
            changed: Notify::new(),
            cursor: Mutex::new(cursor),
            started: Instant::now(),
            last_contact_ms: AtomicU64::new(0),
            max_staleness: options.max_staleness,
            on_stale: options.on_stale,
        }
    }

    /// Records an answer from keygate, and the cursor it brought.
    pub fn heard(&self, cursor: &str) {
        let mut held = self.cursor.lock().expect("cursor lock");
        if *held != cursor {
            held.clear();
            held.push_str(cursor);
        }
        drop(held);
        self.touch();
        self.changed.notify_waiters();
    }

    pub(crate) fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_contact_ms.fetch_max(ms, Ordering::Release);
    }

    pub fn cursor(&self) -> String {
        self.cursor.lock().expect("cursor lock").clone()
    }

    pub(crate) fn since_contact(&self, now: Instant) -> Duration {
        let at = self.started + Duration::from_millis(self.last_contact_ms.load(Ordering::Acquire));
        now.saturating_duration_since(at)
    }

    /// keygate's check, in keygate's order, on the replica's data. `None`: only keygate may
    /// answer (a stale replica told to ask, or a token with rate limits or credits that passed
    /// every other check: a refusal before the limits is the same answer keygate would give).
    pub(crate) fn decide(&self, req: &Request<'_>, now: Instant) -> Option<Verification> {
        if token::parse(req.token, &self.prefix).is_err() {
            return Some(Verification::local(Code::Malformed, None));
        }
        if self.since_contact(now) > self.max_staleness {
            return match self.on_stale {
                OnStale::FailClosed => Some(Verification::local(Code::Unavailable, None)),
                OnStale::AskKeygate => None,
            };
        }
        let Some(t) = self.held.get(&TokenHash::of(req.token)) else {
            return Some(Verification::local(Code::NotFound, None));
        };
        if !t.enabled {
            return Some(Verification::local(Code::Disabled, Some(t)));
        }
        if t.expires_at.is_some_and(|e| e <= OffsetDateTime::now_utc()) {
            return Some(Verification::local(Code::Expired, Some(t)));
        }
        if !t.allows_ip(req.ip) {
            return Some(Verification::local(Code::IpNotAllowed, Some(t)));
        }
        if let Some(missing) = t.scopes.unmet(req.scopes, req.permissions) {
            return Some(insufficient(t, missing));
        }
        if t.usage_controlled {
            return None;
        }
        Some(Verification::local(Code::Valid, Some(t)))
    }

    pub(crate) async fn ask_keygate(&self, req: &Request<'_>) -> Verification {
        let Some(keygate) = &self.keygate else {
            return Verification::local(Code::Unavailable, None);
        };
        self.counters.delegated.fetch_add(1, Ordering::Relaxed);
        let body = VerifyBody {
            token: req.token,
            scopes: req.scopes,
            permissions: req.permissions.map(Query::to_string),
            ip: req.ip.map(|ip| ip.to_string()),
            credits: req.cost.map(|cost| VerifyCost { cost }),
        };
        match keygate.verify(&body).await {
            Ok(answer) => from_keygate(answer),
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "keygate-client: a delegated verification failed");
                Verification {
                    answered_by: AnsweredBy::Keygate,
                    ..Verification::local(Code::Unavailable, None)
                }
            }
        }
    }
}

fn insufficient(t: Arc<TokenInfo>, missing: Vec<String>) -> Verification {
    Verification {
        missing_scopes: missing,
        ..Verification::local(Code::InsufficientScope, Some(t))
    }
}

/// keygate's answer in the replica's types. A code this version does not know is a refusal.
fn from_keygate(a: VerifyAnswer) -> Verification {
    let code = Code::parse(&a.code).unwrap_or(Code::Unavailable);
    let retry_after = (code == Code::RateLimited)
        .then(|| {
            let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
            a.ratelimits
                .iter()
                .filter(|l| l.exceeded)
                .map(|l| l.reset.saturating_sub(now_ms).max(0) as u64)
                .max()
                .map(Duration::from_millis)
        })
        .flatten();
    let token = a.token_id.map(|id| {
        let scopes = keygate_core::ScopeSet::parse(a.scopes.iter().flatten().map(String::as_str))
            .unwrap_or_default();
        Arc::new(TokenInfo {
            id: id.into(),
            name: a.name.unwrap_or_default().into(),
            tenant_id: Arc::from(a.tenant_id.unwrap_or_default()),
            owner_id: Arc::from(a.owner_id.unwrap_or_default()),
            scopes: Arc::new(scopes),
            enabled: code != Code::Disabled,
            expires_at: a.expires_at,
            metadata: a.metadata,
            external_id: a.external_id.map(String::into_boxed_str),
            // keygate has checked the address; what the list holds is not in its answer.
            allowed: None,
            usage_controlled: true,
        })
    });
    Verification {
        code,
        token,
        missing_scopes: a.missing_scopes,
        answered_by: AnsweredBy::Keygate,
        retry_after,
        credits_remaining: a.credits.map(|c| c.remaining),
    }
}
