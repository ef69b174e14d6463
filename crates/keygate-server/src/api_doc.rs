//! The OpenAPI document's frame: title, tags and security schemes, and the answers every
//! authenticated operation shares. The paths come from the routes' own annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::error::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "keygate",
        description = "Self-hosted API tokens: mint, verify, scope, rotate and revoke.",
        license(name = "Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(ErrorBody)),
    tags(
        (name = "tokens", description = "Token management"),
        (name = "users", description = "The people of a tenant"),
        (name = "tenants", description = "Tenants (held by the bootstrap token)"),
        (name = "session", description = "Web login with a cookie and a CSRF token"),
        (name = "verify", description = "Checking tokens for a protected API"),
        (name = "usage", description = "Verifications counted per token over time"),
        (name = "replication", description = "A tenant's tokens (hashes, never secrets) and their changes, for APIs that verify tokens in process (`keygate-client`)"),
        (name = "scopes", description = "The scope catalogue"),
        (name = "audit", description = "The audit log"),
        (name = "webhooks", description = "Webhook endpoints, signed per Standard Webhooks, and their delivery logs"),
        (name = "leaks", description = "Where secret scanners (GitHub's partner program, GitLab's Token Revocation API) report leaked tokens"),
        (name = "ops", description = "Health, readiness and metrics"),
        (name = "instana", description = "Instana-compatible token API (`--compat instana`)"),
        (name = "dynatrace", description = "Dynatrace-compatible token API (`--compat dynatrace`)"),
        (name = "interana", description = "Interana-compatible token API (`--compat interana`)"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "apiToken",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Authorization",
                "`apiToken <token>`; the schemes `Api-Token`, `Token` and `Bearer` work too, and \
                 so do the query parameters `api-token`, `apiToken` and `api_token`",
            ))),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every operation that can answer 401 can also answer 429: a client address that has failed
/// too often (`auth::token`). The 429 has the body of that operation's 401, whose format is the
/// surface's own (native, or a compatible API's), and says when to retry.
pub struct RateLimitedAnswers;

impl Modify for RateLimitedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{header::HeaderBuilder, ObjectBuilder, RefOr, Type};
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                let answers = &mut op.responses.responses;
                let Some(RefOr::T(unauthorized)) = answers.get("401") else {
                    continue;
                };
                if answers.contains_key("429") {
                    continue;
                }
                let mut limited = unauthorized.clone();
                limited.description = "Too many failed authentications from this client \
                                       address; retry after `Retry-After` seconds"
                    .into();
                limited.headers.insert(
                    "Retry-After".into(),
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("Seconds until attempts are accepted again"))
                        .build(),
                );
                answers.insert("429".into(), RefOr::T(limited));
            }
        }
    }
}
