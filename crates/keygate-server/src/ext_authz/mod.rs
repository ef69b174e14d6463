//! Envoy's external authorization over gRPC (`envoy.service.auth.v3.Authorization/Check`): the
//! same verification as forward-auth (`GET /api/v1/auth`), with the same cache, limits,
//! credits, usage counts and metrics, answered as a `CheckResponse`.
//!
//! A route of Envoy names what it needs in its `context_extensions`: `scopes`
//! (comma-separated), `permissions` (a permission query), `cost` (credits, default 1) and
//! `strip_token` (`true`: the upstream does not see the token).

mod answer;
mod request;

use std::future::Future;
use std::time::Duration;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use keygate_store::verifier::Check;
use keygate_store::Outcome;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::auth::gateway;
use crate::error::ApiError;
use crate::state::AppState;
use request::Asked;

/// A `CheckRequest` carries the original request's headers (and its body only when Envoy is
/// told to send it): far below gRPC's default of 4 MiB.
const MAX_MESSAGE_BYTES: usize = 256 * 1024;

pub struct ExtAuthz {
    state: AppState,
}

impl ExtAuthz {
    async fn answer(&self, asked: &Asked) -> CheckResponse {
        let state = &self.state;
        let prefix = state.config.prefix.as_str();
        let ip = asked.ip;
        let refused = |e: ApiError| answer::denied(&e, None, prefix);
        let permissions = match gateway::permissions(asked.extension("permissions")) {
            Ok(p) => p,
            Err(e) => return refused(e),
        };
        let cost = match gateway::cost(asked.extension("cost")) {
            Ok(c) => c,
            Err(e) => return refused(e),
        };
        let credential = asked.credential(state.config.allow_query_token);
        let token = match gateway::presented(state, credential, ip) {
            Ok(t) => t,
            Err(e) => return refused(e),
        };
        let scopes = asked.scopes();
        let c = Check {
            token: &token,
            scopes: &scopes,
            permissions: permissions.as_ref(),
            ratelimits: &[],
            cost,
            ip,
        };
        let v = match gateway::check(state, &c, c.ip).await {
            Ok(v) => v,
            Err(e) => return refused(e),
        };
        match &v.outcome {
            Outcome::Valid(t) => answer::ok(t, &v, asked.strip_token()),
            _ => answer::denied(&crate::auth::token::refusal(&v), Some(&v), prefix),
        }
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthz {
    async fn check(&self, req: Request<CheckRequest>) -> Result<Response<CheckResponse>, Status> {
        let asked = Asked::new(req.into_inner());
        Ok(Response::new(self.answer(&asked).await))
    }
}

/// Serves `Check` on `listener` over HTTP/2 without TLS (as Envoy's `grpc_service` connects)
/// until `shutdown` resolves, then finishes the calls under way.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    let service =
        AuthorizationServer::new(ExtAuthz { state }).max_decoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .timeout(timeout)
        .add_service(service)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
}
