//! Instana's API-token API (seed 004, client `instana-client`'s `APITokenApi`):
//! `GET/POST /api/settings/api-tokens`, `GET/PUT/DELETE /api/settings/api-tokens/{internalId}`
//! with Instana's `ApiToken` model.
//!
//! - Each `can…` / `limited…Scope` flag of the model is the scope `instana:<flag>`; a token
//!   shows a flag as true when its scopes allow that scope (so `*` and `instana:*` show all).
//! - `internalId` is the id the client chose when it created the token (kept as the token's
//!   `chosen_id`); a token made elsewhere shows its keygate id. `id` is always keygate's id.
//!   A chosen id never has the shape of a keygate id, so a path id of that shape is a keygate
//!   id and any other is a chosen one: no path can name two tokens. Chosen ids are unique per
//!   tenant and never given twice (the store keeps those of deleted tokens).
//! - keygate never stores a secret, so `accessGrantingToken` is masked in every answer, the
//!   ones to POST and PUT included: `<keygate id>_****`. The client's chosen secret is accepted
//!   on creation (16–256 visible characters) and kept only as a hash; it never chooses the id.
//! - Flags are always stored one scope each, which is what a role holds, so no-escalation
//!   compares like with like. A PUT keeps every scope outside `instana:`; `instana:*` is
//!   replaced by the flags sent, and a token holding `*` keeps it (its flags cannot change here).
//! - Every route needs `tokens:admin` or `instana:canConfigureApiTokens`, checked by its
//!   extractor (`InstanaRead`, `InstanaManage`); the native rules of
//!   `crate::service::tokens` (visibility, no escalation, audit, cache invalidation) apply as they are.
//! - Errors are the native body, which is Instana's (`{"error":"Unauthorized","message":
//!   "Invalid API token"}`) plus `code`.

use keygate_core::AuditAction;
use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::StatusCode;
use keygate_core::fields::{ExternalId, FieldError, Problem, TokenName};
use keygate_core::{PlainToken, Scope, ScopeCatalog, ScopeSet};
use keygate_store::{TokenFilter, TokenRecord};
use secrecy::ExposeSecret;
use serde_json::json;
use time::OffsetDateTime;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authorized, Caller, RequiredScope, TokenChange};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::service::tokens::{self, NewToken};
use crate::state::AppState;

pub use model::{InstanaApiToken, FLAGS};

/// The scope namespace of Instana's permission flags.
pub const NAMESPACE: &str = "instana";
/// The flag (and scope) that lets a token manage tokens on this surface.
pub const CONFIGURE_API_TOKENS: &str = "instana:canConfigureApiTokens";
/// This surface's name for the id a client chose (keygate's external id).
const INTERNAL_ID: &str = "internalId";
/// What a read shows in place of the secret, after the token id.
pub const MASK: &str = "_****";

pub fn register_scopes(catalog: &mut ScopeCatalog) {
    for flag in FLAGS {
        let description = format!("Instana API token permission {flag}");
        catalog
            .add_to_group("instana", &scope_of(flag), &description)
            .expect("Instana's flag names are valid scope names");
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(instana_list_tokens, instana_create_token))
        .routes(routes!(
            instana_get_token,
            instana_put_token,
            instana_delete_token
        ))
}

fn scope_of(flag: &str) -> String {
    format!("{NAMESPACE}:{flag}")
}

/// The model, generated from the list of Instana's permission flags (the field names are the
/// JSON names, as in `instana_client/models/api_token.py`).
#[allow(non_snake_case)]
mod model {
    use secrecy::SecretString;
    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    macro_rules! instana_flags {
        ($($flag:ident),* $(,)?) => {
            /// Every permission flag of Instana's `ApiToken`, by its JSON name.
            pub const FLAGS: &[&str] = &[$(stringify!($flag)),*];

            /// Instana's `ApiToken`. In answers, `accessGrantingToken` is masked and every flag
            /// is present (true or false); in requests an absent flag means false.
            #[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
            pub struct InstanaApiToken {
                /// The secret. Chosen by the client on creation (16–256 visible characters);
                /// always masked in answers (`<id>_****`): keygate keeps only its hash.
                #[serde(rename = "accessGrantingToken", default,
                        skip_serializing_if = "Option::is_none",
                        serialize_with = "crate::reveal::optional_secret")]
                #[schema(value_type = Option<String>)]
                pub access_granting_token: Option<SecretString>,
                /// The token's id on this surface: chosen by the client on creation (never
                /// shaped like a keygate id, never reused in the tenant), or keygate's id for
                /// tokens made elsewhere.
                #[serde(rename = "internalId", default, skip_serializing_if = "Option::is_none")]
                pub internal_id: Option<String>,
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub name: Option<String>,
                /// keygate's token id (ignored in requests).
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub id: Option<String>,
                /// The token id that created this token (ignored in requests).
                #[serde(rename = "createdBy", default, skip_serializing_if = "Option::is_none")]
                pub created_by: Option<String>,
                /// Epoch milliseconds (ignored in requests).
                #[serde(rename = "createdOn", default, skip_serializing_if = "Option::is_none")]
                pub created_on: Option<i64>,
                /// Epoch milliseconds; in a request, when the token stops working.
                #[serde(rename = "expiresOn", default, skip_serializing_if = "Option::is_none")]
                pub expires_on: Option<i64>,
                /// Epoch milliseconds (ignored in requests).
                #[serde(rename = "lastUsedOn", default, skip_serializing_if = "Option::is_none")]
                pub last_used_on: Option<i64>,
                $(
                    #[serde(default, skip_serializing_if = "Option::is_none")]
                    pub $flag: Option<bool>,
                )*
            }

            impl InstanaApiToken {
                /// The flags set to true.
                pub fn flags_set(&self) -> std::collections::BTreeSet<&'static str> {
                    let mut s = std::collections::BTreeSet::new();
                    $(
                        if self.$flag == Some(true) {
                            s.insert(stringify!($flag));
                        }
                    )*
                    s
                }

                /// Sets every flag, to true where `on` says so.
                pub fn set_flags(&mut self, on: impl Fn(&str) -> bool) {
                    $( self.$flag = Some(on(stringify!($flag))); )*
                }
            }
        };
    }

    instana_flags!(
        canCollectNetTraceLogs,
        canConfigureAgentRunMode,
        canConfigureAgents,
        canConfigureAiAgents,
        canConfigureApdex,
        canConfigureApiTokens,
        canConfigureApplicationBusinessCriticality,
        canConfigureApplicationSmartAlerts,
        canConfigureApplications,
        canConfigureAuthenticationMethods,
        canConfigureAutomationActions,
        canConfigureAutomationPolicies,
        canConfigureBizops,
        canConfigureCustomEntities,
        canConfigureDatabaseManagement,
        canConfigureEntityPayloadTransformationRules,
        canConfigureEumApplications,
        canConfigureEventsAndAlerts,
        canConfigureGenAIEvaluations,
        canConfigureGenAISmartAlerts,
        canConfigureGlobalAlertPayload,
        canConfigureGlobalApplicationSmartAlerts,
        canConfigureGlobalInfraSmartAlerts,
        canConfigureGlobalLogSmartAlerts,
        canConfigureGlobalSyntheticSmartAlerts,
        canConfigureIPFiltering,
        canConfigureIntegrations,
        canConfigureLLM,
        canConfigureLLMModelPrice,
        canConfigureLogManagement,
        canConfigureLogRetentionPeriod,
        canConfigureLoggingPerspectives,
        canConfigureMaintenanceWindows,
        canConfigureMobileAppBusinessCriticality,
        canConfigureMobileAppConversions,
        canConfigureMobileAppMonitoring,
        canConfigureMobileAppSmartAlerts,
        canConfigureNetworkIntegrations,
        canConfigurePersonalApiTokens,
        canConfigurePersonallyIdentifiableInformationMasking,
        canConfigureReleases,
        canConfigureServiceLevelCorrectionWindows,
        canConfigureServiceLevelSmartAlerts,
        canConfigureServiceLevels,
        canConfigureServiceMapping,
        canConfigureSessionSettings,
        canConfigureSubtraces,
        canConfigureSyntheticCredentials,
        canConfigureSyntheticLocations,
        canConfigureSyntheticTests,
        canConfigureTeams,
        canConfigureUsers,
        canConfigureWebsiteBusinessCriticality,
        canConfigureWebsiteConversions,
        canConfigureWebsiteSmartAlerts,
        canCreateHeapDump,
        canCreatePublicCustomDashboards,
        canCreateThreadDump,
        canDeleteAutomationActionHistory,
        canDeleteLogs,
        canDownloadAgentConfiguration,
        canEditAllAccessibleCustomDashboards,
        canInstallNewAgents,
        canInvokeAlertChannel,
        canManuallyCloseIssue,
        canPlaybackSessionReplay,
        canRunAutomationActions,
        canUseSyntheticCredentials,
        canViewAccountAndBillingInformation,
        canViewAuditLog,
        canViewBizAlerts,
        canViewBusinessActivities,
        canViewBusinessProcessDetails,
        canViewBusinessProcesses,
        canViewLogVolume,
        canViewLogs,
        canViewSyntheticLocations,
        canViewSyntheticTestResults,
        canViewSyntheticTests,
        canViewTraceDetails,
        limitedAiGatewayScope,
        limitedAlertChannelsScope,
        limitedApplicationsScope,
        limitedAutomationScope,
        limitedBizOpsScope,
        limitedGenAICapabilitiesScope,
        limitedGenAIScope,
        limitedInfrastructureScope,
        limitedKubernetesScope,
        limitedLinuxKVMHypervisorScope,
        limitedLoggingPerspectivesScope,
        limitedLogsScope,
        limitedMobileAppsScope,
        limitedNutanixScope,
        limitedOpenstackScope,
        limitedPcfScope,
        limitedPhmcScope,
        limitedPvcScope,
        limitedSAPScope,
        limitedServiceLevelScope,
        limitedSyntheticsScope,
        limitedVsphereScope,
        limitedWebsitesScope,
        limitedWindowsHypervisorScope,
        limitedXenServerScope,
        limitedZhmcScope,
    );
}

/// Reading tokens on this surface needs `instana:canConfigureApiTokens` or `tokens:admin`; a
/// caller with neither is refused 403 naming the first.
pub struct InstanaRead;

impl RequiredScope for InstanaRead {
    const SCOPE: Option<&'static str> = Some(CONFIGURE_API_TOKENS);
    const OR_ANY_OF: &'static [&'static str] = &[keygate_core::scope::TOKENS_ADMIN];
    const CHANGES_STATE: bool = false;
}

/// Creating, changing and revoking tokens on this surface: the scopes [`InstanaRead`] names,
/// and, for a web session, its CSRF token.
pub struct InstanaManage;

impl RequiredScope for InstanaManage {
    const SCOPE: Option<&'static str> = InstanaRead::SCOPE;
    const OR_ANY_OF: &'static [&'static str] = InstanaRead::OR_ANY_OF;
    const CHANGES_STATE: bool = true;
}

impl TokenChange for InstanaManage {}
const _: () = assert!(InstanaManage::CHANGES_STATE, "a token change must be one");

fn epoch_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A token's id on this surface.
fn internal_id_of(rec: &TokenRecord) -> String {
    rec.chosen_id
        .clone()
        .unwrap_or_else(|| rec.id.as_str().to_owned())
}

/// A token as Instana's model: masked secret, every flag present.
fn view(rec: &TokenRecord) -> InstanaApiToken {
    let mut v = InstanaApiToken {
        access_granting_token: Some(format!("{}{MASK}", rec.id).into()),
        internal_id: Some(internal_id_of(rec)),
        name: Some(rec.name.clone()),
        id: Some(rec.id.as_str().to_owned()),
        created_by: rec.created_by.clone(),
        created_on: Some(epoch_ms(rec.created_at)),
        expires_on: rec.expires_at.map(epoch_ms),
        last_used_on: rec.last_used_at.map(epoch_ms),
        ..InstanaApiToken::default()
    };
    v.set_flags(|f| rec.scopes.allows(&scope_of(f)));
    v
}

/// The flags a token shows as true.
fn shown_flags(scopes: &ScopeSet) -> BTreeSet<&'static str> {
    FLAGS
        .iter()
        .copied()
        .filter(|f| scopes.allows(&scope_of(f)))
        .collect()
}

/// The scopes for a set of flags: one per flag, all of them included. Never `instana:*`: no role
/// holds that wildcard, only the flags one by one, so asking for it would fail no-escalation
/// for an admin who holds every flag (and it would also grant flags of future clients).
fn flag_scopes(flags: &BTreeSet<&'static str>) -> Vec<Scope> {
    flags
        .iter()
        .map(|f| Scope::parse(&scope_of(f)).expect("a valid scope name"))
        .collect()
}

/// The scopes after a PUT: unchanged if the flags shown do not change; otherwise the token's
/// scopes outside the `instana:` namespace plus the flags set (so `instana:*` becomes the flags
/// sent). A token holding `*` shows every flag and no set of scopes without `*` keeps what it
/// grants elsewhere (`tenants:admin` on the bootstrap token), so its flags cannot change here:
/// 409 rather than a silent narrowing or a 200 that changed nothing.
fn updated_scopes(old: &ScopeSet, flags: &BTreeSet<&'static str>) -> ApiResult<ScopeSet> {
    if shown_flags(old) == *flags {
        return Ok(old.clone());
    }
    if old.iter().any(|s| s.as_str() == "*") {
        return Err(ApiError::Conflict(
            "this token holds `*`, which grants every permission flag, so its flags cannot be \
             changed here; narrow its scopes with PUT /api/v1/tokens/{id}"
                .into(),
        ));
    }
    let prefix = format!("{NAMESPACE}:");
    let mut scopes: Vec<Scope> = old
        .iter()
        .filter(|s| !s.as_str().starts_with(&prefix))
        .cloned()
        .collect();
    scopes.extend(flag_scopes(flags));
    Ok(ScopeSet::new(scopes))
}

/// The client's chosen id, refused in Instana's name for the field.
fn parse_internal_id(id: &str) -> ApiResult<ExternalId> {
    Ok(id
        .parse()
        .map_err(|e: FieldError| e.for_field(INTERNAL_ID))?)
}

fn required_name(body: &InstanaApiToken) -> ApiResult<TokenName> {
    match &body.name {
        Some(n) => Ok(n.parse()?),
        None => Err(ApiError::Unprocessable("name is required".into())),
    }
}

/// This surface's name for the native `expiresAt`.
const EXPIRES_ON: &str = "expiresOn";

/// `expiresOn` (epoch milliseconds) as an expiry, checked as the native `expiresAt` is.
fn expiry_of(ms: i64) -> ApiResult<OffsetDateTime> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .map_err(|_| FieldError::new(EXPIRES_ON, Problem::OutOfRange))?;
    let at = tokens::expiry(keygate_store::now(), Some(at), None)
        .map_err(|e| e.for_field(EXPIRES_ON))?;
    Ok(at.expect("an expiry was given"))
}

/// The token whose id on this surface is `internal_id`, if the caller may see it. The shape
/// alone says which kind of id it is, so no chosen id can hide a keygate id or the reverse.
async fn find(
    state: &AppState,
    caller: &Caller,
    internal_id: &str,
) -> ApiResult<Option<TokenRecord>> {
    let rec = if keygate_core::token::has_id_shape(internal_id) {
        // Only a token without a chosen id goes by its keygate id: each token has one name here.
        state
            .store
            .token_by_id(caller.tenant_id(), internal_id)
            .await?
            .filter(|t| t.chosen_id.is_none())
    } else {
        state
            .store
            .token_by_chosen_id(caller.tenant_id(), internal_id)
            .await?
    };
    Ok(rec.filter(|t| caller.may_see(t)))
}

async fn find_or_404(
    state: &AppState,
    caller: &Caller,
    internal_id: &str,
) -> ApiResult<TokenRecord> {
    find(state, caller, internal_id)
        .await?
        .ok_or_else(|| ApiError::NotFound("No API token with this internalId".into()))
}

/// Creates a token with the client's chosen id and secret.
async fn create(
    state: &AppState,
    caller: &Authorized<InstanaManage>,
    internal_id: &str,
    body: InstanaApiToken,
) -> ApiResult<TokenRecord> {
    let external_id = parse_internal_id(internal_id)?;
    let name = required_name(&body)?;
    let flags = body.flags_set();
    let secret = match body.access_granting_token {
        Some(s) if !s.expose_secret().is_empty() => s,
        _ => {
            return Err(ApiError::Unprocessable(
                "accessGrantingToken is required to create a token".into(),
            ))
        }
    };
    let expires_at = body.expires_on.map(expiry_of).transpose()?;
    let scopes = ScopeSet::new(flag_scopes(&flags));
    // Only the caller's tenant is asked: another tenant's ids answer as free ones.
    let taken = state
        .store
        .token_by_chosen_id(caller.tenant_id(), internal_id)
        .await?
        .is_some();
    if taken {
        return Err(ApiError::Conflict(format!(
            "An API token with internalId {internal_id:?} already exists"
        )));
    }
    let spec = NewToken {
        expires_at,
        secret: Some(PlainToken::from_client(secret.expose_secret())),
        chosen_id: Some(external_id),
        ..NewToken::new(name, scopes)
    };
    match tokens::create(state, caller, spec).await {
        Ok((rec, _)) => Ok(rec),
        // The store refuses an internalId a deleted token had, as well as a secret in use.
        Err(ApiError::Conflict(_)) => Err(ApiError::Conflict(
            "This internalId was used before (an internalId is never given twice in a tenant, \
             even after its token is deleted), or this accessGrantingToken is in use"
                .into(),
        )),
        Err(e) => Err(e),
    }
}

/// Instana's list has no pages; beyond this many tokens it is refused rather than built whole
/// in memory (the native list pages through any number).
pub const MAX_LISTED: usize = 10_000;

/// Get all API tokens: the whole tenant's with `tokens:admin`, else the caller's owner's.
#[utoipa::path(get, path = "/api/settings/api-tokens", tag = "instana",
    operation_id = "instanaGetApiTokens",
    responses((status = 200, body = Vec<InstanaApiToken>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 422, description = "More tokens than the unpaged list returns", body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn instana_list_tokens(
    State(state): State<AppState>,
    caller: ApiResult<Authorized<InstanaRead>>,
) -> ApiResult<axum::Json<Vec<InstanaApiToken>>> {
    let caller = caller?;
    let mut out = Vec::new();
    let mut before_seq = None;
    loop {
        let page = tokens::list(
            &state,
            &caller,
            TokenFilter {
                before_seq,
                limit: 1000,
                ..TokenFilter::default()
            },
        )
        .await?;
        out.extend(page.items.iter().map(view));
        if out.len() > MAX_LISTED {
            return Err(ApiError::Unprocessable(format!(
                "more than {MAX_LISTED} API tokens, the most this unpaged list returns; \
                 GET /api/v1/tokens lists any number, a page at a time"
            )));
        }
        match page.next {
            Some(n) => before_seq = Some(n),
            None => break,
        }
    }
    Ok(axum::Json(out))
}

/// Get one API token by its internalId.
#[utoipa::path(get, path = "/api/settings/api-tokens/{internalId}", tag = "instana",
    operation_id = "instanaGetApiToken",
    params(("internalId" = String, Path, description = "The id the client chose, or keygate's id")),
    responses((status = 200, body = InstanaApiToken), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn instana_get_token(
    State(state): State<AppState>,
    caller: ApiResult<Authorized<InstanaRead>>,
    Path(internal_id): Path<String>,
) -> ApiResult<axum::Json<InstanaApiToken>> {
    let caller = caller?;
    let rec = find_or_404(&state, &caller, &internal_id).await?;
    Ok(axum::Json(view(&rec)))
}

/// Create an API token with the client's chosen `internalId` and `accessGrantingToken`;
/// answers 200 (as Instana does) with the token, its secret masked.
#[utoipa::path(post, path = "/api/settings/api-tokens", tag = "instana",
    operation_id = "instanaPostApiToken",
    request_body = InstanaApiToken,
    responses((status = 200, body = InstanaApiToken), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn instana_create_token(
    State(state): State<AppState>,
    caller: ApiResult<Authorized<InstanaManage>>,
    Json(body): Json<InstanaApiToken>,
) -> ApiResult<axum::Json<InstanaApiToken>> {
    let caller = caller?;
    let Some(internal_id) = body.internal_id.clone() else {
        return Err(ApiError::Unprocessable("internalId is required".into()));
    };
    let rec = create(&state, &caller, &internal_id, body).await?;
    Ok(axum::Json(view(&rec)))
}

/// Create or update an API token: an existing one gets the name and the flags sent (flags
/// left out are false); an unknown `internalId` is created as by POST.
#[utoipa::path(put, path = "/api/settings/api-tokens/{internalId}", tag = "instana",
    operation_id = "instanaPutApiToken",
    params(("internalId" = String, Path, description = "The id the client chose, or keygate's id")),
    request_body = InstanaApiToken,
    responses((status = 200, body = InstanaApiToken), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn instana_put_token(
    State(state): State<AppState>,
    caller: ApiResult<Authorized<InstanaManage>>,
    Path(internal_id): Path<String>,
    Json(body): Json<InstanaApiToken>,
) -> ApiResult<axum::Json<InstanaApiToken>> {
    let caller = caller?;
    if let Some(b) = &body.internal_id {
        if *b != internal_id {
            return Err(ApiError::Unprocessable(format!(
                "internalId {b:?} in the body differs from {internal_id:?} in the path"
            )));
        }
    }
    let Some(found) = find(&state, &caller, &internal_id).await? else {
        let rec = create(&state, &caller, &internal_id, body).await?;
        return Ok(axum::Json(view(&rec)));
    };
    let name = required_name(&body)?;
    // No escalation, for the token as it is and as it will be.
    let mut rec = tokens::changeable(&state, &caller, found.id.as_str()).await?;
    let scopes = updated_scopes(&rec.scopes, &body.flags_set())?;
    tokens::ensure_covers(&caller, &scopes)?;
    if let Some(ms) = body.expires_on {
        if rec.expires_at.map(epoch_ms) != Some(ms) {
            tokens::change_expiry(&mut rec, Some(expiry_of(ms)?), keygate_store::now())?;
        }
    }
    rec.name = name.into_string();
    rec.scopes = scopes;
    let details = json!({ "name": rec.name, "scopes": rec.scopes.names(),
                          "expiresAt": rec.expires_at.map(crate::rfc3339_ms::format),
                          "via": "instana" });
    let rec = tokens::save(&state, &caller, rec, AuditAction::TokenUpdate, details).await?;
    Ok(axum::Json(view(&rec)))
}

/// Delete (revoke) an API token; 204.
#[utoipa::path(delete, path = "/api/settings/api-tokens/{internalId}", tag = "instana",
    operation_id = "instanaDeleteApiToken",
    params(("internalId" = String, Path, description = "The id the client chose, or keygate's id")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("apiToken" = []), ("bearer" = [])))]
pub async fn instana_delete_token(
    State(state): State<AppState>,
    caller: ApiResult<Authorized<InstanaManage>>,
    Path(internal_id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = caller?;
    let found = find_or_404(&state, &caller, &internal_id).await?;
    let rec = tokens::visible(&state, &caller, found.id.as_str()).await?;
    tokens::delete(&state, &caller, rec, AuditAction::TokenDelete).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_chosen_secret() {
        let t = InstanaApiToken {
            access_granting_token: Some("my-own-instana-secret-0001".into()),
            internal_id: Some("ext-1".into()),
            canConfigureApiTokens: Some(true),
            ..InstanaApiToken::default()
        };
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("my-own-instana-secret-0001"), "{dbg}");
        assert!(dbg.contains("REDACTED") && dbg.contains("ext-1"), "{dbg}");
        assert!(dbg.contains("canConfigureApiTokens: Some(true)"), "{dbg}");
    }

    #[test]
    fn every_flag_is_a_valid_scope_and_registered() {
        let mut c = ScopeCatalog::default();
        register_scopes(&mut c);
        assert_eq!(FLAGS.len(), 106);
        for f in FLAGS {
            assert!(c.knows(&Scope::parse(&scope_of(f)).unwrap()), "{f}");
        }
    }

    #[test]
    fn flags_parse_strictly_and_absent_is_false() {
        let t: InstanaApiToken =
            serde_json::from_str(r#"{"name":"a","canViewLogs":true,"canDeleteLogs":false}"#)
                .unwrap();
        assert_eq!(t.flags_set(), BTreeSet::from(["canViewLogs"]));
        assert!(serde_json::from_str::<InstanaApiToken>(r#"{"canViewLogs":"true"}"#).is_err());
    }

    #[test]
    fn put_keeps_other_scopes_and_wildcards_are_never_lost() {
        let old = ScopeSet::parse(["tokens:read", "instana:canViewLogs"]).unwrap();
        let new = updated_scopes(&old, &BTreeSet::from(["canDeleteLogs"])).unwrap();
        assert_eq!(new.names(), vec!["instana:canDeleteLogs", "tokens:read"]);
        let all: BTreeSet<_> = FLAGS.iter().copied().collect();
        let every = flag_scopes(&all);
        assert_eq!(every.len(), FLAGS.len());
        assert!(every.iter().all(|s| !s.is_wildcard()));
        // `*` stays whatever is sent: as shown it is kept, anything else is refused.
        let star = ScopeSet::parse(["*", "tokens:read"]).unwrap();
        assert_eq!(updated_scopes(&star, &all).unwrap(), star);
        assert!(matches!(
            updated_scopes(&star, &BTreeSet::from(["canViewLogs"])),
            Err(ApiError::Conflict(_))
        ));
        // `instana:*` is the flags: clearing one keeps the others, one scope each.
        let wild = ScopeSet::parse(["instana:*", "metrics:*"]).unwrap();
        let mut fewer = all.clone();
        fewer.remove("canDeleteLogs");
        let new = updated_scopes(&wild, &fewer).unwrap();
        assert_eq!(new.len(), 1 + FLAGS.len() - 1);
        assert!(new.allows("metrics:read") && new.allows("instana:canViewLogs"));
        assert!(!new.allows("instana:canDeleteLogs"));
    }

    #[test]
    fn a_chosen_id_never_has_a_keygate_ids_shape() {
        assert!(parse_internal_id("ci-token-1").is_ok());
        for shaped in ["kg_0123456789abcdef", "dt0c01_ABCDEFGHIJKLMNOP"] {
            match parse_internal_id(shaped) {
                Err(ApiError::Unprocessable(m)) => assert!(
                    m.starts_with("internalId must not have the shape of a keygate token id"),
                    "{m}"
                ),
                other => panic!("{shaped}: {other:?}"),
            }
        }
    }
}
