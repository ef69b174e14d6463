//! Records as the store keeps them. Times are UTC; `None` for `expires_at` means never.

use keygate_core::network::Cidr;
use keygate_core::usage::{RateLimit, Refill};
use keygate_core::{ScopeSet, TokenHash, TokenId};
use secrecy::SecretString;
use serde_json::value::RawValue;
use time::OffsetDateTime;

pub const DEFAULT_TENANT: &str = "default";

/// The current time at the precision the store keeps (milliseconds), so that what a create
/// returns is exactly what a later read returns.
pub fn now() -> OffsetDateTime {
    to_store_precision(OffsetDateTime::now_utc())
}

/// Truncates to whole milliseconds, in UTC.
pub fn to_store_precision(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .expect("a truncated nanosecond is in range")
}

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: TokenId,
    pub tenant_id: String,
    pub hash: TokenHash,
    pub name: String,
    pub description: Option<String>,
    /// A JSON object, kept as the client sent it.
    pub metadata: Option<Box<RawValue>>,
    /// A user id (personal token) or the tenant id (service token).
    pub owner_id: String,
    pub scopes: ScopeSet,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub expires_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    /// The token id (or user id) that created this token.
    pub created_by: Option<String>,
    /// An id chosen by a compatible surface's client (Instana's `internalId`), unique per
    /// tenant. Stored in the column `external_id`, a name from before the API's `externalId`.
    pub chosen_id: Option<String>,
    /// The deployer's own id for whoever holds the token (the API's `externalId`); shared by
    /// any number of tokens.
    pub external_id: Option<String>,
    /// Checked by `keygate_core::usage::check_ratelimits` before it is stored.
    pub ratelimits: Vec<RateLimit>,
    /// `None`: unlimited.
    pub credits: Option<CreditState>,
    /// The token that replaced this one by rotation: its expiry is then fixed for good.
    pub rotated_to: Option<TokenId>,
    /// The token this one replaced by rotation.
    pub rotated_from: Option<TokenId>,
    /// The networks the token may be used from; empty: anywhere. Checked by
    /// `keygate_core::network::check_allowed_cidrs` before it is stored.
    pub allowed_cidrs: Vec<Cidr>,
    /// Where a token imported by its hash came from (`import`, `unkey`); `None` for a token
    /// keygate minted, its successors by rotation included.
    pub imported_from: Option<String>,
}

impl TokenRecord {
    /// A token as it is minted: enabled, never used, with nothing optional set. Every place that
    /// mints one starts here and sets what it adds, so a new column has one default.
    pub fn minted(
        id: TokenId,
        tenant_id: String,
        hash: TokenHash,
        name: String,
        owner_id: String,
        scopes: ScopeSet,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            tenant_id,
            hash,
            name,
            description: None,
            metadata: None,
            owner_id,
            scopes,
            enabled: true,
            created_at: now,
            updated_at: now,
            expires_at: None,
            last_used_at: None,
            last_used_ip: None,
            created_by: None,
            chosen_id: None,
            external_id: None,
            ratelimits: Vec::new(),
            credits: None,
            rotated_to: None,
            rotated_from: None,
            allowed_cidrs: Vec::new(),
            imported_from: None,
        }
    }

    /// Expired and disabled are decided here and nowhere else.
    pub fn status_at(&self, now: OffsetDateTime) -> TokenStatus {
        status(self.enabled, self.expires_at, now)
    }
}

/// A token's credits as the database holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditState {
    /// The pool not leased to any node: what is left, less what nodes hold unspent.
    pub remaining: u64,
    pub refill: Option<Refill>,
    /// The start of the refill period last applied, as Unix milliseconds (0: never refilled).
    pub period_ms: i64,
    /// Bumped when the credits are set outright; leases of an older version are void.
    pub version: i64,
}

impl CreditState {
    /// Credits as a create sets them: `remaining` in the refill period `now` is in.
    pub fn new(remaining: u64, refill: Option<Refill>, now: OffsetDateTime) -> Self {
        Self {
            remaining,
            refill,
            period_ms: refill.map_or(0, |r| unix_ms(r.period_start(now))),
            version: 0,
        }
    }

    /// What is left at `now`, counting a refill that is due but that no lease has applied yet.
    pub fn remaining_at(&self, now: OffsetDateTime) -> u64 {
        match self.refill {
            Some(r) if unix_ms(r.period_start(now)) > self.period_ms => r.amount,
            _ => self.remaining,
        }
    }
}

pub fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Unix milliseconds back as a time; outside the years `time` represents, the nearest end.
pub fn from_unix_ms(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        time::PrimitiveDateTime::MIN.assume_utc()
    } else {
        time::PrimitiveDateTime::MAX.assume_utc()
    })
}

/// How a credits change applies to what is left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditChange {
    /// Replaces the credits (`None`: unlimited) and voids every lease.
    Set(Option<(u64, Option<Refill>)>),
    Increment(u64),
    /// Stops at 0. Leases survive, unless the pool could not cover the decrement.
    Decrement(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    Active,
    Disabled,
    Expired,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Disabled => "disabled",
            TokenStatus::Expired => "expired",
        }
    }
}

pub fn status(
    enabled: bool,
    expires_at: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> TokenStatus {
    if !enabled {
        TokenStatus::Disabled
    } else if expires_at.is_some_and(|e| e <= now) {
        TokenStatus::Expired
    } else {
        TokenStatus::Active
    }
}

/// The password hash stays out of logs, even though it is only a hash.
#[derive(Clone, Debug)]
pub struct UserRecord {
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    pub password_hash: SecretString,
    pub role: String,
    pub created_at: OffsetDateTime,
}

/// A web login: the SHA-256 of the cookie's value, and the CSRF token the page echoes. The
/// CSRF token stays out of logs: with a stolen cookie it is what a forged request lacks.
#[derive(Clone, Debug)]
pub struct SessionRecord {
    pub hash: TokenHash,
    pub tenant_id: String,
    pub user_id: String,
    pub csrf_token: SecretString,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// One change; a batch of them is applied in one transaction together with its audit entries,
/// so an acknowledged change and its audit trail are never apart.
#[derive(Debug, Clone)]
pub enum Write {
    InsertToken(TokenRecord),
    /// Replaces every mutable field of the token with this id; fails with `NotFound` if it is
    /// gone.
    UpdateToken(TokenRecord),
    DeleteToken {
        tenant_id: String,
        id: TokenId,
    },
    /// Deletes many tokens of a tenant (distinct ids) with a statement per few hundred: a bulk
    /// revoke. `NotFound` if any is gone, and then none is deleted.
    DeleteTokens {
        tenant_id: String,
        ids: Vec<TokenId>,
    },
    /// A tenant whose id is also its name; `Conflict` if it exists.
    InsertTenant {
        id: String,
        created_at: OffsetDateTime,
    },
    /// `Conflict` if the username is taken in the tenant.
    InsertUser(UserRecord),
    /// Replaces the role and the password hash; `NotFound` if the user is gone.
    UpdateUser(UserRecord),
    /// Deletes the user and their sessions. `Refused` if the user still owns tokens: the
    /// caller deletes those in the same batch, so a token created meanwhile is never orphaned.
    DeleteUser {
        tenant_id: String,
        id: String,
    },
    /// Also drops sessions that have expired, so the table stays small without a sweeper.
    InsertSession(SessionRecord),
    DeleteSession(TokenHash),
    /// Every session of a user, e.g. after a password change.
    DeleteUserSessions {
        tenant_id: String,
        user_id: String,
    },
    /// Changes the credits of the token with this id: `NotFound` if it is gone, `Refused` for an
    /// increment or decrement of a token whose credits are unlimited.
    ChangeCredits {
        tenant_id: String,
        id: TokenId,
        change: CreditChange,
        at: OffsetDateTime,
    },
    /// Fails the whole batch with `LimitReached` if the owner now holds more than `max` tokens:
    /// put after the batch's `InsertToken`, it bounds what a create may add, in the same
    /// transaction. A rotation leaves it out: replacing a leaked token must never be refused.
    EnforceOwnerLimit {
        tenant_id: String,
        owner_id: String,
        max: u32,
    },
    /// Puts an event in the outbox of every enabled webhook endpoint of its tenant subscribed
    /// to it, in the batch's transaction: delivered if and only if the batch commits.
    Emit(NewEvent),
    /// Replaces the tenant's policy (tokens that break it are left as they are).
    SetTenantPolicy {
        tenant_id: String,
        policy: keygate_core::TenantPolicy,
        at: OffsetDateTime,
    },
    /// A new webhook endpoint; `Conflict` if its id exists.
    InsertWebhook(WebhookEndpoint),
    /// Replaces the endpoint's url, description, events and enabled flag; `NotFound` if it is
    /// gone. `resume_until_ms` re-enables it: the reason it was disabled and its failing time
    /// are cleared, and its pending deliveries are due now and retried until then.
    UpdateWebhook {
        endpoint: WebhookEndpoint,
        resume_until_ms: Option<i64>,
    },
    /// Deletes the endpoint and every delivery of it; `NotFound` if it is gone.
    DeleteWebhook {
        tenant_id: String,
        id: String,
    },
    /// Queues a delivery of an endpoint again, due at `at`, with a new retry window;
    /// `NotFound` if there is no such delivery of the tenant's endpoint.
    RedeliverWebhook {
        tenant_id: String,
        endpoint_id: String,
        delivery_id: i64,
        at: OffsetDateTime,
    },
    /// Records the first report of a leaked token; `Conflict` if it is recorded already (a
    /// report that raced this one), which fails the batch with what it did to the token.
    RecordLeak(NewLeak),
}

/// The first report of a leaked token, written with what it does to the token.
#[derive(Debug, Clone)]
pub struct NewLeak {
    pub tenant_id: String,
    pub token_id: TokenId,
    pub hash: TokenHash,
    /// Who reported it: `github`, `gitlab`.
    pub reporter: String,
    /// Where it was found, as the report says (a URL, a file).
    pub location: Option<String>,
    /// What was done: the tenant's `onLeak` then.
    pub action: keygate_core::OnLeak,
    pub at: OffsetDateTime,
}

/// A leaked token as recorded: its first report, and how often and when it was last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakRecord {
    pub tenant_id: String,
    pub token_id: TokenId,
    pub reporter: String,
    pub location: Option<String>,
    pub action: keygate_core::OnLeak,
    pub first_reported_at: OffsetDateTime,
    pub last_reported_at: OffsetDateTime,
    pub reports: u64,
}

/// An event for the tenant's webhook endpoints.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The message id (`msg_…`), the same for every endpoint and every attempt: a receiver
    /// tells a redelivery by it.
    pub id: String,
    pub tenant_id: String,
    pub event_type: keygate_core::EventType,
    pub at: OffsetDateTime,
    /// The exact body to send: `{type, timestamp, data}`. Never holds a secret.
    pub payload: String,
}

#[derive(Debug, Clone)]
pub struct NewAudit {
    pub tenant_id: String,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub id: i64,
    pub tenant_id: String,
    pub at: OffsetDateTime,
    pub actor: String,
    pub action: String,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct TokenFilter {
    pub owner_id: Option<String>,
    pub enabled: Option<bool>,
    /// Name contains (case-insensitive for ASCII).
    pub name_contains: Option<String>,
    /// Holds exactly this scope name.
    pub scope: Option<String>,
    /// The deployer's id for the holder (`externalId`), exactly.
    pub external_id: Option<String>,
    /// Only tokens with one of these ids (`Some(empty)` matches none). Bounded by the caller:
    /// each id is a bound parameter of one statement.
    pub ids: Option<Vec<String>>,
    /// Only tokens created strictly before this instant.
    pub created_before: Option<OffsetDateTime>,
    /// Only tokens that break the tenant's policy and have not expired (`Some(now)`): those a
    /// policy made stricter after they were created.
    pub violating_policy_at: Option<OffsetDateTime>,
    /// Only rows older than this position (the cursor).
    pub before_seq: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub target_id: Option<String>,
    pub before_seq: Option<i64>,
    pub limit: u32,
}

/// A page of results: `next` is the position to continue from, if there is more.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct UserPage {
    pub items: Vec<UserRecord>,
    /// The username to continue after, if there is more.
    pub next_after: Option<String>,
}

/// What the first start writes: tenant `default`, user `admin`, the bootstrap token.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    pub tenant_id: String,
    pub admin: UserRecord,
    pub token: TokenRecord,
}

/// Last use of a token, written behind in batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastUse {
    pub id: TokenId,
    pub at: OffsetDateTime,
    pub ip: Option<String>,
}

/// Where the change stream of the replicas stands (`replication_head`, migration 0012).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationHead {
    /// Tells this database's cursors from another's.
    pub log_id: String,
    /// The number of the last committed change.
    pub seq: i64,
    /// Changes up to this number have been pruned: a cursor before it cannot be continued.
    pub pruned_through: i64,
}

/// One page of a tenant's tokens, oldest first, for a replica's snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotPage {
    /// Read before the page's tokens: changes after it may or may not be in the page, and the
    /// change stream replays them.
    pub head: ReplicationHead,
    pub tokens: Vec<TokenRecord>,
    /// The position to continue from, if there is more.
    pub next: Option<i64>,
}

/// What a replica must do for one changed token.
#[derive(Debug, Clone)]
pub enum ReplicatedChange {
    /// The token as it is now (it may have changed again since the change that named it).
    Upsert(Box<TokenRecord>),
    /// The token is gone.
    Delete(TokenHash),
}

/// The changes of a tenant after a cursor.
#[derive(Debug, Clone)]
pub enum ChangeRead {
    /// The changes in `(after, through]`, one per token, in the order of each token's last
    /// change; `more` when further changes are already committed.
    Changes {
        log_id: String,
        through: i64,
        changes: Vec<ReplicatedChange>,
        more: bool,
    },
    /// The cursor is older than the changes kept, or newer than any: start from a snapshot.
    TooOld,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    const CSRF: &str = "csrfTokenValue0123456789abcdefAB";

    fn user() -> UserRecord {
        UserRecord {
            id: "usr_1".into(),
            tenant_id: "default".into(),
            username: "mia".into(),
            password_hash: PASSWORD_HASH.into(),
            role: "member".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn session() -> SessionRecord {
        SessionRecord {
            hash: TokenHash::of("cookie"),
            tenant_id: "default".into(),
            user_id: "usr_1".into(),
            csrf_token: CSRF.into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn debug_of_a_user_hides_the_password_hash() {
        let dbg = format!("{:?} {:?}", user(), Write::InsertUser(user()));
        assert!(!dbg.contains("argon2"), "{dbg}");
        assert!(dbg.contains("mia"), "{dbg}");
    }

    #[test]
    fn debug_of_a_session_hides_the_csrf_token() {
        let dbg = format!("{:?} {:?}", session(), Write::InsertSession(session()));
        assert!(!dbg.contains(CSRF), "{dbg}");
        assert!(dbg.contains("REDACTED") && dbg.contains("usr_1"), "{dbg}");
    }
}

/// A tenant's webhook endpoint. `secret` is the signing key (`whsec_…`): the API shows it only
/// in the answer to the create.
#[derive(Debug, Clone)]
pub struct WebhookEndpoint {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: Option<String>,
    /// Event names, or `["*"]` for all.
    pub events: Vec<String>,
    pub secret: SecretString,
    pub enabled: bool,
    /// Why keygate disabled it (failures for the whole retry window); `None` once re-enabled.
    pub disabled_reason: Option<String>,
    /// The first failed attempt since the last success.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Where one delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Retried for the whole window without a 2xx.
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

/// One event for one endpoint, as its delivery log shows it (without the body).
#[derive(Debug, Clone)]
pub struct WebhookDelivery {
    pub id: i64,
    pub endpoint_id: String,
    /// The message id (`webhook-id`): the same on every attempt and redelivery.
    pub event_id: String,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<i64>,
    pub last_latency_ms: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// An endpoint the dispatcher holds the lease of, with the oldest delivery of its queue.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub endpoint_id: String,
    pub tenant_id: String,
    pub url: String,
    pub secret: SecretString,
    /// When the endpoint began failing, if it is.
    pub failing_since_ms: Option<i64>,
    pub delivery_id: i64,
    pub event_id: String,
    pub payload: String,
    /// Attempts before this one: 0 starts the delivery's retry window.
    pub attempts: i64,
    /// When retries end (Unix ms); only meaningful once `attempts > 0`.
    pub retry_until_ms: i64,
}

/// What one attempt came to.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub at_ms: i64,
    /// The receiver's status, if it answered.
    pub status: Option<i64>,
    pub latency_ms: i64,
    /// `None` for a 2xx; else what went wrong, never holding a secret.
    pub error: Option<String>,
    /// After a failure: when to try again, or `None` when the retry window is over (the
    /// delivery has failed).
    pub retry_at_ms: Option<i64>,
    /// The retry window of a delivery's first attempt (`retry_until` from then on).
    pub retry_until_ms: i64,
    /// Set when the endpoint has failed for the whole window: it is disabled, with this audit
    /// entry, in the attempt's transaction.
    pub disable: Option<NewAudit>,
}
