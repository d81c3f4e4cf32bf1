//! `GET …/unit_test/export` and `POST …/unit_test/import`: unit tests in bulk (simtest's own
//! operations, beyond Amigo's API). The rules are `service::bulk`'s.

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{RawQuery, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;

use super::openapi::lifecycle_schemas::{
    IdempotencyKeyHeader, ImportArray, ImportParams, ImportReportSchema,
};
use super::openapi::schemas::{
    CommonFilters, CommonHeaders, ErrorBody, OrganizationPath, ValidationErrorBody,
};
use super::{idempotency, pipeline, with_trailing_slash};
use crate::AppState;
use crate::auth::{CurrentUser, Permission};
use crate::domain::IdKey;
use crate::domain::query_string::{QueryParams, parse_import_options};
use crate::error::{Error, Result};
use crate::ratelimit::Limited;
use crate::service::bulk::{ImportOptions, rows_of};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = |action| from_fn_with_state((state.clone(), action), pipeline::rate_limit);
    let idempotent = from_fn_with_state(state.clone(), idempotency::idempotent);
    let mut router = Router::new();
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test/export") {
        router = router.route(
            &path,
            get(export_unit_tests.layer(limited(Limited::ExportUnitTests))),
        );
    }
    for path in with_trailing_slash("/v1/{organization}/simulation/unit_test/import") {
        router = router.route(
            &path,
            post(
                import_unit_tests
                    .layer(idempotent.clone())
                    .layer(limited(Limited::ImportUnitTests)),
            ),
        );
    }
    router.route_layer(from_fn_with_state(state.clone(), pipeline::authenticate))
}

/// Export simulation unit tests (simtest, not in Amigo's API)
///
/// Every unit test the list filters select (deleted ones too unless `is_deleted=false`), in id
/// order, as NDJSON: one list item per line. Streamed a page at a time: memory stays flat however
/// many there are. The file imports into another organization with `import`.
///
/// #### Permissions
/// * `Simulation:GetSimulationUnitTest`
#[utoipa::path(
    get,
    path = "/v1/{organization}/simulation/unit_test/export",
    operation_id = "export-simulation-unit-tests",
    tag = "Beyond Amigo",
    params(OrganizationPath, ExportParams, CommonFilters, CommonHeaders),
    responses(
        (status = 200, description = "Succeeded: NDJSON, one unit test (the list item's shape) per line.",
            content_type = "application/x-ndjson", body = String),
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
async fn export_unit_tests(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
) -> Result<Response> {
    user.require(Permission::Get)?;
    let pages = state
        .unit_tests
        .export(user, &QueryParams::parse(raw.as_deref()))?;
    let renderings = state.renderings.clone();
    let lines = pages.map(move |page| {
        let mut chunk = Vec::new();
        for doc in page? {
            chunk.extend_from_slice(renderings.render(&doc, IdKey::Id)?.json().get().as_bytes());
            chunk.push(b'\n');
        }
        Ok::<_, Error>(Bytes::from(chunk))
    });
    let lines = lines.map(|chunk| {
        // A failure after the first line can only cut the answer short: it is logged, and the
        // client sees a body that ends without its last line.
        chunk.map_err(|e| {
            tracing::error!(error = %e, "export cut short");
            std::io::Error::other(e.to_string())
        })
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// Import simulation unit tests (simtest, not in Amigo's API)
///
/// Creates unit tests from NDJSON (one per line; `Content-Type: application/x-ndjson`) or a JSON
/// array (`application/json`), each row validated exactly as create validates it. Rows as
/// `export` writes them are accepted: the fields the store manages (`id`, `org_id`, `creator`,
/// times, `is_deleted`) are left out, `run_count` kept, tags read in either form. The answer lists
/// every row's outcome; `dry_run=true` only validates, `atomic=true` writes every row or none.
///
/// #### Permissions
/// * `Simulation:CreateSimulationUnitTest`
#[utoipa::path(
    post,
    path = "/v1/{organization}/simulation/unit_test/import",
    operation_id = "import-simulation-unit-tests",
    tag = "Beyond Amigo",
    params(
        OrganizationPath,
        ImportParams,
        IdempotencyKeyHeader,
        CommonHeaders,
    ),
    request_body(
        content(
            (serde_json::Value = "application/x-ndjson"),
            (ImportArray = "application/json"),
        ),
        description = "One unit test per line (NDJSON: bytes, not one JSON value), or a JSON array; each row is judged on its own and answered in `results`."),
    responses(
        (status = 200, description = "Every row's outcome (rows may have failed: see `failed`).", body = ImportReportSchema),
        (status = 401, description = "Invalid authorization credentials.", body = ErrorBody),
        (status = 403, description = "Missing required permissions.", body = ErrorBody),
        (status = 404, description = "Specified organization is not found.", body = ErrorBody),
        (status = 413, description = "The body is larger than the import limit.", body = ErrorBody),
        (status = 422, description = "The body is not NDJSON or a JSON array, or a query parameter failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The user has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    )
)]
async fn import_unit_tests(
    State(state): State<AppState>,
    user: CurrentUser,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    user.require(Permission::Create)?;
    let (dry_run, atomic) = parse_import_options(&QueryParams::parse(raw.as_deref()))?;
    let bytes = to_bytes(body, state.import_max_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge)?;
    let json_array = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let rows = rows_of(&bytes, json_array)?;
    let report = state
        .unit_tests
        .import(&user, rows, ImportOptions { dry_run, atomic })
        .await?;
    Ok((StatusCode::OK, Json(report)).into_response())
}

/// The export's own query parameters (none beyond the list's filters and `is_deleted`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct ExportParams {
    /// The IDs of the simulation unit tests to export.
    #[param(max_items = 100)]
    id: Option<std::collections::BTreeSet<super::openapi::schemas::ObjectId>>,
    /// Whether the simulation unit test is deleted; absent means both.
    is_deleted: Option<bool>,
}
