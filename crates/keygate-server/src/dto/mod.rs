//! The JSON shapes of the native API: camelCase, RFC 3339 UTC times.

use std::borrow::Cow;

use keygate_core::network::Cidr;
use keygate_core::usage::{CreditOperation, Credits, RateLimit, Refill};
use keygate_core::AuditAction;
use keygate_store::{AuditEntry, TokenRecord, UserRecord};
use secrecy::SecretString;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// A token's metadata. The secret is never part of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    #[schema(example = "kg_1A2b3C4d5E6f7G8h")]
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
    pub owner_id: String,
    pub tenant_id: String,
    pub scopes: Vec<String>,
    pub enabled: bool,
    /// `active`, `disabled` or `expired`.
    pub status: String,
    #[serde(with = "crate::rfc3339_ms")]
    pub created_at: OffsetDateTime,
    #[serde(with = "crate::rfc3339_ms")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "crate::rfc3339_ms::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "crate::rfc3339_ms::option")]
    pub last_used_at: Option<OffsetDateTime>,
    pub last_used_ip: Option<String>,
    pub created_by: Option<String>,
    /// The token that replaced this one by rotation; the expiry (the end of the grace period)
    /// of a rotated-out token cannot change.
    #[schema(example = json!(null))]
    pub rotated_to: Option<String>,
    /// The token this one replaced by rotation.
    #[schema(example = json!(null))]
    pub rotated_from: Option<String>,
    /// Your own id for whoever holds the token; many tokens may share one.
    pub external_id: Option<String>,
    pub ratelimits: Vec<RateLimit>,
    /// `null`: unlimited.
    pub credits: Option<CreditsView>,
    /// The networks the token may be used from; empty: anywhere.
    #[schema(value_type = Vec<String>, example = json!(["10.0.0.0/8", "2001:db8::/32"]))]
    pub allowed_cidrs: Vec<Cidr>,
    /// Where a token imported by its SHA-256 came from: `import` (`POST /api/v1/tokens/import`)
    /// or `unkey` (Unkey's `keys.migrateKeys`); `null` for a token keygate minted.
    #[schema(example = json!(null))]
    pub imported_from: Option<String>,
}

/// What is left of a token's credits, and how they refill.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreditsView {
    pub remaining: u64,
    pub refill: Option<Refill>,
}

impl From<TokenRecord> for TokenView {
    fn from(t: TokenRecord) -> Self {
        let status = t.status_at(OffsetDateTime::now_utc()).as_str().to_owned();
        Self {
            id: t.id.into_string(),
            name: t.name,
            description: t.description,
            metadata: t.metadata,
            owner_id: t.owner_id,
            tenant_id: t.tenant_id,
            scopes: t.scopes.names(),
            enabled: t.enabled,
            status,
            created_at: t.created_at,
            updated_at: t.updated_at,
            expires_at: t.expires_at,
            last_used_at: t.last_used_at,
            last_used_ip: t.last_used_ip,
            created_by: t.created_by,
            rotated_to: t.rotated_to.map(|id| id.into_string()),
            rotated_from: t.rotated_from.map(|id| id.into_string()),
            external_id: t.external_id,
            ratelimits: t.ratelimits,
            allowed_cidrs: t.allowed_cidrs,
            imported_from: t.imported_from,
            credits: t.credits.map(|c| CreditsView {
                remaining: c.remaining_at(OffsetDateTime::now_utc()),
                refill: c.refill,
            }),
        }
    }
}

/// The answer to a create or rotate: the only response that ever contains the plaintext.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    #[serde(flatten)]
    pub meta: TokenView,
    /// The token itself. Shown once: keygate keeps only its SHA-256.
    #[serde(serialize_with = "crate::reveal::secret")]
    #[schema(value_type = String)]
    pub token: SecretString,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// 1–200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Scope names from the catalogue, or wildcards such as `metrics:*`.
    #[schema(min_items = 1, max_items = 100)]
    pub scopes: Vec<String>,
    #[serde(default, with = "crate::rfc3339_ms::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// Lifetime in seconds (an alternative to `expiresAt`), at most ten years.
    #[schema(minimum = 1, maximum = 315_360_000)]
    pub expires_in: Option<u64>,
    /// A user id of the tenant, or the tenant id for a service token; needs `tokens:admin`
    /// unless it is the caller's own owner.
    pub owner_id: Option<String>,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    /// A JSON object of at most 4 KiB, returned by `verify`.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Box<RawValue>>,
    /// Your own id for whoever holds the token (1-256 characters), returned by `verify`.
    pub external_id: Option<String>,
    /// Up to 50 named rate limits.
    #[serde(default)]
    pub ratelimits: Vec<RateLimit>,
    /// Left out or `null`: unlimited.
    pub credits: Option<Credits>,
    /// Up to 100 networks in CIDR notation (or single addresses), IPv4 or IPv6, that the token
    /// may be used from; left out or empty: anywhere.
    #[serde(default)]
    #[schema(value_type = Vec<String>, example = json!(["10.0.0.0/8", "192.0.2.7"]))]
    pub allowed_cidrs: Vec<Cidr>,
}

/// Replaces a token's name and scopes; fields left out keep their value, except `scopes`,
/// which is required and replaces the whole set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateTokenRequest {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(min_items = 1, max_items = 100)]
    pub scopes: Vec<String>,
    /// `null` removes the expiry; left out, it is kept.
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<OffsetDateTime>>,
    pub enabled: Option<bool>,
    /// `null` removes the description; left out, it is kept.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Option<Box<RawValue>>>,
    /// `null` removes it; left out, it is kept.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub external_id: Option<Option<String>>,
    /// Given, it replaces every rate limit; left out, they are kept.
    pub ratelimits: Option<Vec<RateLimit>>,
    /// Given, it sets the credits outright (`null`: unlimited); left out, they are kept.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Credits>)]
    pub credits: Option<Option<Credits>>,
    /// Given, it replaces the allow-list (`[]`: anywhere); left out, it is kept.
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_cidrs: Option<Vec<Cidr>>,
}

/// Changes what is left of a token's credits.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreditsRequest {
    pub operation: CreditOperation,
    /// At least 0. For `set`, `null` makes the credits unlimited.
    #[schema(value_type = Option<u64>)]
    pub value: Option<i64>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn present_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    time::serde::rfc3339::option::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateRequest {
    /// How long the old token stays valid (default 0: it stops working at once). At most 30
    /// days.
    #[schema(maximum = 2_592_000)]
    pub grace_period_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    #[schema(value_type = String)]
    pub token: SecretString,
}

// The one request whose secret is not a `SecretString`: verify is the hottest route, and its
// token is checked where it lies in the request body, so its `Debug` is written by hand. (A
// line comment: a doc comment would become the schema's description.)
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest<'a> {
    /// Borrowed from the request body unless JSON escapes made a copy necessary.
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub token: Cow<'a, str>,
    /// Scopes the token must hold for the answer to be `VALID`.
    #[serde(default, borrow)]
    #[schema(value_type = Vec<String>)]
    pub scopes: Vec<Cow<'a, str>>,
    /// A query over the token's scopes: names, `AND`, `OR` and parentheses (`AND` binds
    /// tighter), e.g. `(documents.read OR documents.write) AND users.view`.
    #[serde(default, borrow)]
    #[schema(value_type = Option<String>)]
    pub permissions: Option<Cow<'a, str>>,
    /// What this request costs in credits (default 1; 0 checks without charging).
    pub credits: Option<VerifyCost>,
    /// Rate limits to apply besides the token's auto-applied ones, by name.
    #[serde(default, borrow)]
    pub ratelimits: Vec<NamedLimit<'a>>,
    /// The address of the client your API is serving, checked against the token's
    /// `allowedCidrs`. Left out, the address of whoever calls verify is checked.
    #[serde(default, borrow)]
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    pub ip: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyCost {
    /// At least 0.
    #[schema(value_type = u64)]
    pub cost: i64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedLimit<'a> {
    #[serde(borrow)]
    #[schema(value_type = String)]
    pub name: Cow<'a, str>,
    /// Default 1; at least 0.
    #[schema(value_type = Option<u64>)]
    pub cost: Option<i64>,
}

/// The answer of `verify`. It borrows from the cached token, so answering copies nothing
/// before the JSON is written.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    /// `VALID`, `MALFORMED`, `NOT_FOUND`, `DISABLED`, `EXPIRED`, `IP_NOT_ALLOWED`,
    /// `INSUFFICIENT_SCOPE`, `RATE_LIMITED` or `USAGE_EXCEEDED`.
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<&'a keygate_core::ScopeSet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<&'a RawValue>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "crate::rfc3339_ms::option"
    )]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing_scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<&'a str>,
    /// Tokens with credits: what is left after this request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<RemainingCredits>,
    /// The rate limits that were checked.
    #[serde(skip_serializing_if = "<[LimitView]>::is_empty")]
    pub ratelimits: Vec<LimitView<'a>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RemainingCredits {
    pub remaining: u64,
}

/// One rate limit as a verification found it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitView<'a> {
    pub name: &'a str,
    pub limit: u64,
    pub duration_ms: u64,
    /// Requests of cost 1 that would pass now.
    pub remaining: u64,
    /// When the limit is whole again (Unix milliseconds).
    pub reset: i64,
    pub exceeded: bool,
    pub auto_apply: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenList {
    pub items: Vec<TokenView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListTokensQuery {
    /// Only tokens of this owner (other owners need `tokens:admin`).
    pub owner_id: Option<String>,
    pub enabled: Option<bool>,
    /// Name contains this text (case-insensitive).
    pub q: Option<String>,
    /// Only tokens that hold this scope.
    pub scope: Option<String>,
    /// Only tokens with exactly this `externalId`.
    pub external_id: Option<String>,
    /// `true`: only tokens that break the tenant's policy and have not expired (tokens made
    /// before a stricter policy, which it leaves as they are).
    pub violates_policy: Option<bool>,
    /// Only tokens created before this instant (RFC 3339).
    #[serde(default, with = "crate::rfc3339_ms::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<OffsetDateTime>,
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeInfo {
    pub name: String,
    pub description: String,
    /// Where the scope comes from: `keygate` (built-in), `deployment` (`--scope`), or a
    /// compatible surface (`instana`, `dynatrace`).
    pub group: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditView {
    pub id: i64,
    #[serde(with = "crate::rfc3339_ms")]
    pub at: OffsetDateTime,
    /// Who made the change: the id of the calling token (or `system`).
    pub actor: String,
    #[schema(schema_with = audit_action_schema)]
    pub action: String,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// The action's schema is built from the one list the writers use, so it names them all.
fn audit_action_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("What was done"))
        .enum_values(Some(AuditAction::ALL.iter().map(|a| a.as_str())))
        .build()
}

impl From<AuditEntry> for AuditView {
    fn from(a: AuditEntry) -> Self {
        Self {
            id: a.id,
            at: a.at,
            actor: a.actor,
            action: a.action,
            target_id: a.target_id,
            ip: a.ip,
            details: a.details,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditList {
    pub items: Vec<AuditView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListAuditQuery {
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
}

/// A person who can log in to the web page. The password hash is never part of it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    #[schema(example = "usr_1A2b3C4d5E6f7G8h")]
    pub id: String,
    pub tenant_id: String,
    pub username: String,
    /// `admin` or `member`.
    pub role: String,
    #[serde(with = "crate::rfc3339_ms")]
    pub created_at: OffsetDateTime,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        Self {
            id: u.id,
            tenant_id: u.tenant_id,
            username: u.username,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserList {
    pub items: Vec<UserView>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ListUsersQuery {
    /// 1–1000, default 100.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`, `@`, starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    pub username: String,
    /// At least 12 characters; left out, one is generated and returned once.
    #[schema(value_type = Option<String>, min_length = 12)]
    pub password: Option<SecretString>,
    /// `admin` or `member` (the default).
    #[schema(pattern = "^(admin|member)$")]
    pub role: Option<String>,
}

/// A new user, with the generated password when none was given (shown this once).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::reveal::optional_secret"
    )]
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

/// Changes a user's role, password, or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(pattern = "^(admin|member)$")]
    pub role: Option<String>,
    /// At least 12 characters. Ends every web session of the user.
    #[schema(value_type = Option<String>, min_length = 12)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    #[schema(value_type = String)]
    pub password: SecretString,
    /// The tenant's name; `default` when left out.
    pub tenant: Option<String>,
}

/// The logged-in user, what they may do, and the CSRF token the page sends back in the
/// `X-CSRF-Token` header of every request that changes something.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub user: UserView,
    pub scopes: Vec<String>,
    #[serde(serialize_with = "crate::reveal::secret")]
    #[schema(value_type = String)]
    pub csrf_token: SecretString,
    #[serde(with = "crate::rfc3339_ms")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateTenantRequest {
    /// 1–63 characters: lower-case letters, digits and `-`, starting with a letter or digit.
    /// Also the tenant's id.
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,62}$")]
    pub name: String,
    /// The first admin's username; `admin` when left out.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    pub admin_username: Option<String>,
    /// The first admin's password, at least 12 characters; left out, one is generated and
    /// returned once.
    #[schema(value_type = Option<String>, min_length = 12)]
    pub admin_password: Option<SecretString>,
}

/// A new tenant, its first admin, and an admin token for it: secrets shown this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    pub id: String,
    pub name: String,
    #[serde(with = "crate::rfc3339_ms")]
    pub created_at: OffsetDateTime,
    pub admin: UserView,
    /// Present when the password was generated.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::reveal::optional_secret"
    )]
    #[schema(value_type = Option<String>)]
    pub admin_password: Option<SecretString>,
    /// A token of the first admin with the admin role's scopes.
    #[serde(serialize_with = "crate::reveal::secret")]
    #[schema(value_type = String)]
    pub admin_token: SecretString,
    #[schema(example = "kg_1A2b3C4d5E6f7G8h")]
    pub admin_token_id: String,
}

impl std::fmt::Debug for VerifyRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("token", &"[REDACTED]")
            .field("scopes", &self.scopes)
            .field("permissions", &self.permissions)
            .field("ip", &self.ip)
            .field("credits", &self.credits)
            .field("ratelimits", &self.ratelimits)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "kg_1A2b3C4d5E6f7G8h_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLM";
    const PASSWORD: &str = "a-password-nobody-may-see";

    fn user() -> UserView {
        UserView {
            id: "usr_1".into(),
            tenant_id: "default".into(),
            username: "mia".into(),
            role: "member".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn created_tenant() -> CreatedTenant {
        CreatedTenant {
            id: "acme".into(),
            name: "acme".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            admin: user(),
            admin_password: Some(PASSWORD.into()),
            admin_token: TOKEN.into(),
            admin_token_id: "kg_1A2b3C4d5E6f7G8h".into(),
        }
    }

    fn view() -> TokenView {
        TokenView {
            id: "kg_1A2b3C4d5E6f7G8h".into(),
            name: "n".into(),
            description: None,
            metadata: None,
            owner_id: "usr_1".into(),
            tenant_id: "default".into(),
            scopes: vec!["tokens:read".into()],
            enabled: true,
            status: "active".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: None,
            last_used_at: None,
            last_used_ip: None,
            created_by: None,
            rotated_to: None,
            rotated_from: None,
            external_id: None,
            ratelimits: Vec::new(),
            credits: None,
            allowed_cidrs: Vec::new(),
            imported_from: None,
        }
    }

    /// Every type that holds a secret, request or answer: its `{:?}` shows what is not secret
    /// and never the secret.
    #[test]
    fn debug_never_prints_a_secret() {
        let csrf = "csrfTokenValue0123456789abcdefAB";
        let dbg = |v: &dyn std::fmt::Debug| format!("{v:?}");
        let printed = [
            (
                dbg(&CreatedToken {
                    meta: view(),
                    token: TOKEN.into(),
                }),
                "kg_1A2b3C4d5E6f7G8h",
            ),
            (
                dbg(&TokenBody {
                    token: TOKEN.into(),
                }),
                "TokenBody",
            ),
            (
                dbg(&VerifyRequest {
                    token: TOKEN.into(),
                    scopes: vec!["tokens:read".into()],
                    permissions: None,
                    credits: None,
                    ratelimits: Vec::new(),
                    ip: Some("203.0.113.7".into()),
                }),
                "tokens:read",
            ),
            (
                dbg(&CreateUserRequest {
                    username: "mia".into(),
                    password: Some(PASSWORD.into()),
                    role: None,
                }),
                "mia",
            ),
            (
                dbg(&CreatedUser {
                    user: user(),
                    password: Some(PASSWORD.into()),
                }),
                "mia",
            ),
            (
                dbg(&UpdateUserRequest {
                    role: Some("admin".into()),
                    password: Some(PASSWORD.into()),
                }),
                "admin",
            ),
            (
                dbg(&LoginRequest {
                    username: "mia".into(),
                    password: PASSWORD.into(),
                    tenant: None,
                }),
                "mia",
            ),
            (
                dbg(&SessionView {
                    user: user(),
                    scopes: vec![],
                    csrf_token: csrf.into(),
                    expires_at: OffsetDateTime::UNIX_EPOCH,
                }),
                "mia",
            ),
            (
                dbg(&CreateTenantRequest {
                    name: "acme".into(),
                    admin_username: None,
                    admin_password: Some(PASSWORD.into()),
                }),
                "acme",
            ),
            (dbg(&created_tenant()), "acme"),
        ];
        for (dbg, visible) in printed {
            for secret in [&TOKEN[20..], PASSWORD, csrf] {
                assert!(!dbg.contains(secret), "{dbg}");
            }
            assert!(dbg.contains("REDACTED"), "{dbg}");
            assert!(dbg.contains(visible), "{dbg}");
        }
    }

    /// What must be shown once still is, under the same names.
    #[test]
    fn shown_once_secrets_are_serialised() {
        let v = serde_json::to_value(created_tenant()).unwrap();
        assert_eq!(v["adminPassword"], PASSWORD);
        assert_eq!(v["adminToken"], TOKEN);
        let v = serde_json::to_value(CreatedUser {
            user: user(),
            password: None,
        })
        .unwrap();
        assert!(v.get("password").is_none(), "{v}");
    }
}

mod bulk_revoke;
mod import;
pub mod leaks;
mod policy;
pub use bulk_revoke::*;
mod replication;
mod usage;
pub use import::*;
pub use policy::*;
mod webhooks;
pub use replication::*;
pub use usage::*;
pub use webhooks::*;
