//! The steps every `/v1` request passes before its handler, in the contract's order, each with one
//! home: maintenance (503) → org (the path segment decoded and validated once, and its cluster) →
//! caller (the token, 401) → rate limit (429) → permissions (the `CurrentUser` extractor, 403/404)
//! → handler. Also the outermost steps of every request: a bounded request id, and one log line and
//! the metrics per request.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::users::SignInHeaders;
use crate::AppState;
use crate::auth::{Identity, RequestOrg};
use crate::domain::OrgId;
use crate::domain::problems::{Loc, Problems};
use crate::error::Error;
use crate::ratelimit::{Decision, LimitKey, Limited};
use crate::telemetry::{HTTP_DURATION, HTTP_REQUESTS, RATE_LIMITED};

/// Step 1: while in maintenance, `/v1` answers 503 before anything else is looked at.
pub async fn maintenance(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.maintenance.is_on() {
        return Error::Maintenance.into_response();
    }
    next.run(request).await
}

/// The org step: the `{organization}` segment, percent-decoded (by the router) and validated here,
/// once; then the cluster holding the org's data. Everything later reads [`RequestOrg`], so an
/// encoded spelling of an org is that org in every respect, and a segment that decodes to no valid
/// org is refused (422) before anything else sees it.
pub async fn org(
    State(state): State<AppState>,
    params: Result<RawPathParams, axum::extract::rejection::RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let mut p = Problems::default();
    let segment = match &params {
        Ok(params) => params
            .iter()
            .find(|(name, _)| *name == "organization")
            .map(|(_, value)| value),
        Err(_) => None,
    };
    let Some(org) = segment.and_then(|s| OrgId::parse(s, &mut p)) else {
        if p.is_empty() {
            // The router decodes every parameter: one that is not UTF-8 spoils them all.
            p.push(
                &Loc::root("path").key("organization"),
                "string_unicode",
                "Path parameters must be valid UTF-8 once percent-decoded",
            );
        }
        return Error::Invalid(p.into_vec()).into_response();
    };
    match state.clusters.resolve(&org, request.headers()).await {
        Ok(store) => {
            request.extensions_mut().insert(RequestOrg { org, store });
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

pub(super) fn request_org(request: &Request) -> Result<RequestOrg, Error> {
    request
        .extensions()
        .get::<RequestOrg>()
        .cloned()
        .ok_or_else(|| Error::Internal("route without the org step".into()))
}

/// The caller step: a genuine token of a live user (401 otherwise), looked up in the org's cluster.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = match request_org(&request) {
        Ok(org) => {
            let identity = state
                .auth
                .identify(org.store.as_ref(), request.headers())
                .await;
            if let Err(Error::Unauthorized(reason)) = &identity {
                // Never the token: the org tried and why it failed, so guessing shows.
                tracing::warn!(org = %org.org, reason, "authentication failed");
            }
            identity
        }
        Err(e) => Err(e),
    };
    match identity {
        Ok(identity) => {
            request.extensions_mut().insert(identity.clone());
            let mut response = next.run(request).await;
            // For the request log line.
            response.extensions_mut().insert(identity);
            response
        }
        Err(e) => e.into_response(),
    }
}

/// The rate-limit step of a user endpoint: the caller's budget for `action` (429 past it). Every
/// answer carries the `X-RateLimit-*` headers of the budget it drew on.
pub async fn rate_limit(
    State((state, action)): State<(AppState, Limited)>,
    request: Request,
    next: Next,
) -> Response {
    let Some(identity) = request.extensions().get::<Identity>() else {
        return Error::Internal("route without the authentication step".into()).into_response();
    };
    let key = LimitKey::of(&[&identity.org_id, identity.user_id.as_str()]);
    let decision = state.rate_limits.check(action, key);
    limited(action, decision, request, next).await
}

/// The rate-limit step of sign-in. Its headers are judged first (422: no value an attacker picks
/// reaches a limiter unchecked); then the client address's budget over every org and key, so
/// guesses spread over many key ids stop there before any key is remembered; then the budget of
/// the (org, key id) pair, which throttles guessing one key's secret.
pub async fn sign_in_rate_limit(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = match SignInHeaders::parse(request.headers()) {
        Ok(headers) => headers,
        Err(e) => return e.into_response(),
    };
    let org = match request_org(&request) {
        Ok(org) => org.org,
        Err(e) => return e.into_response(),
    };
    let address = client_address(&request);
    let by_address = state.rate_limits.check(
        Limited::SignInPerAddress,
        LimitKey::of(&["address", &address]),
    );
    if let Some(refused) = by_address.filter(|d| d.retry_after_secs.is_some()) {
        tracing::warn!(%org, key_id = headers.key_id, %address, "sign-in refused: address over its budget");
        return limited(Limited::SignInPerAddress, Some(refused), request, next).await;
    }
    let key = LimitKey::of(&[org.as_str(), &headers.key_id]);
    let decision = state.rate_limits.check(Limited::SignIn, key);
    request.extensions_mut().insert(headers);
    limited(Limited::SignIn, decision, request, next).await
}

/// Runs the request if `decision` admits it (or there is no limit), answers 429 otherwise; adds
/// the `X-RateLimit-*` headers either way.
async fn limited(
    action: Limited,
    decision: Option<Decision>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match decision.and_then(|d| d.retry_after_secs) {
        Some(retry_after_secs) => {
            metrics::counter!(RATE_LIMITED, "endpoint" => action.name()).increment(1);
            tracing::info!(endpoint = action.name(), "rate limit exceeded");
            Error::RateLimited { retry_after_secs }.into_response()
        }
        None => next.run(request).await,
    };
    if let Some(d) = decision {
        let headers = response.headers_mut();
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_unix));
    }
    response
}

/// The peer address, as the budget key of one client: IPv6 by its /64 (one host usually holds a
/// whole /64, so single addresses would be free to rotate). Behind a proxy every client shares the
/// proxy's address; the per-address budget then acts as a global one.
fn client_address(request: &Request) -> String {
    match request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
    {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => match ip.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = ip.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_owned(),
    }
}

/// Longest `x-request-id` taken from a client.
const MAX_REQUEST_ID_CHARS: usize = 128;

/// Outermost: a client's `x-request-id` is kept only if it is short and plain (at most 128 of
/// `[A-Za-z0-9._:-]`); otherwise it is dropped and the next layer makes a fresh one. It is logged
/// and echoed, so nothing else may pass.
pub async fn bound_request_id(mut request: Request, next: Next) -> Response {
    let plain = |v: &HeaderValue| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REQUEST_ID_CHARS
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._:-".contains(c))
    };
    if request
        .headers()
        .get("x-request-id")
        .is_some_and(|v| !plain(v))
    {
        request.headers_mut().remove("x-request-id");
    }
    next.run(request).await
}

/// A method as a metrics label and log field: the standard ones by name, anything else `other`, so
/// made-up methods cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// One log line and the metrics of every request: request id, method, route, status, latency, and
/// the caller when known. Never headers or bodies, so never a token or a secret. Every label comes
/// from a fixed set: the method's (see [`method_label`]), the matched route template or
/// `unmatched`, the status.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let request_id = request_id(request.headers());
    let response = next.run(request).await;
    let latency = started.elapsed();
    let status = response.status().as_u16();
    let who = response.extensions().get::<Identity>();
    tracing::info!(
        target: "simtest::request",
        request_id,
        method,
        route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        org = who.map(|w| w.org_id.as_str()),
        user = who.map(|w| w.user_id.as_str()),
        "request"
    );
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(latency.as_secs_f64());
    response
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
