//! The HTTP surface: each resource module gives its routes, this one merges them and adds the
//! layers every request passes through.

mod extract;
mod ops;
mod unit_tests;
mod users;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::AppState;
use crate::error::Error;

/// Every contract path is served with and without its trailing slash.
fn with_trailing_slash(path: &str) -> [String; 2] {
    [path.to_owned(), format!("{path}/")]
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(unit_tests::router())
        .merge(users::router())
        .merge(ops::router())
        .fallback(|| async { Error::RouteNotFound })
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
