//! `/v1/{organization}/simulation/unit_test/…`: create, list, search, update, delete.

use axum::extract::{RawQuery, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::extract::{JsonBody, UnitTestIdParam};
use super::{middleware, with_trailing_slash};
use crate::AppState;
use crate::auth::{CurrentUser, Permission};
use crate::domain::problems::Problems;
use crate::domain::query::{FilterValues, QueryParams, parse_list_query, parse_search_query};
use crate::domain::{IdKey, NewUnitTest, UnitTestJson, UnitTestPatch};
use crate::error::{Error, Result};
use crate::ratelimit::Limited;

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |action| from_fn_with_state((state.clone(), action), middleware::rate_limit);
    let mut router = Router::new();
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test") {
        router = router.route(
            &path,
            post(create_unit_test.layer(limited(Limited::CreateUnitTest)))
                .get(list_unit_tests.layer(limited(Limited::ListUnitTests))),
        );
    }
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test/search") {
        router = router.route(
            &path,
            get(search_unit_tests.layer(limited(Limited::SearchUnitTests))),
        );
    }
    for path in
        with_trailing_slash("/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}")
    {
        router = router.route(
            &path,
            post(update_unit_test.layer(limited(Limited::UpdateUnitTest)))
                .delete(delete_unit_test.layer(limited(Limited::DeleteUnitTest))),
        );
    }
    router
}

async fn create_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    body: JsonBody,
) -> Result<Response> {
    user.require(Permission::Create)?;
    let new = NewUnitTest::parse(&body.value().map_err(Error::Invalid)?).map_err(Error::Invalid)?;
    let id = state.unit_tests.create(&user, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "simulation_unit_test_id": id })),
    )
        .into_response())
}

#[derive(Serialize)]
struct ListResponse<'a> {
    simulation_unit_tests: Vec<UnitTestJson<'a>>,
    has_more: bool,
    continuation_token: Option<u64>,
    filter_values: Option<FilterValues>,
}

async fn list_unit_tests(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    if !user.can(Permission::Get) {
        // The contract answers an empty page rather than 403 to a caller who may not read.
        let empty = ListResponse {
            simulation_unit_tests: Vec::new(),
            has_more: false,
            continuation_token: None,
            filter_values: None,
        };
        return Ok(Json(empty).into_response());
    }
    let query = parse_list_query(&user.org_id, &QueryParams::parse(raw.as_deref()))
        .map_err(Error::Invalid)?;
    let page = state.unit_tests.list(&query).await?;
    let next_offset = query.offset + page.items.len() as u64;
    let body = ListResponse {
        simulation_unit_tests: page
            .items
            .iter()
            .map(|doc| UnitTestJson {
                doc,
                id_key: IdKey::Id,
            })
            .collect(),
        has_more: page.has_more,
        continuation_token: page.has_more.then_some(next_offset),
        filter_values: page.filter_values,
    };
    Ok(Json(body).into_response())
}

#[derive(Serialize)]
struct SearchResponse<'a> {
    simulation_unit_tests: Vec<UnitTestJson<'a>>,
}

async fn search_unit_tests(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    if !user.can(Permission::Get) {
        return Ok(Json(SearchResponse {
            simulation_unit_tests: Vec::new(),
        })
        .into_response());
    }
    let query = parse_search_query(&user.org_id, &QueryParams::parse(raw.as_deref()))
        .map_err(Error::Invalid)?;
    let page = state.unit_tests.list(&query).await?;
    let items = page
        .items
        .iter()
        .map(|doc| UnitTestJson {
            doc,
            id_key: IdKey::UnderscoreId,
        })
        .collect();
    Ok(Json(SearchResponse {
        simulation_unit_tests: items,
    })
    .into_response())
}

async fn update_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
    body: JsonBody,
) -> Result<StatusCode> {
    user.require(Permission::Modify)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let patch = body.value().and_then(|v| UnitTestPatch::parse(&v));
    let (id, patch) = match (id, patch) {
        (Some(id), Ok(patch)) if p.is_empty() => (id, patch),
        (_, patch) => {
            let mut problems = p.into_vec();
            problems.extend(patch.err().unwrap_or_default());
            return Err(Error::Invalid(problems));
        }
    };
    state.unit_tests.update(&user, id, patch).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
) -> Result<StatusCode> {
    user.require(Permission::Delete)?;
    let mut p = Problems::default();
    let id = id
        .parse(&mut p)
        .ok_or_else(|| Error::Invalid(p.into_vec()))?;
    state.unit_tests.delete(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
