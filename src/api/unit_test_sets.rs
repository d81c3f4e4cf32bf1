//! `/v1/{organization}/simulation/unit_test_set/…`: create, list, search, update, delete.

use axum::extract::{RawQuery, State};
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Value, json};

use super::extract::{JsonBody, UnitTestSetIdParam, id_with};
use super::openapi::lifecycle_schemas::IdempotencyKeyHeader;
use super::openapi::schemas::SearchParams;
use super::openapi::schemas::{CommonHeaders, ErrorBody, OrganizationPath, ValidationErrorBody};
use super::openapi::set_schemas::{
    CreateSimulationUnitTestSetRequest, CreateSimulationUnitTestSetResponse,
    GetSimulationUnitTestSetsResponse, SearchSimulationUnitTestSetsResponse, SetFilters,
    SetListParams, UpdateSimulationUnitTestSetRequest,
};
use super::{idempotency, pipeline, with_trailing_slash};
use crate::AppState;
use crate::auth::{CurrentUser, Permission};
use crate::domain::problems::Problems;
use crate::domain::query_string::QueryParams;
use crate::domain::unit_test_set::{
    NewUnitTestSet, SetFilterValues, UnitTestSet, UnitTestSetPatch,
};
use crate::error::{Error, Result};
use crate::ratelimit::Limited;

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |action| from_fn_with_state((state.clone(), action), pipeline::rate_limit);
    let idempotent = from_fn_with_state(state.clone(), idempotency::idempotent);
    let mut router = Router::new();
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test_set") {
        router = router.route(
            &path,
            post(
                create_unit_test_set
                    .layer(idempotent.clone())
                    .layer(limited(Limited::CreateUnitTestSet)),
            )
            .get(list_unit_test_sets.layer(limited(Limited::ListUnitTestSets))),
        );
    }
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test_set/search") {
        router = router.route(
            &path,
            get(search_unit_test_sets.layer(limited(Limited::SearchUnitTestSets))),
        );
    }
    // The original serves update and delete without the trailing slash; both are accepted.
    for path in with_trailing_slash(
        "/v1/{organization}/simulation/unit_test_set/{simulation_unit_test_set_id}",
    ) {
        router = router.route(
            &path,
            post(update_unit_test_set.layer(limited(Limited::UpdateUnitTestSet)))
                .delete(delete_unit_test_set.layer(limited(Limited::DeleteUnitTestSet))),
        );
    }
    router.route_layer(from_fn_with_state(state.clone(), pipeline::authenticate))
}

/// A set as JSON, its id under `id` (list) or `_id` (search).
fn render(set: &UnitTestSet, id_key: &str) -> Result<Value> {
    let value = serde_json::to_value(set)
        .map_err(|e| Error::Internal(format!("cannot render a unit test set: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Error::Internal(
            "a unit test set is not a JSON object".into(),
        ));
    };
    // The id first, under its key, then the fields in the order the type declares them.
    let mut ordered = serde_json::Map::with_capacity(fields.len());
    for (key, value) in fields {
        ordered.insert(if key == "id" { id_key.to_owned() } else { key }, value);
    }
    Ok(Value::Object(ordered))
}

/// Create a simulation unit test set
///
/// Create a new simulation unit test set. Every unit test it lists must be an active unit test of
/// the organization (checked atomically with the write: a unit test deleted meanwhile is never
/// listed); the name must be free among the organization's active sets.
///
/// #### Permissions
/// * `Simulation:CreateSimulationUnitTestSet`
#[utoipa::path(
    post,
    path = "/v1/{organization}/simulation/unit_test_set/",
    operation_id = "create-simulation-unit-test-set",
    tag = "Simulation",
    params(
        OrganizationPath,
        IdempotencyKeyHeader,
        CommonHeaders,
    ),
    request_body = CreateSimulationUnitTestSetRequest,
    responses(
        (status = 201, description = "Succeeded.", body = CreateSimulationUnitTestSetResponse),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization or unit test was not found.", body = ErrorBody),
        (status = 409, description = "A simulation unit test set with the same name already exists.", body = ErrorBody),
        (status = 413, description = "The request body is larger than {MAX_BODY}.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request body failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn create_unit_test_set(
    State(state): State<AppState>,
    user: CurrentUser,
    body: JsonBody,
) -> Result<Response> {
    user.require(Permission::CreateSet)?;
    let new = NewUnitTestSet::parse(&body.value()?)?;
    let id = state.unit_test_sets.create(&user, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "simulation_unit_test_set_id": id })),
    )
        .into_response())
}

#[derive(Serialize)]
struct ListResponse<'a> {
    simulation_unit_test_sets: Vec<Value>,
    has_more: bool,
    continuation_token: Option<u64>,
    filter_values: Option<&'a SetFilterValues>,
}

/// Get simulation unit test sets
///
/// Retrieve the simulation unit test sets that match the given filters, by `updated_at` if asked
/// (ties and the default order: `_id` ascending), one page at a time.
///
/// #### Permissions
/// * Without `Simulation:GetSimulationUnitTestSet` the answer is an empty page, not 403.
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test_set/",
    operation_id = "get-simulation-unit-test-sets",
    tag = "Simulation",
    params(OrganizationPath, SetListParams, SetFilters, CommonHeaders),
    responses(
        (status = 200, description = "Succeeded.", body = GetSimulationUnitTestSetsResponse),
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
async fn list_unit_test_sets(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let listed = state
        .unit_test_sets
        .list(&user, &QueryParams::parse(raw.as_deref()))
        .await?;
    let page = &listed.page;
    let items = (page.items.iter())
        .map(|s| render(s, "id"))
        .collect::<Result<Vec<_>>>()?;
    let next_offset = listed.offset + page.items.len() as u64;
    Ok(Json(ListResponse {
        simulation_unit_test_sets: items,
        has_more: page.has_more,
        continuation_token: page.has_more.then_some(next_offset),
        filter_values: page.filter_values.as_ref(),
    })
    .into_response())
}

/// Search simulation unit test sets
///
/// Search for active simulation unit test sets that match the given filters and whose name or
/// description contains every term of the query; most recently updated first, at most {SEARCH_LIMIT}.
///
/// #### Permissions
/// * Without `Simulation:GetSimulationUnitTestSet` the answer is an empty list, not 403.
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test_set/search/",
    operation_id = "search-simulation-unit-test-sets",
    tag = "Simulation",
    params(OrganizationPath, SearchParams, SetFilters, CommonHeaders),
    responses(
        (status = 200, description = "Succeeded.", body = SearchSimulationUnitTestSetsResponse),
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
async fn search_unit_test_sets(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    let page = state
        .unit_test_sets
        .search(&user, &QueryParams::parse(raw.as_deref()))
        .await?;
    let items = (page.items.iter())
        .map(|s| render(s, "_id"))
        .collect::<Result<Vec<_>>>()?;
    Ok(Json(json!({ "simulation_unit_test_sets": items })).into_response())
}

/// Update a simulation unit test set
///
/// Modify the specified simulation unit test set. Absent fields stay as they are; `description:
/// null` clears it; `unit_test_runs` and `tags` are replaced whole. A new name must be free among
/// the organization's active sets; every unit test listed must be active.
///
/// #### Permissions
/// * `Simulation:ModifySimulationUnitTestSet`
#[utoipa::path(
    post,
    path = "/v1/{organization}/simulation/unit_test_set/{simulation_unit_test_set_id}",
    operation_id = "update-simulation-unit-test-set",
    tag = "Simulation",
    params(
        OrganizationPath,
        ("simulation_unit_test_set_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test set to update."),
        CommonHeaders,
    ),
    request_body = UpdateSimulationUnitTestSetRequest,
    responses(
        (status = 204, description = "Succeeded."),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization, simulation unit test set or unit test was not found.", body = ErrorBody),
        (status = 409, description = "A simulation unit test set with this name already exists.", body = ErrorBody),
        (status = 413, description = "The request body is larger than {MAX_BODY}.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or request body failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn update_unit_test_set(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestSetIdParam,
    body: JsonBody,
) -> Result<StatusCode> {
    user.require(Permission::ModifySet)?;
    let mut p = Problems::default();
    let id = id.parse(&mut p);
    let patch = body.value().and_then(|v| UnitTestSetPatch::parse(&v));
    let (id, patch) = id_with(id, p, patch)?;
    state.unit_test_sets.update(&user, id, patch).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete a simulation unit test set
///
/// Soft-delete a simulation unit test set: it stays readable through the list operation, and its
/// name and its unit tests are free again.
///
/// #### Permissions
/// * `Simulation:DeleteSimulationUnitTestSet`
#[utoipa::path(
    delete,
    path = "/v1/{organization}/simulation/unit_test_set/{simulation_unit_test_set_id}",
    operation_id = "delete-simulation-unit-test-set",
    tag = "Simulation",
    params(
        OrganizationPath,
        ("simulation_unit_test_set_id" = String, Path, pattern = "^[a-f0-9]{24}$",
            description = "The ID of the simulation unit test set to delete."),
        CommonHeaders,
    ),
    responses(
        (status = 204, description = "Succeeded."),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "The specified organization or simulation unit test set was not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn delete_unit_test_set(
    State(state): State<AppState>,
    user: CurrentUser,
    id: UnitTestSetIdParam,
) -> Result<StatusCode> {
    user.require(Permission::DeleteSet)?;
    let mut p = Problems::default();
    let id = id
        .parse(&mut p)
        .ok_or_else(|| Error::Invalid(p.into_vec()))?;
    state.unit_test_sets.delete(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
