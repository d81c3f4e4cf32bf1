//! The HTTP surface: each resource module gives its routes, this one merges them and adds the
//! layers every request passes through.

mod bench;
mod bulk;
mod extract;
mod idempotency;
mod openapi;
mod ops;
mod pipeline;
pub mod render;
mod timeout;
mod unit_test_sets;
mod unit_tests;
mod users;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::AppState;
pub use crate::config::HttpSettings;
use crate::error::Error;
use crate::ratelimit::Budgets;

/// Every contract path is served with and without its trailing slash.
fn with_trailing_slash(path: &str) -> [String; 2] {
    [path.to_owned(), format!("{path}/")]
}

/// Responses smaller than this are sent as they are: compressing them costs more than it saves.
const COMPRESS_ABOVE_BYTES: u64 = 1024;

/// The application's routes and layers; `budgets` are the rate limits `state` enforces, which the
/// OpenAPI document states.
pub fn router(state: AppState, settings: &HttpSettings, budgets: Budgets) -> Router {
    let served = openapi::Served {
        cluster_names: state
            .clusters
            .all()
            .filter_map(|(name, _)| name)
            .map(str::to_owned)
            .collect(),
        budgets,
        max_body_bytes: settings.max_body_bytes,
    };
    let request_id = HeaderName::from_static("x-request-id");
    let v1 = Router::new()
        .merge(unit_tests::router(&state))
        .merge(unit_test_sets::router(&state))
        .merge(bulk::router(&state))
        .merge(users::router(&state))
        .merge(if settings.bench_routes {
            bench::router(&state)
        } else {
            Router::new()
        })
        // Route layers run outermost-last: maintenance, then the org, then each router's own steps.
        .route_layer(from_fn_with_state(state.clone(), pipeline::org))
        .route_layer(from_fn_with_state(state.clone(), pipeline::maintenance));
    Router::new()
        .merge(v1)
        .merge(ops::router())
        .merge(openapi::router(&served))
        .fallback(|| async { Error::RouteNotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(from_fn_with_state(
            settings.request_timeout,
            timeout::request_timeout,
        ))
        .layer(from_fn(pipeline::observe))
        .layer(
            CompressionLayer::new().compress_when(
                SizeAbove::new(COMPRESS_ABOVE_BYTES)
                    .and(NotForContentType::const_new("text/event-stream")),
            ),
        )
        .layer(cors(&settings.cors_origins))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(from_fn(pipeline::bound_request_id))
        .with_state(state)
}

/// CORS for the configured origins only; with none configured, no CORS headers are sent.
fn cors(origins: &[HeaderValue]) -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-org-id"),
            HeaderName::from_static("x-mongo-cluster-name"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-api-key"),
            HeaderName::from_static("x-api-key-id"),
            HeaderName::from_static("x-user-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .max_age(Duration::from_secs(600))
}
