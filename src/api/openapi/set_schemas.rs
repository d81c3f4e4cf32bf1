//! The unit test set operations' parameters, bodies and answers, as the OpenAPI document
//! declares them (Amigo's set extract, `reference/amigo-unit-test-set-openapi.json`).

// Schema-only: the derives read the fields, nothing constructs the values.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::schemas::{
    CreatorFilter, Description, ObjectId, StrippedNonemptyString, Tag, TagFilter, UserInfo,
    nullable_tags_request_schema, tags_request_schema,
};

/// Filters that set list and set search share.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SetFilters {
    /// The IDs of the unit tests that are part of the simulation unit test sets.
    #[param(max_items = 100)]
    unit_test_id: Option<BTreeSet<ObjectId>>,
    /// The creators of the simulation unit test sets. Each value must be of the format
    /// `org_id,user_id`.
    #[param(max_items = 100)]
    creator: Option<BTreeSet<CreatorFilter>>,
    /// The tags of the simulation unit test sets, as `key:value`, `key:*` (any value) or `key:`
    /// (no value). Tags sharing a key are OR-ed, different keys AND-ed.
    #[param(max_items = 100)]
    tag: Option<Vec<TagFilter>>,
}

/// Query parameters of the set list operation beyond the shared filters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SetListParams {
    /// The IDs of the simulation unit test sets to retrieve.
    #[param(max_items = 100)]
    id: Option<BTreeSet<ObjectId>>,
    /// The maximum number of simulation unit test sets to return.
    #[param(minimum = 0, maximum = 20, default = 20)]
    limit: Option<u32>,
    /// The continuation token from the previous request (the offset of the next page).
    #[param(minimum = 0, default = 0)]
    continuation_token: Option<u64>,
    /// Whether the simulation unit test set is deleted; absent means both.
    is_deleted: Option<bool>,
    /// `updated_at`, prefixed by `+` (ascending, the default) or `-` (descending); `_id` breaks
    /// ties and is the default order.
    #[param(max_items = 100, pattern = "^[+-]?updated_at$")]
    sort_by: Option<Vec<String>>,
}

/// One entry of a set's `unit_test_runs` in a request.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitTestRunInput {
    unit_test_id: ObjectId,
    /// The number of times to run the unit test.
    #[schema(exclusive_minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    run_count: i64,
}

/// One entry of a set's `unit_test_runs` in an answer.
#[derive(Serialize, ToSchema)]
pub struct UnitTestRunOutput {
    unit_test_id: String,
    run_count: i64,
}

/// Body of `create-simulation-unit-test-set`. Every unit test listed must be an active unit test
/// of the organization; the name must be free among its active sets.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSimulationUnitTestSetRequest {
    /// The name of the simulation unit test set.
    name: StrippedNonemptyString,
    /// The description of the simulation unit test set.
    #[schema(required = true)]
    description: Option<Description>,
    /// The unit test runs that are part of this set.
    #[schema(min_items = 1, max_items = 1000)]
    unit_test_runs: Vec<UnitTestRunInput>,
    #[schema(schema_with = tags_request_schema)]
    tags: BTreeMap<String, Option<String>>,
}

/// Body of `update-simulation-unit-test-set`: absent fields stay as they are; `description:
/// null` clears it (`{}` leaves it); `unit_test_runs` and `tags` are replaced whole.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSimulationUnitTestSetRequest {
    /// The name of the simulation unit test set, unique among the organization's active sets.
    name: Option<StrippedNonemptyString>,
    /// The description of the simulation unit test set.
    description: Option<Description>,
    /// The unit test runs that are part of this set.
    #[schema(min_items = 1, max_items = 1000)]
    unit_test_runs: Option<Vec<UnitTestRunInput>>,
    #[schema(schema_with = nullable_tags_request_schema)]
    tags: Option<BTreeMap<String, Option<String>>>,
}

/// Answer of `create-simulation-unit-test-set`.
#[derive(Serialize, ToSchema)]
pub struct CreateSimulationUnitTestSetResponse {
    /// The ID of the simulation unit test set that was created.
    #[schema(pattern = "^[a-f0-9]{24}$")]
    simulation_unit_test_set_id: String,
}

/// Declares the stored set, once per id key: list items carry `id`, search items `_id`.
macro_rules! set_schema {
    ($(#[$doc:meta])* $name:ident, $id:ident) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            /// The ID of the document.
            $id: String,
            org_id: String,
            // Always written; optional in the original's document, so here too.
            #[schema(required = false, format = DateTime)]
            created_at: String,
            #[schema(required = false, format = DateTime)]
            updated_at: String,
            name: String,
            #[schema(required = true)]
            description: Option<String>,
            unit_test_runs: Vec<UnitTestRunOutput>,
            #[schema(required = true)]
            last_triggered_run_id: Option<String>,
            is_deleted: bool,
            tags: Vec<Tag>,
            creator: UserInfo,
            updated_by: UserInfo,
        }
    };
}

set_schema!(
    /// A simulation unit test set as the list operation returns it.
    SimulationUnitTestSetInstance,
    id
);
set_schema!(
    /// A simulation unit test set as the search operation returns it.
    SimulationUnitTestSet,
    _id
);

/// The values each dynamic filter takes over every set the filters select (first page only).
#[derive(Serialize, ToSchema)]
pub struct SetFilterValues {
    creators: Vec<UserInfo>,
    unit_test_ids: Vec<String>,
    tags: Vec<String>,
}

/// Answer of `get-simulation-unit-test-sets`.
#[derive(Serialize, ToSchema)]
pub struct GetSimulationUnitTestSetsResponse {
    simulation_unit_test_sets: Vec<SimulationUnitTestSetInstance>,
    has_more: bool,
    #[schema(required = true)]
    continuation_token: Option<u64>,
    #[schema(required = true)]
    filter_values: Option<SetFilterValues>,
}

/// Answer of `search-simulation-unit-test-sets`.
#[derive(Serialize, ToSchema)]
pub struct SearchSimulationUnitTestSetsResponse {
    simulation_unit_test_sets: Vec<SimulationUnitTestSet>,
}
