//! Benchmark-only routes, served only with `--bench-routes` (off by default): the *HTTP ceiling*
//! of BENCHMARKS.md.
//!
//! `GET /bench/{organization}/list-page` answers the bytes of the org's first list page (`limit=50`,
//! no filter, with `filter_values`) through the same layers as the list route — request id, CORS,
//! compression, timeout, logging, maintenance, rate limit, authentication and authorization — but
//! without the list's store work: each org's page is read once, at its first call, and replayed
//! after (only to callers who may read that org).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::header;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::OnceCell;

use super::pipeline;
use super::unit_tests::ListResponse;
use crate::AppState;
use crate::auth::{CurrentUser, Permission};
use crate::domain::OrgId;
use crate::domain::query_string::QueryParams;
use crate::error::{Error, Result};
use crate::ratelimit::Limited;

/// Each org's first list page, rendered once (orgs a caller may read only, so bounded by the data).
type Captured = Arc<Mutex<HashMap<OrgId, Arc<OnceCell<Bytes>>>>>;

pub fn router(state: &AppState) -> Router<AppState> {
    let captured = Captured::default();
    let limited = from_fn_with_state(
        (state.clone(), Limited::ListUnitTests),
        pipeline::rate_limit,
    );
    let handler = move |state: State<AppState>, user: CurrentUser| {
        replay_list_page(state, user, captured.clone())
    };
    Router::new()
        .route(
            "/bench/{organization}/list-page",
            get(handler.layer(limited)),
        )
        .route_layer(from_fn_with_state(state.clone(), pipeline::authenticate))
}

async fn replay_list_page(
    State(state): State<AppState>,
    user: CurrentUser,
    captured: Captured,
) -> Result<Response> {
    user.require(Permission::Get)?;
    let cell = captured
        .lock()
        .map_err(|_| Error::Internal("bench capture lock poisoned".into()))?
        .entry(user.org_id.clone())
        .or_default()
        .clone();
    let body = cell
        .get_or_try_init(|| async {
            let params = QueryParams::parse(Some("limit=50"));
            let listed = state.unit_tests.list(&user, &params).await?;
            let body = ListResponse::new(&listed.page, listed.offset, &state.renderings)?;
            let bytes = serde_json::to_vec(&body)
                .map_err(|e| Error::Internal(format!("cannot render the list page: {e}")))?;
            Ok::<_, Error>(Bytes::from(bytes))
        })
        .await?
        .clone();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
