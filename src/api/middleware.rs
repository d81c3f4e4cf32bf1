//! The steps every request passes before its handler: maintenance (step 1 of the contract's
//! order), identification and rate limits (steps 2–3), and the per-request log line and metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::{ClusterStore, Identity};
use crate::error::Error;
use crate::ratelimit::{Decision, Limited};
use crate::store::Store;
use crate::telemetry::{HTTP_DURATION, HTTP_REQUESTS, RATE_LIMITED};

/// Step 1: while in maintenance, `/v1` answers 503 before anything else is looked at.
pub async fn maintenance(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.maintenance.is_on() {
        return Error::Maintenance.into_response();
    }
    next.run(request).await
}

/// Steps 2 and 3 for one limited endpoint: who is calling (401), then their budget (429). Every
/// answer of the endpoint carries the `X-RateLimit-*` headers of the budget it drew on.
pub async fn rate_limit(
    State((state, action)): State<(AppState, Limited)>,
    request: Request,
    next: Next,
) -> Response {
    // The body stays aside while the caller is identified (it is not `Sync`, the parts are).
    let (mut parts, body) = request.into_parts();
    let org = org_segment(parts.uri.path()).to_owned();
    let key = match action {
        // Sign-in is limited per API key; without the header the handler answers 422.
        Limited::SignIn => match parts
            .headers
            .get("x-api-key-id")
            .and_then(|v| v.to_str().ok())
        {
            Some(key_id) => format!("{org}\u{0}{key_id}"),
            None => return next.run(Request::from_parts(parts, body)).await,
        },
        _ => match identify(&state, &org, &parts.headers).await {
            Ok((store, identity)) => {
                let key = format!("{}\u{0}{}", identity.org_id, identity.user_id);
                parts.extensions.insert(ClusterStore(store));
                parts.extensions.insert(identity);
                key
            }
            Err(e) => return e.into_response(),
        },
    };
    let identity = parts.extensions.get::<Identity>().cloned();
    let decision = state.rate_limits.check(action, &key);
    let mut response = match decision.and_then(|d| d.retry_after_secs) {
        Some(retry_after_secs) => {
            metrics::counter!(RATE_LIMITED, "endpoint" => action.name()).increment(1);
            tracing::info!(endpoint = action.name(), "rate limit exceeded");
            Error::RateLimited { retry_after_secs }.into_response()
        }
        None => next.run(Request::from_parts(parts, body)).await,
    };
    if let Some(d) = decision {
        add_rate_limit_headers(response.headers_mut(), d);
    }
    if let Some(identity) = identity {
        // For the request log line.
        response.extensions_mut().insert(identity);
    }
    response
}

/// The request's cluster, and who its token says the caller is.
async fn identify(
    state: &AppState,
    org: &str,
    headers: &HeaderMap,
) -> Result<(Arc<dyn Store>, Identity), Error> {
    let store = state.clusters.resolve(org, headers).await?;
    let identity = state.auth.identify(store.as_ref(), headers).await?;
    Ok((store, identity))
}

/// `/v1/{org}/…` → `org` (the path is routed already, so the segment exists).
fn org_segment(path: &str) -> &str {
    path.split('/').nth(2).unwrap_or("")
}

fn add_rate_limit_headers(headers: &mut HeaderMap, d: Decision) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_unix));
}

/// One log line and the metrics of every request: request id, method, route, status, latency, and
/// the caller when known. Never headers or bodies, so never a token or a secret.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // The route template, not the raw path: bounded label values, no ids in metrics.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let who = response.extensions().get::<Identity>();
    tracing::info!(
        target: "simtest::request",
        request_id,
        method = %method,
        route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        org = who.map(|w| w.org_id.as_str()),
        user = who.map(|w| w.user_id.as_str()),
        "request"
    );
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(latency.as_secs_f64());
    response
}
