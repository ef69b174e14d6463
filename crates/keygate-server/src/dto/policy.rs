//! The JSON shapes of a tenant's token policy (`/api/v1/tenants/{id}/policy`).

use keygate_core::{OnLeak, OnReuse, TenantPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a rotated-out token presented after its grace period does beside the refusal, the
/// `token.reused` event and the audit entry: nothing more, or also revoke the tokens that
/// replaced it.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReuseAction {
    #[default]
    Notify,
    Revoke,
}

/// What a report of a leaked token does to it.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LeakAction {
    #[default]
    Revoke,
    Disable,
    Notify,
}

/// The whole policy: a field left out takes its default (no maximum lifetime, no expiry
/// required, `onReuse` `notify`, `onLeak` `revoke`).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantPolicyRequest {
    /// The longest a token may live, from its creation to its expiry: 1 s to ten years.
    /// Tokens without an expiry are then refused. `null` or left out: no maximum.
    #[schema(minimum = 1, maximum = 315_360_000)]
    pub max_lifetime_seconds: Option<i64>,
    /// Every token must have an expiry.
    #[serde(default)]
    pub require_expiry: bool,
    #[serde(default)]
    pub on_reuse: ReuseAction,
    #[serde(default)]
    pub on_leak: LeakAction,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantPolicyView {
    pub tenant_id: String,
    pub max_lifetime_seconds: Option<u64>,
    pub require_expiry: bool,
    pub on_reuse: ReuseAction,
    pub on_leak: LeakAction,
    /// How many of the tenant's tokens that have not expired break this policy: tokens made
    /// before it, which it leaves as they are (`GET /api/v1/tokens?violatesPolicy=true`).
    pub violating_tokens: u64,
}

impl From<ReuseAction> for OnReuse {
    fn from(a: ReuseAction) -> Self {
        match a {
            ReuseAction::Notify => OnReuse::Notify,
            ReuseAction::Revoke => OnReuse::Revoke,
        }
    }
}

impl From<OnReuse> for ReuseAction {
    fn from(a: OnReuse) -> Self {
        match a {
            OnReuse::Notify => ReuseAction::Notify,
            OnReuse::Revoke => ReuseAction::Revoke,
        }
    }
}

impl From<LeakAction> for OnLeak {
    fn from(a: LeakAction) -> Self {
        match a {
            LeakAction::Revoke => OnLeak::Revoke,
            LeakAction::Disable => OnLeak::Disable,
            LeakAction::Notify => OnLeak::Notify,
        }
    }
}

impl From<OnLeak> for LeakAction {
    fn from(a: OnLeak) -> Self {
        match a {
            OnLeak::Revoke => LeakAction::Revoke,
            OnLeak::Disable => LeakAction::Disable,
            OnLeak::Notify => LeakAction::Notify,
        }
    }
}

impl TenantPolicyView {
    pub fn new(tenant_id: &str, p: TenantPolicy, violating_tokens: u64) -> Self {
        Self {
            tenant_id: tenant_id.to_owned(),
            max_lifetime_seconds: p.max_lifetime_seconds,
            require_expiry: p.require_expiry,
            on_reuse: p.on_reuse.into(),
            on_leak: p.on_leak.into(),
            violating_tokens,
        }
    }
}
