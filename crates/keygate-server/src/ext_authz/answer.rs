//! The `CheckResponse`s keygate gives: OK with the token's headers for the upstream, or denied
//! with the status, headers and JSON body the HTTP surfaces answer with. Every refusal,
//! including a database failure, is a denied response and never a gRPC error: Envoy may be
//! configured to let requests through when its authorization service errs.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::rpc;
use keygate_core::credentials::{redact_secrets, QUERY_PARAMS};
use keygate_store::cache::CachedToken;
use keygate_store::verifier::Verification;
use tonic::Code;

use crate::auth::gateway;
use crate::error::ApiError;

/// Every header keygate may set upstream: the ones a token does not fill are removed, so that
/// a client cannot pass its own `x-keygate-external-id` to the upstream.
const UPSTREAM: [&str; 6] = [
    "x-keygate-token-id",
    "x-keygate-owner-id",
    "x-keygate-tenant-id",
    "x-keygate-scopes",
    "x-keygate-external-id",
    "x-keygate-credits-remaining",
];

pub fn ok(t: &CachedToken, v: &Verification, strip_token: bool) -> CheckResponse {
    let mut headers = Vec::with_capacity(UPSTREAM.len());
    let mut set = Vec::with_capacity(UPSTREAM.len());
    gateway::upstream_headers(t, v, |name, value| {
        headers.push(header(name, value.to_owned()));
        set.push(name);
    });
    let mut headers_to_remove: Vec<String> = UPSTREAM
        .iter()
        .filter(|name| !set.contains(*name))
        .map(|name| (*name).to_owned())
        .collect();
    let mut query_parameters_to_remove = Vec::new();
    if strip_token {
        headers_to_remove.push("authorization".to_owned());
        query_parameters_to_remove = QUERY_PARAMS.iter().map(|p| (*p).to_owned()).collect();
    }
    let ok = OkHttpResponse {
        headers,
        headers_to_remove,
        query_parameters_to_remove,
        response_headers_to_add: ratelimit_headers(v),
        ..Default::default()
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: Code::Ok as i32,
            ..Default::default()
        }),
        http_response: Some(HttpResponse::OkResponse(ok)),
        ..Default::default()
    }
}

/// The refusal as the HTTP surfaces give it; `limits` adds the RateLimit-* headers of a
/// verification that got as far as the token's rate limits.
pub fn denied(e: &ApiError, limits: Option<&Verification>, prefix: &str) -> CheckResponse {
    if let ApiError::Internal(detail) = e {
        tracing::error!(error = %detail, "internal error in ext_authz");
    }
    let status = e.status();
    let mut headers = vec![
        header("content-type", "application/json".to_owned()),
        header("cache-control", "no-store".to_owned()),
    ];
    if status == axum::http::StatusCode::UNAUTHORIZED {
        // Both challenges in one value: Envoy may overwrite a repeated name.
        headers.push(header(
            "www-authenticate",
            "apiToken realm=\"keygate\", Bearer realm=\"keygate\"".to_owned(),
        ));
    }
    if let ApiError::RateLimited(s)
    | ApiError::TokenRateLimited(s)
    | ApiError::UsageExceeded(Some(s)) = e
    {
        headers.push(header("retry-after", s.to_string()));
    }
    if let Some(v) = limits {
        headers.extend(ratelimit_headers(v));
    }
    // The body may repeat what the client sent (a scope name): a token there must not come
    // back, as in the HTTP answers.
    let body = serde_json::to_string(&e.body()).unwrap_or_default();
    let denied = DeniedHttpResponse {
        status: Some(HttpStatus {
            code: i32::from(status.as_u16()),
        }),
        headers,
        body: redact_secrets(&body, prefix),
    };
    CheckResponse {
        status: Some(rpc::Status {
            code: grpc_code(status.as_u16()) as i32,
            message: e.code().to_owned(),
            ..Default::default()
        }),
        http_response: Some(HttpResponse::DeniedResponse(denied)),
        ..Default::default()
    }
}

/// Envoy denies on any code but OK; the code only tells a reader of its logs why.
fn grpc_code(http: u16) -> Code {
    match http {
        400 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        _ => Code::Internal,
    }
}

fn ratelimit_headers(v: &Verification) -> Vec<HeaderValueOption> {
    gateway::ratelimit_headers(&v.ratelimits)
        .into_iter()
        .flatten()
        .map(|(n, v)| header(n, v.to_string()))
        .collect()
}

/// A header that replaces any of the same name.
fn header(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            ..Default::default()
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        ..Default::default()
    }
}
