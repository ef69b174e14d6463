//! Dynatrace's token API (seed 003), `/api/v2/apiTokens…`: list with `nextPageKey` paging,
//! `apiTokenSelector`, `fields`, `sort` and `from`/`to`; create (201 `{id, token,
//! expirationDate}`); read; update (204, scopes sent replace the set); delete by id or by the
//! token itself; lookup. Dates are `yyyy-MM-ddTHH:mm:ss.SSSZ`; every failure has Dynatrace's
//! body `{"error": {"code", "message", "constraintViolations"}}`. Everything goes through
//! `crate::service::tokens`, so visibility, no escalation, audit and cache invalidation are the native
//! ones.

pub mod query;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_core::AuditAction;
use keygate_core::{ScopeCatalog, ScopeSet};
use keygate_store::{TokenFilter, TokenRecord};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::query::{format_date, millis, PageKey};
use crate::auth::{Authorized, Caller, TokensRead, TokensWrite};
use crate::error::ApiError;
use crate::extract::{Json, Path, Query};
use crate::service::tokens::{self, NewToken};
use crate::state::AppState;

/// Dynatrace's scope names, registered when this surface is on. `apiTokens.read` and
/// `apiTokens.write` are honoured as `tokens:read` and `tokens:write` by the core.
pub const SCOPES: &[(&str, &str)] = &[
    (
        "apiTokens.read",
        "Dynatrace: read API tokens (as tokens:read)",
    ),
    (
        "apiTokens.write",
        "Dynatrace: write API tokens (as tokens:write)",
    ),
    (
        "DataExport",
        "Dynatrace: access problem and event feed, metrics, and topology",
    ),
    ("ReadConfig", "Dynatrace: read configuration"),
    ("WriteConfig", "Dynatrace: write configuration"),
    ("metrics.read", "Dynatrace: read metrics"),
    ("metrics.write", "Dynatrace: write metrics"),
    ("metrics.ingest", "Dynatrace: ingest metrics"),
    ("entities.read", "Dynatrace: read entities"),
    ("entities.write", "Dynatrace: write entities"),
    ("logs.read", "Dynatrace: read logs"),
    ("logs.ingest", "Dynatrace: ingest logs"),
    ("events.read", "Dynatrace: read events"),
    ("events.ingest", "Dynatrace: ingest events"),
    ("problems.read", "Dynatrace: read problems"),
    ("problems.write", "Dynatrace: write problems"),
    ("settings.read", "Dynatrace: read settings"),
    ("settings.write", "Dynatrace: write settings"),
    ("slo.read", "Dynatrace: read SLOs"),
    ("slo.write", "Dynatrace: write SLOs"),
    (
        "ReadSyntheticData",
        "Dynatrace: read synthetic monitors, locations, and nodes",
    ),
    (
        "InstallerDownload",
        "Dynatrace: PaaS integration, installer download",
    ),
    ("DataPrivacy", "Dynatrace: change data privacy settings"),
    (
        "ExternalSyntheticIntegration",
        "Dynatrace: create and read synthetic monitors, locations, and nodes",
    ),
    (
        "credentialVault.read",
        "Dynatrace: read credential vault entries",
    ),
    (
        "credentialVault.write",
        "Dynatrace: write credential vault entries",
    ),
    ("PluginUpload", "Dynatrace: upload extensions"),
    ("SupportAlert", "Dynatrace: PaaS integration, support alert"),
    ("LogExport", "Dynatrace: read log content"),
    ("DTAQLAccess", "Dynatrace: user sessions"),
    (
        "UserSessionAnonymization",
        "Dynatrace: anonymize user session data",
    ),
    ("CaptureRequestData", "Dynatrace: capture request data"),
    (
        "DataImport",
        "Dynatrace: data ingest, e.g. metrics and events",
    ),
    (
        "TenantTokenManagement",
        "Dynatrace: tenant token management",
    ),
    (
        "ActiveGateCertManagement",
        "Dynatrace: ActiveGate certificate management",
    ),
    (
        "RestRequestForwarding",
        "Dynatrace: fetch data from a remote environment",
    ),
    ("auditLogs.read", "Dynatrace: read audit logs"),
    ("networkZones.read", "Dynatrace: read network zones"),
    ("networkZones.write", "Dynatrace: write network zones"),
    ("activeGates.read", "Dynatrace: read ActiveGates"),
    ("activeGates.write", "Dynatrace: write ActiveGates"),
    ("extensions.read", "Dynatrace: read extensions"),
    ("extensions.write", "Dynatrace: write extensions"),
    (
        "extensionConfigurations.read",
        "Dynatrace: read extension monitoring configurations",
    ),
    (
        "extensionConfigurations.write",
        "Dynatrace: write extension monitoring configurations",
    ),
    (
        "extensionEnvironment.read",
        "Dynatrace: read extension environment configurations",
    ),
    (
        "extensionEnvironment.write",
        "Dynatrace: write extension environment configurations",
    ),
    ("securityProblems.read", "Dynatrace: read security problems"),
    (
        "securityProblems.write",
        "Dynatrace: write security problems",
    ),
    (
        "syntheticLocations.read",
        "Dynatrace: read synthetic locations",
    ),
    (
        "syntheticLocations.write",
        "Dynatrace: write synthetic locations",
    ),
    (
        "tenantTokenRotation.write",
        "Dynatrace: tenant token rotation",
    ),
    ("releases.read", "Dynatrace: read releases"),
];

pub fn register_scopes(catalog: &mut ScopeCatalog) {
    for (name, description) in SCOPES {
        catalog
            .add_to_group("dynatrace", name, description)
            .expect("Dynatrace's scope names are valid scope names");
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(lookup_token))
        .routes(routes!(get_token, update_token, delete_token))
}

pub const DEFAULT_PAGE_SIZE: u32 = 200;
pub const MIN_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 10_000;
/// The query parameters that carry the caller's own token, not part of a list query.
const AUTH_PARAMS: [&str; 3] = ["api-token", "apiToken", "api_token"];
const LIST_PARAMS: [&str; 7] = [
    "nextPageKey",
    "pageSize",
    "apiTokenSelector",
    "fields",
    "sort",
    "from",
    "to",
];

// ---------------------------------------------------------------------------------------------
// Shapes

/// A token's metadata, Dynatrace's `ApiToken`. Lists show the fields `fields` selects.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    /// The token id (its public part, e.g. `kg_1A2b3C4d5E6f7G8h`).
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The owner: a user id, or the tenant id for a service token.
    pub owner: String,
    /// True when the owner is a user rather than the tenant.
    pub personal_access_token: bool,
    #[schema(example = "2025-01-25T05:57:01.123Z")]
    pub creation_date: String,
    pub expiration_date: Option<String>,
    pub last_used_date: Option<String>,
    pub last_used_ip_address: Option<String>,
    /// Null while the token was never modified.
    pub modified_date: Option<String>,
    pub scopes: Vec<String>,
    /// The token's keygate metadata object, if any.
    #[schema(value_type = Option<Object>)]
    pub additional_metadata: Option<Value>,
}

impl From<&TokenRecord> for ApiToken {
    fn from(t: &TokenRecord) -> Self {
        ApiToken {
            id: t.id.to_string(),
            name: t.name.clone(),
            enabled: t.enabled,
            owner: t.owner_id.clone(),
            personal_access_token: t.owner_id != t.tenant_id,
            creation_date: format_date(t.created_at),
            expiration_date: t.expires_at.map(format_date),
            last_used_date: t.last_used_at.map(format_date),
            last_used_ip_address: t.last_used_ip.clone(),
            modified_date: query::modified(t).map(format_date),
            scopes: t.scopes.names(),
            additional_metadata: t
                .metadata
                .as_ref()
                .and_then(|m| serde_json::from_str(m.get()).ok()),
        }
    }
}

/// Dynatrace's `ApiTokenList`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenList {
    /// The tokens of this page, with the fields `fields` selects.
    #[schema(value_type = Vec<Object>)]
    pub api_tokens: Vec<Value>,
    /// Send it alone as `nextPageKey` for the next page; null on the last page.
    pub next_page_key: Option<String>,
    pub page_size: u32,
    pub total_count: u64,
}

/// Dynatrace's `ApiTokenCreate`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenCreate {
    pub name: String,
    pub scopes: Vec<String>,
    /// Epoch milliseconds, ISO 8601 (`2025-01-25T05:57:01.123+01:00`; UTC without an offset)
    /// or relative (`now+14d`, `now+1h`, …). Never expires when left out or null.
    #[schema(value_type = Option<String>, example = "now+14d")]
    pub expiration_date: Option<Value>,
    /// True: the caller's user owns it (the caller must belong to a user); false: the tenant
    /// owns it (needs tokens:admin unless the caller is itself a tenant token); null: the
    /// caller's owner.
    pub personal_access_token: Option<bool>,
}

/// Dynatrace's `ApiTokenCreated`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenCreated {
    pub id: String,
    /// The token itself, shown this once.
    pub token: String,
    pub expiration_date: Option<String>,
}

/// Dynatrace's `ApiTokenUpdate`: only what is sent changes; scopes sent replace the set.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ApiTokenUpdate {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub scopes: Option<Vec<String>>,
}

/// Dynatrace's `ApiTokenSecret`.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct ApiTokenSecret {
    pub token: String,
}

/// The query of `GET /api/v2/apiTokens` (documentation; parsed by hand).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
#[serde(rename_all = "camelCase")]
pub struct ListParams {
    /// The key of the next page, from the previous response; sent alone.
    next_page_key: Option<String>,
    /// 100 to 10000; 200 by default.
    page_size: Option<u32>,
    /// `owner("id")`, `personalAccessToken(true|false)`, `scope("a","b")`, joined with commas.
    api_token_selector: Option<String>,
    /// `+field` / `-field`, comma-separated; by default id, name, enabled, owner,
    /// creationDate.
    fields: Option<String>,
    /// Last use from (epoch millis, ISO 8601 or `now-2h`).
    from: Option<String>,
    /// Last use to.
    to: Option<String>,
    /// `±name|lastUsedDate|creationDate|expirationDate|modifiedDate`; `-creationDate` by default.
    sort: Option<String>,
}

/// One problem with one input.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintViolation {
    pub path: String,
    pub message: String,
    /// `PAYLOAD_BODY`, `QUERY` or `PATH`.
    pub parameter_location: &'static str,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// The HTTP status.
    pub code: u16,
    pub message: String,
    pub constraint_violations: Vec<ConstraintViolation>,
}

/// Dynatrace's error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
}

// ---------------------------------------------------------------------------------------------
// Errors

/// A native error in Dynatrace's shape: validation failures are 400 with their constraint
/// violations.
pub struct DtError {
    inner: ApiError,
    violations: Vec<ConstraintViolation>,
}

impl From<ApiError> for DtError {
    fn from(inner: ApiError) -> Self {
        Self {
            inner,
            violations: Vec::new(),
        }
    }
}

const BODY: &str = "PAYLOAD_BODY";
const QUERY: &str = "QUERY";
const PATH: &str = "PATH";

fn violation(
    path: &str,
    message: impl Into<String>,
    location: &'static str,
) -> ConstraintViolation {
    ConstraintViolation {
        path: path.to_owned(),
        message: message.into(),
        parameter_location: location,
    }
}

impl DtError {
    fn invalid(violations: Vec<ConstraintViolation>) -> Self {
        let message = match violations.as_slice() {
            [v] => format!("{}: {}", v.path, v.message),
            _ => "Constraints violated.".to_owned(),
        };
        Self {
            inner: ApiError::BadRequest(message),
            violations,
        }
    }

    fn one(path: &str, message: impl Into<String>, location: &'static str) -> Self {
        Self::invalid(vec![violation(path, message, location)])
    }
}

/// A validation error of `crate::service::tokens` as a violation of one input.
fn field_error(e: ApiError, path: &str) -> Result<ConstraintViolation, DtError> {
    match e {
        ApiError::BadRequest(m) | ApiError::Unprocessable(m) => Ok(violation(path, m, BODY)),
        e => Err(e.into()),
    }
}

impl IntoResponse for DtError {
    fn into_response(self) -> Response {
        let status = match &self.inner {
            ApiError::BadRequest(_) | ApiError::Unprocessable(_) => StatusCode::BAD_REQUEST,
            e => e.status(),
        };
        let message = match &self.inner {
            ApiError::MissingToken => "Missing authorization parameter.".to_owned(),
            ApiError::InvalidToken => "Token Authentication failed".to_owned(),
            ApiError::InsufficientScope(missing) => format!(
                "Token is missing required scope. Use one of: {}",
                missing
                    .iter()
                    .map(|m| match m.as_str() {
                        keygate_core::scope::TOKENS_READ => "apiTokens.read (or tokens:read)",
                        keygate_core::scope::TOKENS_WRITE => "apiTokens.write (or tokens:write)",
                        m => m,
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ApiError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                self.inner.to_string()
            }
            e => e.to_string(),
        };
        let body = ErrorEnvelope {
            error: ErrorDetail {
                code: status.as_u16(),
                message,
                constraint_violations: self.violations,
            },
        };
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Api-Token realm=\"keygate\""),
            );
        }
        resp
    }
}

type Reader = Result<Authorized<TokensRead>, ApiError>;
type Writer = Result<Authorized<TokensWrite>, ApiError>;
type Body = Result<Json<Value>, ApiError>;

/// The body as a JSON object (400 for anything else).
fn object(body: Body) -> Result<Map<String, Value>, DtError> {
    let Json(v) = body.map_err(|e| match e {
        ApiError::Unprocessable(m) => ApiError::BadRequest(m),
        e => e,
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(DtError::one("", "the body must be a JSON object", BODY)),
    }
}

/// A field left out and a field sent as null are the same (the `dt` client sends nulls).
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn scope_names(v: &Value) -> Option<Vec<String>> {
    v.as_array()?
        .iter()
        .map(|s| s.as_str().map(str::to_owned))
        .collect()
}

fn not_found() -> DtError {
    ApiError::NotFound("The requested token doesn't exist".into()).into()
}

// ---------------------------------------------------------------------------------------------
// Handlers

/// Create a token. `expirationDate` takes epoch millis, ISO 8601 or `now+14d`.
#[utoipa::path(post, path = "/api/v2/apiTokens", tag = "dynatrace",
    request_body = ApiTokenCreate,
    responses(
        (status = 201, description = "Created; `token` is shown this once", body = ApiTokenCreated),
        (status = 400, description = "Invalid input", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, description = "Scope missing, or escalation attempted", body = ErrorEnvelope),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Writer,
    body: Body,
) -> Result<(StatusCode, axum::Json<ApiTokenCreated>), DtError> {
    let caller = caller?;
    let obj = object(body)?;
    let now = keygate_store::now();
    let mut violations = Vec::new();
    let name = match present(&obj, "name") {
        Some(Value::String(n)) => match tokens::validate_name(n) {
            Ok(n) => Some(n),
            Err(e) => {
                violations.push(field_error(e, "name")?);
                None
            }
        },
        Some(_) => {
            violations.push(violation("name", "must be a string", BODY));
            None
        }
        None => {
            violations.push(violation("name", "must not be null", BODY));
            None
        }
    };
    let scopes = match present(&obj, "scopes").map(scope_names) {
        Some(Some(names)) => match tokens::validate_scopes(&state, &names) {
            Ok(s) => Some(s),
            Err(e) => {
                violations.push(field_error(e, "scopes")?);
                None
            }
        },
        Some(None) => {
            violations.push(violation("scopes", "must be an array of strings", BODY));
            None
        }
        None => {
            violations.push(violation("scopes", "must not be null", BODY));
            None
        }
    };
    let expires_at = match present(&obj, "expirationDate") {
        None => None,
        Some(v) => {
            let at = match v {
                Value::String(s) => query::parse_time(s, now),
                Value::Number(n) => n
                    .as_i64()
                    .ok_or_else(|| "must be epoch milliseconds".to_owned())
                    .and_then(|ms| query::parse_time(&ms.to_string(), now)),
                _ => Err("must be a string or epoch milliseconds".to_owned()),
            };
            match at.map(|at| tokens::expiry(now, Some(at), None)) {
                Ok(Ok(at)) => at,
                Ok(Err(e)) => {
                    violations.push(field_error(e, "expirationDate")?);
                    None
                }
                Err(m) => {
                    violations.push(violation("expirationDate", m, BODY));
                    None
                }
            }
        }
    };
    let owner_id = match present(&obj, "personalAccessToken") {
        None => None,
        Some(Value::Bool(true)) => {
            if caller.owner_id() == caller.tenant_id() {
                violations.push(violation(
                    "personalAccessToken",
                    "the calling token belongs to the tenant, not to a user, so it cannot create \
                     a personal access token",
                    BODY,
                ));
            }
            None
        }
        Some(Value::Bool(false)) => Some(caller.tenant_id().to_owned()),
        Some(_) => {
            violations.push(violation("personalAccessToken", "must be a boolean", BODY));
            None
        }
    };
    let (Some(name), Some(scopes), true) = (name, scopes, violations.is_empty()) else {
        return Err(DtError::invalid(violations));
    };
    let spec = NewToken {
        name,
        scopes,
        expires_at,
        owner_id,
        ..NewToken::default()
    };
    let (rec, plain) = tokens::create(&state, &caller, spec).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(ApiTokenCreated {
            id: rec.id.to_string(),
            token: plain.expose().to_owned(),
            expiration_date: rec.expires_at.map(format_date),
        }),
    ))
}

/// The list query, checked.
struct ListQuery {
    key: PageKey,
    selector: query::Selector,
    fields: Vec<&'static str>,
    sort: query::Sort,
}

impl ListQuery {
    /// Parses what a page key holds; `location` names where a problem came from.
    fn from_key(key: PageKey, from_page_key: bool) -> Result<Self, DtError> {
        let at = |param: &str| {
            if from_page_key {
                "nextPageKey".to_owned()
            } else {
                param.to_owned()
            }
        };
        let selector = match &key.selector {
            Some(s) => query::parse_selector(s)
                .map_err(|m| DtError::one(&at("apiTokenSelector"), m, QUERY))?,
            None => query::Selector::default(),
        };
        let fields = match &key.fields {
            Some(f) => query::parse_fields(f).map_err(|m| DtError::one(&at("fields"), m, QUERY))?,
            None => query::DEFAULT_FIELDS.to_vec(),
        };
        let sort = match &key.sort {
            Some(s) => query::parse_sort(s).map_err(|m| DtError::one(&at("sort"), m, QUERY))?,
            None => query::Sort::default(),
        };
        if !(MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&key.page_size) {
            return Err(DtError::one(
                &at("pageSize"),
                format!("must be between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}"),
                QUERY,
            ));
        }
        if let (Some(f), Some(t)) = (key.from, key.to) {
            if f > t {
                return Err(DtError::one(&at("from"), "must not be after to", QUERY));
            }
        }
        Ok(ListQuery {
            key,
            selector,
            fields,
            sort,
        })
    }

    fn from_params(params: Vec<(String, String)>) -> Result<Self, DtError> {
        let mut given: Vec<(&'static str, String)> = Vec::new();
        for (k, v) in params {
            if AUTH_PARAMS.contains(&k.as_str()) {
                continue;
            }
            // Unknown parameters are ignored, as Dynatrace does.
            let Some(name) = LIST_PARAMS.iter().find(|p| **p == k) else {
                continue;
            };
            if given.iter().any(|(n, _)| n == name) {
                return Err(DtError::one(name, "is given more than once", QUERY));
            }
            if !v.trim().is_empty() {
                given.push((name, v));
            }
        }
        let get = |name: &str| {
            given
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        if let Some(k) = get("nextPageKey") {
            if given.len() > 1 {
                return Err(DtError::one(
                    "nextPageKey",
                    "must be sent alone: it already holds the whole query",
                    QUERY,
                ));
            }
            let key = PageKey::decode(&k)
                .filter(|k| k.after.is_some())
                .ok_or_else(|| DtError::one("nextPageKey", "is not a valid page key", QUERY))?;
            return Self::from_key(key, true);
        }
        let now = keygate_store::now();
        let time = |name: &str| -> Result<Option<i64>, DtError> {
            get(name)
                .map(|v| {
                    query::parse_time(&v, now)
                        .map(millis)
                        .map_err(|m| DtError::one(name, m, QUERY))
                })
                .transpose()
        };
        let page_size = match get("pageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(v) => v.trim().parse::<u32>().map_err(|_| {
                DtError::one(
                    "pageSize",
                    format!("must be a number between {MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}"),
                    QUERY,
                )
            })?,
        };
        let key = PageKey {
            selector: get("apiTokenSelector"),
            fields: get("fields"),
            sort: get("sort"),
            from: time("from")?,
            to: time("to")?,
            page_size,
            after: None,
        };
        Self::from_key(key, false)
    }

    fn matches(&self, rec: &TokenRecord) -> bool {
        let used = rec.last_used_at.map(millis);
        self.selector.matches(rec)
            && self.key.from.is_none_or(|f| used.is_some_and(|u| u >= f))
            && self.key.to.is_none_or(|t| used.is_some_and(|u| u <= t))
    }
}

/// Every token the caller may see, through `tokens::list` page by page.
async fn all_visible(state: &AppState, caller: &Caller) -> Result<Vec<TokenRecord>, ApiError> {
    let mut out = Vec::new();
    let mut before_seq = None;
    loop {
        let filter = TokenFilter {
            before_seq,
            limit: 1000,
            ..TokenFilter::default()
        };
        let page = tokens::list(state, caller, filter).await?;
        out.extend(page.items);
        match page.next {
            Some(n) => before_seq = Some(n),
            None => return Ok(out),
        }
    }
}

/// List tokens: the caller's own, or with `tokens:admin` the whole tenant's.
#[utoipa::path(get, path = "/api/v2/apiTokens", tag = "dynatrace",
    params(ListParams),
    responses(
        (status = 200, body = ApiTokenList),
        (status = 400, description = "Bad query parameter", body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope),
        (status = 403, body = ErrorEnvelope),
    ),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Reader,
    params: Result<Query<Vec<(String, String)>>, ApiError>,
) -> Result<axum::Json<ApiTokenList>, DtError> {
    let caller = caller?;
    let Query(params) = params?;
    let q = ListQuery::from_params(params)?;
    let field = q.sort.field;
    let desc = q.sort.descending;
    let mut items: Vec<(query::Key, TokenRecord)> = all_visible(&state, &caller)
        .await?
        .into_iter()
        .filter(|t| q.matches(t))
        .map(|t| (query::sort_key(&t, field), t))
        .collect();
    items.sort_by(|a, b| query::compare((&a.0, a.1.id.as_str()), (&b.0, b.1.id.as_str()), desc));
    let total = items.len() as u64;
    let start = match &q.key.after {
        None => 0,
        Some((k, id)) => items.partition_point(|(ik, t)| {
            query::compare((ik, t.id.as_str()), (k, id), desc) != std::cmp::Ordering::Greater
        }),
    };
    let size = q.key.page_size as usize;
    let page = &items[start..(start + size).min(items.len())];
    let next_page_key = match page.last() {
        Some((k, t)) if start + page.len() < items.len() => Some(
            PageKey {
                after: Some((k.clone(), t.id.to_string())),
                ..q.key.clone()
            }
            .encode(),
        ),
        _ => None,
    };
    let api_tokens = page
        .iter()
        .map(|(_, t)| {
            let mut full = match serde_json::to_value(ApiToken::from(t)) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            };
            let mut shown = Map::new();
            for f in &q.fields {
                if let Some(v) = full.remove(*f) {
                    shown.insert((*f).to_owned(), v);
                }
            }
            Value::Object(shown)
        })
        .collect();
    Ok(axum::Json(ApiTokenList {
        api_tokens,
        next_page_key,
        page_size: q.key.page_size,
        total_count: total,
    }))
}

/// One token's metadata.
#[utoipa::path(get, path = "/api/v2/apiTokens/{id}", tag = "dynatrace",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, body = ApiToken), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn get_token(
    State(state): State<AppState>,
    caller: Reader,
    id: Result<Path<String>, ApiError>,
) -> Result<axum::Json<ApiToken>, DtError> {
    let caller = caller?;
    let Path(id) = id?;
    match tokens::visible(&state, &caller, &id).await {
        Ok(t) => Ok(axum::Json(ApiToken::from(&t))),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Change a token's name, enabled state or scopes: only what is sent changes, and scopes sent
/// replace the set.
#[utoipa::path(put, path = "/api/v2/apiTokens/{id}", tag = "dynatrace",
    params(("id" = String, Path, description = "Token id")),
    request_body = ApiTokenUpdate,
    responses((status = 204, description = "Updated"), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn update_token(
    State(state): State<AppState>,
    caller: Writer,
    id: Result<Path<String>, ApiError>,
    body: Body,
) -> Result<StatusCode, DtError> {
    let caller = caller?;
    let Path(id) = id?;
    let obj = object(body)?;
    let mut violations = Vec::new();
    let name = match present(&obj, "name") {
        None => None,
        Some(Value::String(n)) => match tokens::validate_name(n) {
            Ok(n) => Some(n),
            Err(e) => {
                violations.push(field_error(e, "name")?);
                None
            }
        },
        Some(_) => {
            violations.push(violation("name", "must be a string", BODY));
            None
        }
    };
    let enabled = match present(&obj, "enabled") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            violations.push(violation("enabled", "must be a boolean", BODY));
            None
        }
    };
    let scopes: Option<ScopeSet> = match present(&obj, "scopes").map(scope_names) {
        None => None,
        Some(Some(names)) => match tokens::validate_scopes(&state, &names) {
            Ok(s) => Some(s),
            Err(e) => {
                violations.push(field_error(e, "scopes")?);
                None
            }
        },
        Some(None) => {
            violations.push(violation("scopes", "must be an array of strings", BODY));
            None
        }
    };
    if !violations.is_empty() {
        return Err(DtError::invalid(violations));
    }
    if let Some(s) = &scopes {
        tokens::ensure_covers(&caller, s)?;
    }
    let mut rec = match tokens::changeable(&state, &caller, &id).await {
        Ok(r) => r,
        Err(ApiError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    if name.is_none() && enabled.is_none() && scopes.is_none() {
        return Ok(StatusCode::NO_CONTENT);
    }
    if let Some(n) = name {
        rec.name = n;
    }
    if let Some(e) = enabled {
        rec.enabled = e;
    }
    if let Some(s) = scopes {
        rec.scopes = s;
    }
    let details = json!({ "name": rec.name, "scopes": rec.scopes.names(), "enabled": rec.enabled,
                          "surface": "dynatrace" });
    match tokens::save(&state, &caller, rec, AuditAction::TokenUpdate, details).await {
        Ok(_) => Ok(StatusCode::NO_CONTENT),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// Revoke a token, given by its id or by the token itself. The token that authenticates the
/// request cannot delete itself here (400).
#[utoipa::path(delete, path = "/api/v2/apiTokens/{id}", tag = "dynatrace",
    params(("id" = String, Path, description = "Token id, or the token itself")),
    responses((status = 204, description = "Revoked"),
              (status = 400, description = "The calling token itself", body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn delete_token(
    State(state): State<AppState>,
    caller: Writer,
    id: Result<Path<String>, ApiError>,
) -> Result<StatusCode, DtError> {
    let caller = caller?;
    let Path(id) = id?;
    let rec = match tokens::visible(&state, &caller, &id).await {
        Ok(r) => r,
        Err(ApiError::NotFound(_)) => tokens::visible_by_secret(&state, &caller, &id)
            .await?
            .ok_or_else(not_found)?,
        Err(e) => return Err(e.into()),
    };
    if caller.is_token(&rec.id) {
        return Err(DtError::one(
            "id",
            "You can't delete the token you're using for authentication of the request",
            PATH,
        ));
    }
    match tokens::delete(&state, &caller, rec, AuditAction::TokenDelete).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(e) => Err(e.into()),
    }
}

/// A token's metadata from the token itself.
#[utoipa::path(post, path = "/api/v2/apiTokens/lookup", tag = "dynatrace",
    request_body = ApiTokenSecret,
    responses((status = 200, body = ApiToken), (status = 400, body = ErrorEnvelope),
              (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
              (status = 404, body = ErrorEnvelope)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn lookup_token(
    State(state): State<AppState>,
    caller: Reader,
    body: Body,
) -> Result<axum::Json<ApiToken>, DtError> {
    let caller = caller?;
    let obj = object(body)?;
    let secret = match present(&obj, "token") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(DtError::one("token", "must be a string", BODY)),
        None => return Err(DtError::one("token", "must not be null", BODY)),
    };
    match tokens::visible_by_secret(&state, &caller, secret).await? {
        Some(t) => Ok(axum::Json(ApiToken::from(&t))),
        None => Err(not_found()),
    }
}
