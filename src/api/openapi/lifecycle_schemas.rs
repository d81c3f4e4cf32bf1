//! Schemas of simtest's own operations (beyond Amigo's API): a unit test's history.

// Schema-only: the derives read the fields, nothing constructs the values.
#![allow(dead_code)]

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::schemas::UserInfo;

/// Query parameters of the history operation.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// The maximum number of versions to return.
    #[param(minimum = 0, maximum = 100, default = 20)]
    limit: Option<u32>,
    /// Where the page starts: the `continuation_token` of the previous page.
    #[param(minimum = 0)]
    continuation_token: Option<u64>,
}

/// One field a write changed.
#[derive(Serialize, ToSchema)]
pub struct FieldChange {
    field: String,
    /// The value before (`null` on creation).
    before: serde_json::Value,
    after: serde_json::Value,
}

/// One recorded version of a unit test.
#[derive(Serialize, ToSchema)]
pub struct UnitTestVersion {
    /// The version: `updated_at` in milliseconds since the epoch.
    version: u64,
    /// The strong entity tag of this version (as `ETag` answers give it).
    etag: String,
    #[schema(format = DateTime)]
    updated_at: String,
    updated_by: UserInfo,
    /// `create`, `update` or `delete`.
    #[schema(pattern = "^(create|update|delete)$")]
    action: String,
    /// The fields the write changed, before and after; `null` for the oldest version kept when
    /// it is not the creation (no earlier version to compare with).
    #[schema(required = true)]
    changes: Option<Vec<FieldChange>>,
}

/// Answer of `get-simulation-unit-test-history`.
#[derive(Serialize, ToSchema)]
pub struct UnitTestHistoryResponse {
    /// Newest first.
    versions: Vec<UnitTestVersion>,
    has_more: bool,
    #[schema(required = true)]
    continuation_token: Option<u64>,
}

/// Query parameters of the import operation.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Validate every row, write nothing.
    dry_run: Option<bool>,
    /// Write every row or none (when one fails, the others say `not_written`, 424).
    atomic: Option<bool>,
}

/// One row's outcome.
#[derive(Serialize, ToSchema)]
pub struct ImportRowResult {
    /// 1-based line (NDJSON) or element (JSON array).
    row: u64,
    /// As create would answer: 201 created, 200 valid (dry run), 4xx refused, 424 not written
    /// (atomic import with a failed row).
    status: u16,
    #[schema(pattern = "^[a-f0-9]{24}$")]
    id: Option<String>,
    error_code: Option<String>,
    /// The error's detail (for 422, every problem of the row).
    problems: Option<serde_json::Value>,
}

/// Answer of `import-simulation-unit-tests`.
#[derive(Serialize, ToSchema)]
pub struct ImportReportSchema {
    dry_run: bool,
    atomic: bool,
    created: u64,
    failed: u64,
    results: Vec<ImportRowResult>,
}

/// `If-Match` on update and delete.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// simtest: entity tags (or `*`); unless one names the current version, 412 and nothing
    /// changes.
    #[param(
        rename = "If-Match",
        required = false,
        pattern = r#"^(\*|(W/)?"[\x21\x23-\x2B\x2D-\x7E]*"( *, *(W/)?"[\x21\x23-\x2B\x2D-\x7E]*")*)$"#
    )]
    if_match: String,
}

/// `If-None-Match` on the read of one unit test.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfNoneMatchHeader {
    /// Entity tags (or `*`): when one names the current version, 304.
    #[param(
        rename = "If-None-Match",
        required = false,
        pattern = r#"^(\*|(W/)?"[\x21\x23-\x2B\x2D-\x7E]*"( *, *(W/)?"[\x21\x23-\x2B\x2D-\x7E]*")*)$"#
    )]
    if_none_match: String,
}

/// `Idempotency-Key` on the operations that create.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IdempotencyKeyHeader {
    /// simtest: 1-255 visible ASCII characters. The first answer to a request with this key is
    /// kept for 24 hours (per org and caller) and sent again to a retry (header
    /// `Idempotent-Replayed: true`); the key with a different request is 422, a retry while the
    /// first runs is 409.
    #[param(
        rename = "Idempotency-Key",
        required = false,
        max_length = 255,
        pattern = "^[!-~]{1,255}$"
    )]
    idempotency_key: String,
}

/// An import body as a JSON array: one unit test per element, at least one.
pub struct ImportArray;

impl utoipa::PartialSchema for ImportArray {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ArrayBuilder::new()
            // Any value: each row is judged on its own and answered in `results`.
            .items(
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::AnyValue),
            )
            .min_items(Some(1))
            .into()
    }
}

impl ToSchema for ImportArray {}
