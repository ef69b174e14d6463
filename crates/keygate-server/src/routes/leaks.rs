//! `/api/v1/leaks/…`: where secret scanners report tokens they found in public. GitHub's
//! secret-scanning partner program posts signed reports; GitLab's secret detection calls the
//! Token Revocation API. Both are served only when configured (404 otherwise), and both hand
//! each token to `service::leaks`, which decides and acts the same way for either.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use keygate_core::{PlainToken, TokenHash};

use crate::auth::scanner::{GitlabRevoker, SignedGithubReport};
use crate::dto::leaks::{
    GithubLeak, GithubLeakAnswer, GitlabLeak, GitlabTokenTypes, Label, GITLAB_TOKEN_TYPE,
    MAX_TOKENS_PER_REPORT,
};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{parse_json, Json};
use crate::service::leaks::{self, Found, Reporter};
use crate::state::AppState;

fn too_many(n: usize) -> ApiError {
    ApiError::Unprocessable(format!(
        "A report may name at most {MAX_TOKENS_PER_REPORT} tokens, this one names {n}; send \
         them in several reports"
    ))
}

fn hex_hash(token: &PlainToken) -> String {
    let TokenHash(bytes) = token.hash();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn json_answer(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// GitHub's secret-scanning partner endpoint: a signed JSON array of the tokens found. Each is
/// answered `true_positive` (a token of this deployment, handled by its tenant's `onLeak`) or
/// `false_positive`. A replay of a report already accepted (the same signature, in either of
/// its encodings) is refused with 401 and changes nothing: the first delivery acted already,
/// so refusing a copy loses nothing, and a captured report cannot be used to probe the
/// service. Served only with `--github-scanning-keys`.
#[utoipa::path(post, path = "/api/v1/leaks/github", tag = "leaks",
    request_body = Vec<GithubLeak>,
    params(
        ("Github-Public-Key-Identifier" = String, Header, description = "The id of GitHub's key that signed the report"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256 signature of SHA-256 over the raw body")),
    responses(
        (status = 200, description = "One answer per reported token, in order", body = Vec<GithubLeakAnswer>),
        (status = 400, description = "Signed, but not JSON", body = ErrorBody),
        (status = 401, description = "Unsigned, badly signed, signed by a key the key file does not list, or a replay of a report already accepted", body = ErrorBody),
        (status = 404, description = "The intake is not configured (`--github-scanning-keys`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Not an array of reports, or more than 1000 tokens", body = ErrorBody)))]
pub async fn github(
    State(state): State<AppState>,
    report: SignedGithubReport,
) -> ApiResult<Response> {
    if state
        .store
        .leak_report_answer(&report.signature)
        .await?
        .is_some()
    {
        return Err(ApiError::InvalidSignature(
            "This report was accepted before (the same signature): a replay is refused and \
             changes nothing"
                .into(),
        ));
    }
    let leaks: Vec<GithubLeak> = parse_json(&report.body)?;
    if leaks.len() > MAX_TOKENS_PER_REPORT {
        return Err(too_many(leaks.len()));
    }
    let mut answers = Vec::with_capacity(leaks.len());
    for leak in leaks {
        let token = PlainToken::from_client(leak.token);
        let token_hash = hex_hash(&token);
        let found = Found::github(leak.token_type.clone(), leak.url, leak.source);
        let ours = leaks::report(&state, Reporter::Github, token, &found, report.ip).await?;
        answers.push(GithubLeakAnswer {
            token_hash,
            token_type: leak.token_type,
            label: if ours {
                Label::TruePositive
            } else {
                Label::FalsePositive
            },
        });
    }
    let answer = serde_json::to_string(&answers).expect("answers serialise");
    let now = keygate_store::now();
    state
        .store
        .keep_leak_report(&report.signature, &report.key_id, &answer, now)
        .await?;
    Ok(json_answer(answer))
}

/// GitLab's Token Revocation API: the token types this deployment revokes. Needs the bearer
/// token of `--gitlab-revocation-token-file`.
#[utoipa::path(get, path = "/api/v1/leaks/gitlab/revocable_token_types", tag = "leaks",
    responses(
        (status = 200, body = GitlabTokenTypes),
        (status = 401, description = "No bearer token, or not the configured one", body = ErrorBody),
        (status = 404, description = "Not configured (`--gitlab-revocation-token-file`)", body = ErrorBody),
        (status = 429, description = "Too many requests from this address in a minute (`--gitlab-revocation-rate-limit`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn gitlab_types(_caller: GitlabRevoker) -> axum::Json<GitlabTokenTypes> {
    axum::Json(GitlabTokenTypes {
        types: vec![GITLAB_TOKEN_TYPE.to_owned()],
    })
}

/// GitLab's Token Revocation API: tokens its secret detection found. Each token of this
/// deployment is handled by its tenant's `onLeak`; others are ignored (GitLab is told nothing
/// per token). Idempotent: a token already reported is not acted on again.
#[utoipa::path(post, path = "/api/v1/leaks/gitlab/revoke_tokens", tag = "leaks",
    request_body = Vec<GitlabLeak>,
    responses(
        (status = 204, description = "Handled"),
        (status = 400, body = ErrorBody),
        (status = 401, description = "No bearer token, or not the configured one", body = ErrorBody),
        (status = 404, description = "Not configured (`--gitlab-revocation-token-file`)", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, description = "Not an array of tokens, or more than 1000", body = ErrorBody),
        (status = 429, description = "Too many requests from this address in a minute (`--gitlab-revocation-rate-limit`)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn gitlab_revoke(
    State(state): State<AppState>,
    caller: GitlabRevoker,
    Json(leaks): Json<Vec<GitlabLeak>>,
) -> ApiResult<StatusCode> {
    if leaks.len() > MAX_TOKENS_PER_REPORT {
        return Err(too_many(leaks.len()));
    }
    for leak in leaks {
        // The type is recorded, not checked: the token's own format says whether it is ours.
        let found = Found::gitlab(leak.token_type, leak.location);
        let token = PlainToken::from_client(leak.token);
        leaks::report(&state, Reporter::Gitlab, token, &found, caller.ip).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
