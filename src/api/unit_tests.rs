//! `/v1/{organization}/simulation/unit_test/…`: create, list, search, update, delete.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use super::extract::{JsonBody, UnitTestIdParam, id_with};
use super::openapi::lifecycle_schemas::{
    HistoryParams, IdempotencyKeyHeader, IfMatchHeader, IfNoneMatchHeader, UnitTestHistoryResponse,
};
use super::openapi::schemas::{
    CloneSimulationUnitTestRequest, CommonFilters, CommonHeaders, CreateSimulationUnitTestRequest,
    CreateSimulationUnitTestResponse, ErrorBody, GetSimulationUnitTestsResponse, ListParams,
    OrganizationPath, SearchParams, SearchSimulationUnitTestsResponse, SimulationUnitTestInstance,
    UpdateSimulationUnitTestRequest, ValidationErrorBody,
};
use super::render::{Rendering, Renderings};
use super::{idempotency, pipeline, with_trailing_slash};
use crate::AppState;
use crate::auth::{CurrentUser, Permission};
use crate::domain::etag::Condition;
use crate::domain::problems::{Loc, Problems};
use crate::domain::query::{FilterValues, ListPage};
use crate::domain::query_string::{QueryParams, parse_history_request};
use crate::domain::{CloneRequest, IdKey, NewUnitTest, UnitTestPatch};
use crate::error::{Error, Result};
use crate::ratelimit::Limited;

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |action| from_fn_with_state((state.clone(), action), pipeline::rate_limit);
    // Inside the rate limit: a replayed answer still counts against the budget.
    let idempotent = || from_fn_with_state(state.clone(), idempotency::idempotent);
    let mut router = Router::new();
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test") {
        router = router.route(
            &path,
            post(
                create_unit_test
                    .layer(idempotent())
                    .layer(limited(Limited::CreateUnitTest)),
            )
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
                .delete(delete_unit_test.layer(limited(Limited::DeleteUnitTest)))
                .get(get_unit_test.layer(limited(Limited::GetUnitTest))),
        );
    }
    for path in with_trailing_slash(
        "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/clone",
    ) {
        router = router.route(
            &path,
            post(
                clone_unit_test
                    .layer(idempotent())
                    .layer(limited(Limited::CloneUnitTest)),
            ),
        );
    }
    for path in with_trailing_slash(
        "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/history",
    ) {
        router = router.route(
            &path,
            get(unit_test_history.layer(limited(Limited::UnitTestHistory))),
        );
    }
    for path in with_trailing_slash(
        "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/permanently",
    ) {
        router = router.route(
            &path,
            axum::routing::delete(
                delete_unit_test_permanently.layer(limited(Limited::HardDeleteUnitTest)),
            ),
        );
    }
    // The caller step, before each route's rate limit.
    router.route_layer(from_fn_with_state(state.clone(), pipeline::authenticate))
}

/// Create a simulation unit test
///
/// Create a new simulation unit test. Every referenced service, version set, persona, scenario and
/// metric must exist (and not be deleted) in the organization; each criterion's `type` must match
/// its metric's value type; the name must be free among the organization's active unit tests.
///
/// #### Permissions
/// * `Simulation:CreateSimulationUnitTest`
#[utoipa::path(
    post,
    path = "/v1/{organization}/simulation/unit_test/",
    operation_id = "create-simulation-unit-test",
    tag = "Simulation",
    params(
        OrganizationPath,
        IdempotencyKeyHeader,
        CommonHeaders,
    ),
    request_body = CreateSimulationUnitTestRequest,
    responses(
        (status = 201, description = "Succeeded.", body = CreateSimulationUnitTestResponse),
        (status = 400, description = "The metric type of a success criterion does not match the metric type of its metric.", body = ErrorBody),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization, service, persona, scenario, metric, or service version set was not found.", body = ErrorBody),
        (status = 409, description = "A unit test with this name already exists.", body = ErrorBody),
        (status = 413, description = "The request body is larger than {MAX_BODY}.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request body failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn create_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    body: JsonBody,
) -> Result<Response> {
    user.require(Permission::Create)?;
    let new = NewUnitTest::parse(&body.value()?)?;
    let created = state.unit_tests.create(&user, new).await?;
    Ok((
        StatusCode::CREATED,
        [(header::ETAG, created.etag())],
        Json(json!({ "simulation_unit_test_id": created.id })),
    )
        .into_response())
}

#[derive(Serialize)]
pub(super) struct ListResponse<'a> {
    simulation_unit_tests: Vec<Arc<Rendering>>,
    has_more: bool,
    continuation_token: Option<u64>,
    filter_values: Option<&'a FilterValues>,
}

impl<'a> ListResponse<'a> {
    /// The answer for `page`, which starts at `offset`.
    pub(super) fn new(page: &'a ListPage, offset: u64, renderings: &Renderings) -> Result<Self> {
        let next_offset = offset + page.items.len() as u64;
        Ok(Self {
            simulation_unit_tests: renderings.render_all(&page.items, IdKey::Id)?,
            has_more: page.has_more,
            continuation_token: page.has_more.then_some(next_offset),
            filter_values: page.filter_values.as_ref(),
        })
    }
}

/// Get simulation unit tests
///
/// Retrieve the simulation unit tests that match the given filters, ordered by `sort_by` (ties and
/// the default order: `_id` ascending), one page at a time. Values of one filter are OR-ed,
/// different filters AND-ed.
///
/// #### Permissions
/// * Without `Simulation:GetSimulationUnitTest` the answer is an empty page, not 403.
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test/",
    operation_id = "get-simulation-unit-tests",
    tag = "Simulation",
    params(OrganizationPath, ListParams, CommonFilters, CommonHeaders),
    responses(
        (status = 200, description = "Succeeded.", body = GetSimulationUnitTestsResponse),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "Specified organization is not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request query parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn list_unit_tests(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let params = QueryParams::parse(raw.as_deref());
    let listed = state.unit_tests.list(&user, &params).await?;
    let body = ListResponse::new(&listed.page, listed.offset, &state.renderings)?;
    Ok(Json(body).into_response())
}

#[derive(Serialize)]
struct SearchResponse {
    simulation_unit_tests: Vec<Arc<Rendering>>,
}

/// Search simulation unit tests
///
/// Search for active simulation unit tests that match the given filters and whose name or
/// description contains every term of the query; most recently updated first, at most {SEARCH_LIMIT}.
///
/// #### Permissions
/// * Without `Simulation:GetSimulationUnitTest` the answer is an empty list, not 403.
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test/search/",
    operation_id = "search-simulation-unit-tests",
    tag = "Simulation",
    params(OrganizationPath, SearchParams, CommonFilters, CommonHeaders),
    responses(
        (status = 200, description = "Succeeded.", body = SearchSimulationUnitTestsResponse),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "Specified organization is not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request query parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn search_unit_tests(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let page = state
        .unit_tests
        .search(&user, &QueryParams::parse(raw.as_deref()))
        .await?;
    let items = state
        .renderings
        .render_all(&page.items, IdKey::UnderscoreId)?;
    Ok(Json(SearchResponse {
        simulation_unit_tests: items,
    })
    .into_response())
}

/// Update a simulation unit test
///
/// Modify the specified simulation unit test. Absent or `null` fields stay as they are; lists are
/// replaced whole; changed references are checked again.
///
/// #### Permissions
/// * `Simulation:ModifySimulationUnitTest`
#[utoipa::path(
    post,
    path = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/",
    operation_id = "update-simulation-unit-test",
    tag = "Simulation",
    params(
        OrganizationPath,
        ("simulation_unit_test_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test to update."),
        IfMatchHeader,
        CommonHeaders,
    ),
    request_body = UpdateSimulationUnitTestRequest,
    responses(
        (status = 204, description = "Succeeded."),
        (status = 400, description = "The metric type of a success criterion does not match the metric type of its metric.", body = ErrorBody),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization, simulation unit test, service, persona, scenario, metric, or service version set was not found.", body = ErrorBody),
        (status = 412, description = "simtest: `If-Match` names no current version of the unit test.", body = ErrorBody),
        (status = 413, description = "The request body is larger than {MAX_BODY}.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request body failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn update_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response> {
    user.require(Permission::Modify)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let if_match = condition(&headers, header::IF_MATCH, &mut p);
    let patch = body.value().and_then(|v| UnitTestPatch::parse(&v));
    let (id, patch) = id_with(id, p, patch)?;
    let updated = state
        .unit_tests
        .update(&user, id, patch, if_match.as_ref())
        .await?;
    Ok((StatusCode::NO_CONTENT, [(header::ETAG, updated.etag())]).into_response())
}

/// Delete a simulation unit test
///
/// Soft-delete a simulation unit test: it stays readable through the list operation and its name
/// becomes free. Fails while a simulation unit test set lists it.
///
/// #### Permissions
/// * `Simulation:DeleteSimulationUnitTest`
#[utoipa::path(
    delete,
    path = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/",
    operation_id = "delete-simulation-unit-test",
    tag = "Simulation",
    params(
        OrganizationPath,
        ("simulation_unit_test_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test to delete."),
        IfMatchHeader,
        CommonHeaders,
    ),
    responses(
        (status = 204, description = "Succeeded."),
        (status = 400, description = "The specified simulation unit test is used in a simulation unit test set.", body = ErrorBody),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization or simulation unit test was not found or is inactive.", body = ErrorBody),
        (status = 412, description = "simtest: `If-Match` names no current version of the unit test.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn delete_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
    headers: HeaderMap,
) -> Result<StatusCode> {
    user.require(Permission::Delete)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let if_match = condition(&headers, header::IF_MATCH, &mut p);
    let Some(id) = id.filter(|_| p.is_empty()) else {
        return Err(Error::Invalid(p.into_vec()));
    };
    state
        .unit_tests
        .delete(&user, id, if_match.as_ref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Clone a simulation unit test (simtest, not in Amigo's API)
///
/// Create a new simulation unit test with the content of the given one (deleted or not: a way
/// back from a delete) under a new name. Its references are checked again as a create's are; its
/// creator is the caller.
///
/// #### Permissions
/// * `Simulation:CreateSimulationUnitTest`
#[utoipa::path(
    post,
    path = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/clone",
    operation_id = "clone-simulation-unit-test",
    tag = "Beyond Amigo",
    params(
        OrganizationPath,
        ("simulation_unit_test_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test to copy."),
        IdempotencyKeyHeader,
        CommonHeaders,
    ),
    request_body = CloneSimulationUnitTestRequest,
    responses(
        (status = 201, description = "Succeeded.", body = CreateSimulationUnitTestResponse,
            headers(("ETag" = String, description = "The strong entity tag of the new unit test."))),
        (status = 400, description = "The metric type of a success criterion does not match the metric type of its metric.", body = ErrorBody),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization, simulation unit test, or one of its references was not found.", body = ErrorBody),
        (status = 409, description = "A unit test with this name already exists.", body = ErrorBody),
        (status = 413, description = "The request body is larger than {MAX_BODY}.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request body failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn clone_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
    body: JsonBody,
) -> Result<Response> {
    user.require(Permission::Create)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let request = body.value().and_then(|v| CloneRequest::parse(&v));
    let (id, request) = id_with(id, p, request)?;
    let created = state
        .unit_tests
        .clone_unit_test(&user, id, request.name)
        .await?;
    Ok((
        StatusCode::CREATED,
        [(header::ETAG, created.etag())],
        Json(json!({ "simulation_unit_test_id": created.id })),
    )
        .into_response())
}

/// Get a simulation unit test's history (simtest, not in Amigo's API)
///
/// The recorded versions of a unit test (deleted or not), newest first: who made each, when, and
/// which fields it changed with their values before and after. Every create, update and delete
/// records one; versions written before simtest kept history are not there.
///
/// #### Permissions
/// * `Simulation:GetSimulationUnitTest`
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/history/",
    operation_id = "get-simulation-unit-test-history",
    tag = "Beyond Amigo",
    params(
        OrganizationPath,
        ("simulation_unit_test_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test."),
        HistoryParams,
        CommonHeaders,
    ),
    responses(
        (status = 200, description = "Succeeded.", body = UnitTestHistoryResponse),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization or simulation unit test was not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request query parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn unit_test_history(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    user.require(Permission::Get)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let asked = parse_history_request(&QueryParams::parse(raw.as_deref()));
    let (id, (limit, start)) = id_with(id, p, asked)?;
    let page = state.unit_tests.history(&user, id, limit, start).await?;
    Ok(Json(page).into_response())
}

/// Delete a simulation unit test for good (simtest, not in Amigo's API)
///
/// Removes a unit test that is already deleted, with its history, when no simulation unit test
/// set lists it (deleted sets included). Irreversible; logged with who did it.
///
/// #### Permissions
/// * `Simulation:HardDeleteSimulationUnitTest` (the `admin` role has it)
#[utoipa::path(
    delete,
    path = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/permanently",
    operation_id = "delete-simulation-unit-test-permanently",
    tag = "Beyond Amigo",
    params(
        OrganizationPath,
        ("simulation_unit_test_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the deleted simulation unit test to remove."),
        CommonHeaders,
    ),
    responses(
        (status = 204, description = "Succeeded."),
        (status = 400, description = "The unit test is not deleted, or a simulation unit test set lists it.", body = ErrorBody),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization or simulation unit test was not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn delete_unit_test_permanently(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
) -> Result<StatusCode> {
    user.require(Permission::HardDelete)?;
    let mut p = Problems::default();
    let id = id
        .parse(&mut p)
        .ok_or_else(|| Error::Invalid(p.into_vec()))?;
    state.unit_tests.delete_permanently(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An `If-Match` / `If-None-Match` header, when sent; a malformed one is a problem (422).
fn condition(headers: &HeaderMap, name: HeaderName, p: &mut Problems) -> Option<Condition> {
    let raw = headers.get(&name)?;
    let parsed = raw.to_str().ok().and_then(Condition::parse);
    if parsed.is_none() {
        p.push(
            &Loc::root("header").key(name.as_str()),
            "etag_list",
            "Give `*` or a comma-separated list of quoted entity tags",
        );
    }
    parsed
}

/// Get a simulation unit test (simtest, not in Amigo's API)
///
/// Read one simulation unit test, deleted or not, in the list item's shape, with its strong
/// `ETag`. `If-None-Match` naming the current version answers 304 without a body. The `ETag` goes
/// back in `If-Match` on update or delete to refuse a change made on a stale copy (412).
///
/// #### Permissions
/// * `Simulation:GetSimulationUnitTest`
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/",
    operation_id = "get-simulation-unit-test",
    tag = "Beyond Amigo",
    params(
        OrganizationPath,
        ("simulation_unit_test_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test to read."),
        IfNoneMatchHeader,
        CommonHeaders,
    ),
    responses(
        (status = 200, description = "Succeeded.", body = SimulationUnitTestInstance,
            headers(("ETag" = String, description = "The strong entity tag of this version."))),
        (status = 304, description = "The version `If-None-Match` names is the current one.",
            headers(("ETag" = String, description = "The strong entity tag of this version."))),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization or simulation unit test was not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or header.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn get_unit_test(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestIdParam,
    headers: HeaderMap,
) -> Result<Response> {
    user.require(Permission::Get)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let if_none_match = condition(&headers, header::IF_NONE_MATCH, &mut p);
    let Some(id) = id.filter(|_| p.is_empty()) else {
        return Err(Error::Invalid(p.into_vec()));
    };
    let unit_test = state.unit_tests.get(&user, id).await?;
    let etag = unit_test.etag();
    if if_none_match.is_some_and(|c| c.matches_weakly(&etag)) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let body = state.renderings.render(&unit_test, IdKey::Id)?;
    Ok((
        [
            (header::ETAG, etag),
            (header::CONTENT_TYPE, "application/json".to_owned()),
        ],
        body.json().get().to_owned(),
    )
        .into_response())
}
