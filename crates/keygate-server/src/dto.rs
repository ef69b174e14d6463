//! The JSON shapes of the native API (DESIGN §5): camelCase, RFC 3339 UTC times.

use std::borrow::Cow;

use keygate_core::AuditAction;
use keygate_store::{AuditEntry, TokenRecord, UserRecord};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

/// What `Debug` prints in place of a secret: these types are logged as a whole by an
/// `tracing::debug!(?req)` or an `unwrap` message just as easily as by design.
const REDACTED: &str = "<redacted>";

fn redacted<T>(secret: &Option<T>) -> Option<&'static str> {
    secret.as_ref().map(|_| REDACTED)
}

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
        }
    }
}

/// The answer to a create or rotate: the only response that ever contains the plaintext.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedToken {
    #[serde(flatten)]
    pub meta: TokenView,
    /// The token itself. Shown once: keygate keeps only its SHA-256.
    pub token: String,
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    pub token: String,
}

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
}

/// The answer of `verify`. It borrows from the cached token, so answering copies nothing
/// before the JSON is written.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse<'a> {
    pub valid: bool,
    /// `VALID`, `MALFORMED`, `NOT_FOUND`, `DISABLED`, `EXPIRED` or `INSUFFICIENT_SCOPE`.
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

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateUserRequest {
    /// 1–64 characters: letters, digits, `.`, `_`, `-`, `@`, starting with a letter or digit.
    #[schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
    pub username: String,
    /// At least 12 characters; left out, one is generated and returned once.
    #[schema(min_length = 12)]
    pub password: Option<String>,
    /// `admin` or `member` (the default).
    #[schema(pattern = "^(admin|member)$")]
    pub role: Option<String>,
}

/// A new user, with the generated password when none was given (shown this once).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedUser {
    #[serde(flatten)]
    pub user: UserView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// Changes a user's role, password, or both.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[schema(pattern = "^(admin|member)$")]
    pub role: Option<String>,
    /// At least 12 characters. Ends every web session of the user.
    #[schema(min_length = 12)]
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The tenant's name; `default` when left out.
    pub tenant: Option<String>,
}

/// The logged-in user, what they may do, and the CSRF token the page sends back in the
/// `X-CSRF-Token` header of every request that changes something.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    pub user: UserView,
    pub scopes: Vec<String>,
    pub csrf_token: String,
    #[serde(with = "crate::rfc3339_ms")]
    pub expires_at: OffsetDateTime,
}

#[derive(Deserialize, ToSchema)]
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
    #[schema(min_length = 12)]
    pub admin_password: Option<String>,
}

/// A new tenant, its first admin, and an admin token for it: secrets shown this once.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedTenant {
    pub id: String,
    pub name: String,
    #[serde(with = "crate::rfc3339_ms")]
    pub created_at: OffsetDateTime,
    pub admin: UserView,
    /// Present when the password was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_password: Option<String>,
    /// A token of the first admin with the admin role's scopes.
    pub admin_token: String,
    #[schema(example = "kg_1A2b3C4d5E6f7G8h")]
    pub admin_token_id: String,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("meta", &self.meta)
            .field("token", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for TokenBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenBody")
            .field("token", &REDACTED)
            .finish()
    }
}

impl std::fmt::Debug for VerifyRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyRequest")
            .field("token", &REDACTED)
            .field("scopes", &self.scopes)
            .finish()
    }
}

impl std::fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("role", &self.role)
            .finish()
    }
}

impl std::fmt::Debug for CreatedUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedUser")
            .field("user", &self.user)
            .field("password", &redacted(&self.password))
            .finish()
    }
}

impl std::fmt::Debug for UpdateUserRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUserRequest")
            .field("role", &self.role)
            .field("password", &redacted(&self.password))
            .finish()
    }
}

impl std::fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("tenant", &self.tenant)
            .finish()
    }
}

impl std::fmt::Debug for SessionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionView")
            .field("user", &self.user)
            .field("scopes", &self.scopes)
            .field("csrf_token", &REDACTED)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl std::fmt::Debug for CreateTenantRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateTenantRequest")
            .field("name", &self.name)
            .field("admin_username", &self.admin_username)
            .field("admin_password", &redacted(&self.admin_password))
            .finish()
    }
}

impl std::fmt::Debug for CreatedTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedTenant")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("created_at", &self.created_at)
            .field("admin", &self.admin)
            .field("admin_password", &redacted(&self.admin_password))
            .field("admin_token", &REDACTED)
            .field("admin_token_id", &self.admin_token_id)
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
        }
    }

    /// `{:?}` of the value shows the redaction and what is not secret, and never the secret.
    fn assert_redacted(dbg: String, secret: &str, visible: &str) {
        assert!(!dbg.contains(secret), "{dbg}");
        assert!(dbg.contains(REDACTED), "{dbg}");
        assert!(dbg.contains(visible), "{dbg}");
    }

    #[test]
    fn created_token() {
        let v = CreatedToken {
            meta: view(),
            token: TOKEN.into(),
        };
        assert_redacted(format!("{v:?}"), &TOKEN[20..], "kg_1A2b3C4d5E6f7G8h");
    }

    #[test]
    fn token_bodies() {
        let v = TokenBody {
            token: TOKEN.into(),
        };
        assert_redacted(format!("{v:?}"), &TOKEN[20..], "TokenBody");
        let v = VerifyRequest {
            token: TOKEN.into(),
            scopes: vec!["tokens:read".into()],
        };
        assert_redacted(format!("{v:?}"), &TOKEN[20..], "tokens:read");
    }

    #[test]
    fn user_requests_and_answers() {
        let v = CreateUserRequest {
            username: "mia".into(),
            password: Some(PASSWORD.into()),
            role: None,
        };
        assert_redacted(format!("{v:?}"), PASSWORD, "mia");
        let v = CreatedUser {
            user: user(),
            password: Some(PASSWORD.into()),
        };
        assert_redacted(format!("{v:?}"), PASSWORD, "mia");
        let v = UpdateUserRequest {
            role: Some("admin".into()),
            password: Some(PASSWORD.into()),
        };
        assert_redacted(format!("{v:?}"), PASSWORD, "admin");
    }

    #[test]
    fn login_and_session() {
        let v = LoginRequest {
            username: "mia".into(),
            password: PASSWORD.into(),
            tenant: None,
        };
        assert_redacted(format!("{v:?}"), PASSWORD, "mia");
        let csrf = "csrfTokenValue0123456789abcdefAB";
        let v = SessionView {
            user: user(),
            scopes: vec![],
            csrf_token: csrf.into(),
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_redacted(format!("{v:?}"), csrf, "mia");
    }

    #[test]
    fn tenants() {
        let v = CreateTenantRequest {
            name: "acme".into(),
            admin_username: None,
            admin_password: Some(PASSWORD.into()),
        };
        assert_redacted(format!("{v:?}"), PASSWORD, "acme");
        let v = CreatedTenant {
            id: "acme".into(),
            name: "acme".into(),
            created_at: OffsetDateTime::UNIX_EPOCH,
            admin: user(),
            admin_password: Some(PASSWORD.into()),
            admin_token: TOKEN.into(),
            admin_token_id: "kg_1A2b3C4d5E6f7G8h".into(),
        };
        let dbg = format!("{v:?}");
        assert_redacted(dbg.clone(), PASSWORD, "acme");
        assert!(!dbg.contains(&TOKEN[20..]), "{dbg}");
    }
}
