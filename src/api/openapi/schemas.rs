//! The wire format as OpenAPI schemas: types that exist only to be described, never built.
//!
//! Requests are parsed by hand (`domain::requests`) and responses written by hand
//! (`domain::UnitTestJson`), so these mirrors are the one place the shapes are spelled out for the
//! document. `tests/api/openapi.rs` holds them against the public extract and against what the
//! server really writes.
// Schema-only: the derives read the fields, nothing constructs the values.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::{IntoParams, ToSchema};

use crate::domain::limits;

/// "Contains a character that is not white space": what survives the server's trimming. Spelled
/// out (Unicode `White_Space`, which `str::trim` uses) because `\S` means different things to
/// different regex dialects. The derives below repeat it as a literal; a test holds them equal.
pub const NON_BLANK: &str =
    r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";

/// A document id: 24 lowercase hex digits.
#[derive(Serialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[schema(pattern = "^[a-f0-9]{24}$")]
pub struct ObjectId(String);

/// A string that is trimmed on input and must not be empty afterwards; at most
/// {SHORT_STRING_CHARS} characters, no NUL.
#[derive(Serialize, ToSchema)]
#[schema(
    min_length = 1,
    max_length = 1000,
    pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)]
pub struct StrippedNonemptyString(String);

/// A search query: at most {SEARCH_QUERY_CHARS} characters, not only white space, and no control
/// characters other than white space (NUL, escape, DEL, C1 controls are refused with 422).
#[derive(Serialize, ToSchema)]
#[schema(
    min_length = 1,
    max_length = 1000,
    pattern = r"^[^\u0000-\u0008\u000e-\u001f\u007f-\u0084\u0086-\u009f]*[^\u0000-\u0008\u000e-\u001f\u007f-\u0084\u0086-\u009f\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u0008\u000e-\u001f\u007f-\u0084\u0086-\u009f]*$"
)]
pub struct SearchQueryString(String);

/// A unit test description: trimmed on input, not empty afterwards; at most {DESCRIPTION_CHARS}
/// characters, no NUL.
#[derive(Serialize, ToSchema)]
#[schema(
    min_length = 1,
    max_length = 20000,
    pattern = r"[^\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
)]
pub struct Description(String);

/// A `creator` filter value: `org_id,user_id`.
#[derive(Serialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
#[schema(pattern = r"^[^,]+,[\s\S]+$")]
pub struct CreatorFilter(String);

/// A `tag` filter value: `key:value`, `key:*` or `key:`.
#[derive(Serialize, ToSchema)]
#[schema(pattern = r"^[^:]+:")]
pub struct TagFilter(String);

/// A sort key: a field, optionally prefixed by `+` (ascending, the default) or `-` (descending).
#[derive(Serialize, ToSchema)]
pub enum SortKey {
    #[serde(rename = "updated_at")]
    UpdatedAt,
    #[serde(rename = "+updated_at")]
    UpdatedAtAscending,
    #[serde(rename = "-updated_at")]
    UpdatedAtDescending,
    #[serde(rename = "created_at")]
    CreatedAt,
    #[serde(rename = "+created_at")]
    CreatedAtAscending,
    #[serde(rename = "-created_at")]
    CreatedAtDescending,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "+name")]
    NameAscending,
    #[serde(rename = "-name")]
    NameDescending,
}

/// Tags as sent: key (not blank) to value or `null`; at most `TAGS`, each key and value at most
/// `SHORT_STRING_CHARS` characters.
fn tags_schema(nullable: bool) -> Object {
    let kind = if nullable {
        SchemaType::from_iter([Type::Object, Type::Null])
    } else {
        SchemaType::new(Type::Object)
    };
    ObjectBuilder::new()
        .schema_type(kind)
        .description(Some(
            "The tags of the unit test: key to value, or to `null` for a key without a value; at most \
            {TAGS} tags.",
        ))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(limits::SHORT_STRING_CHARS))
                .pattern(Some(NON_BLANK)),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                .max_length(Some(limits::SHORT_STRING_CHARS)),
        ))
        .max_properties(Some(limits::TAGS))
        .build()
}

pub(super) fn tags_request_schema() -> Object {
    tags_schema(false)
}

pub(super) fn nullable_tags_request_schema() -> Object {
    tags_schema(true)
}

// ---------------------------------------------------------------------------------------------
// Parameters

/// The organization in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct OrganizationPath {
    /// The organization the request acts in.
    organization: String,
}

/// Headers every operation accepts.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct CommonHeaders {
    /// The Mongo cluster name to perform this request in. This is usually not needed unless the
    /// organization does not exist yet in the default cluster's organization records; an unknown
    /// name is refused with 422.
    #[param(rename = "x-mongo-cluster-name", required = false)]
    x_mongo_cluster_name: String,
    /// Accepted for compatibility with the original API and ignored.
    #[param(rename = "Sec-WebSocket-Protocol", required = false)]
    sec_websocket_protocol: Vec<String>,
}

/// Filters that list and search share.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CommonFilters {
    /// The IDs of the services that the simulation unit tests run on.
    #[param(max_items = 100)]
    service_id: Option<BTreeSet<ObjectId>>,
    /// The IDs of the personas that the simulation unit tests use.
    #[param(max_items = 100)]
    persona_id: Option<BTreeSet<ObjectId>>,
    /// The IDs of the scenarios that the simulation unit tests use.
    #[param(max_items = 100)]
    scenario_id: Option<BTreeSet<ObjectId>>,
    /// The IDs of the metrics that the simulation unit tests use.
    #[param(max_items = 100)]
    metric_id: Option<BTreeSet<ObjectId>>,
    /// The creators of the simulation unit tests. Each value must be of the format
    /// `org_id,user_id`.
    #[param(max_items = 100)]
    creator: Option<BTreeSet<CreatorFilter>>,
    /// The tags of the simulation unit tests, as `key:value` (that key with that value), `key:*`
    /// (that key with any value) or `key:` (that key without a value). Tags sharing a key are
    /// OR-ed, different keys AND-ed.
    #[param(max_items = 100)]
    tag: Option<Vec<TagFilter>>,
}

/// Query parameters of the list operation beyond the shared filters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// The IDs of the simulation unit tests to retrieve.
    #[param(max_items = 100)]
    id: Option<BTreeSet<ObjectId>>,
    /// The maximum number of simulation unit tests to return.
    #[param(minimum = 0, maximum = 500, default = 50)]
    limit: Option<u32>,
    /// The continuation token from the previous request used to retrieve the next page of
    /// simulation unit tests (the offset of the next page).
    #[param(minimum = 0, default = 0)]
    continuation_token: Option<u64>,
    /// Whether the simulation unit test is deleted; absent means both.
    is_deleted: Option<bool>,
    /// The fields to sort by: `updated_at`, `created_at` or `name`, prefixed by `+` (ascending,
    /// the default) or `-` (descending). Later fields break ties of earlier ones; `_id` breaks
    /// the rest.
    #[param(max_items = 100)]
    sort_by: Option<Vec<SortKey>>,
}

/// The search operation's text query.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// The query to search for: split on white space (at most {SEARCH_TERMS} distinct terms), a unit test
    /// matches when every term occurs (case-insensitively) in its name or description.
    #[param(value_type = SearchQueryString)]
    query: String,
}

// ---------------------------------------------------------------------------------------------
// Request bodies

/// How a numerical metric is compared with the threshold.
#[derive(Serialize, ToSchema)]
pub enum Verb {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NumericalType {
    Numerical,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BooleanType {
    Boolean,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CategoricalType {
    Categorical,
}

/// A criterion on a numerical metric: `metric verb threshold`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumericalMetricSuccessCriterion {
    #[schema(inline)]
    r#type: NumericalType,
    verb: Verb,
    threshold: f64,
}

/// A criterion on a boolean metric.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BooleanMetricSuccessCriterion {
    #[schema(inline)]
    r#type: BooleanType,
    expected_value: bool,
}

/// A criterion on a categorical metric, as sent: at least one non-empty expected value.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoricalMetricSuccessCriterionInput {
    #[schema(inline)]
    r#type: CategoricalType,
    #[schema(min_items = 1, max_items = 100)]
    expected_values: Vec<StrippedNonemptyString>,
}

/// A criterion on a categorical metric, as stored.
#[derive(Serialize, ToSchema)]
pub struct CategoricalMetricSuccessCriterionOutput {
    #[schema(inline)]
    r#type: CategoricalType,
    expected_values: Vec<String>,
}

/// What a success criterion expects of its metric; `type` must equal the metric's value type.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("numerical" = "#/components/schemas/NumericalMetricSuccessCriterion"),
    ("boolean" = "#/components/schemas/BooleanMetricSuccessCriterion"),
    ("categorical" = "#/components/schemas/CategoricalMetricSuccessCriterionInput"),
)))]
pub enum SuccessCriterionDescriptionInput {
    Numerical(NumericalMetricSuccessCriterion),
    Boolean(BooleanMetricSuccessCriterion),
    Categorical(CategoricalMetricSuccessCriterionInput),
}

/// What a stored success criterion expects of its metric.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(discriminator(property_name = "type", mapping(
    ("boolean" = "#/components/schemas/BooleanMetricSuccessCriterion"),
    ("numerical" = "#/components/schemas/NumericalMetricSuccessCriterion"),
    ("categorical" = "#/components/schemas/CategoricalMetricSuccessCriterionOutput"),
)))]
pub enum SuccessCriterionDescriptionOutput {
    Boolean(BooleanMetricSuccessCriterion),
    Numerical(NumericalMetricSuccessCriterion),
    Categorical(CategoricalMetricSuccessCriterionOutput),
}

/// A success criterion as sent in create and update.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuccessCriterionInput {
    name: StrippedNonemptyString,
    metric_id: ObjectId,
    criterion: SuccessCriterionDescriptionInput,
}

/// A stored success criterion.
#[derive(Serialize, ToSchema)]
pub struct SuccessCriterionOutput {
    name: String,
    metric_id: String,
    criterion: SuccessCriterionDescriptionOutput,
}

/// Body of `create-simulation-unit-test`. Strings are trimmed and may not contain NUL; unknown
/// fields are refused.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSimulationUnitTestRequest {
    /// The name of the unit test, unique among the organization's active unit tests.
    name: StrippedNonemptyString,
    /// A description of the unit test.
    description: Description,
    /// The service that the unit test runs on.
    service_id: ObjectId,
    /// The version set of the service that the unit test runs on.
    service_version_set_name: StrippedNonemptyString,
    /// The persona that unit test uses.
    persona_id: ObjectId,
    /// The scenario that the unit test uses.
    scenario_id: ObjectId,
    /// The max number of interactions after which the unit test fails.
    #[schema(exclusive_minimum = 0, maximum = 100)]
    max_interactions: i64,
    /// The success criterions for the unit test.
    #[schema(min_items = 1, max_items = 100)]
    success_criterions: Vec<SuccessCriterionInput>,
    #[schema(schema_with = tags_request_schema)]
    tags: BTreeMap<String, Option<String>>,
}

/// Body of simtest's `clone-simulation-unit-test`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneSimulationUnitTestRequest {
    /// The name of the new unit test, unique among the organization's active unit tests.
    name: StrippedNonemptyString,
}

/// Body of `update-simulation-unit-test`: every field optional, absent or `null` leaves it as it
/// is; lists are replaced whole. `name` cannot change.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSimulationUnitTestRequest {
    /// A description of the unit test.
    description: Option<Description>,
    /// The service that the unit test runs on.
    service_id: Option<ObjectId>,
    /// The version set of the service that the unit test runs on.
    service_version_set_name: Option<StrippedNonemptyString>,
    /// The persona that unit test uses.
    persona_id: Option<ObjectId>,
    /// The scenario that the unit test uses.
    scenario_id: Option<ObjectId>,
    /// The max number of interactions after which the unit test fails.
    #[schema(exclusive_minimum = 0, maximum = 100)]
    max_interactions: Option<i64>,
    /// The success criterions for the unit test.
    #[schema(min_items = 1, max_items = 100)]
    success_criterions: Option<Vec<SuccessCriterionInput>>,
    /// Each time this unit test is run, the number of sessions to simulate.
    #[schema(exclusive_minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    run_count: Option<i64>,
    #[schema(schema_with = nullable_tags_request_schema)]
    tags: Option<BTreeMap<String, Option<String>>>,
}

// ---------------------------------------------------------------------------------------------
// Responses

/// Answer of `create-simulation-unit-test`.
#[derive(Serialize, ToSchema)]
pub struct CreateSimulationUnitTestResponse {
    /// The ID of the created simulation unit test.
    #[schema(pattern = "^[a-f0-9]{24}$")]
    simulation_unit_test_id: String,
}

/// Who did something.
#[derive(Serialize, ToSchema)]
pub struct UserInfo {
    org_id: String,
    user_id: String,
}

/// One tag; `value` is `null` for a key without a value.
#[derive(Serialize, ToSchema)]
pub struct Tag {
    key: String,
    #[schema(required = true)]
    value: Option<String>,
}

/// Declares the stored unit test as written by `UnitTestJson`, once per id key: list items carry
/// `id`, search items `_id`.
macro_rules! unit_test_schema {
    ($(#[$doc:meta])* $name:ident, $id:ident) => {
        $(#[$doc])*
        #[derive(Serialize, ToSchema)]
        pub struct $name {
            /// The ID of the document.
            $id: String,
            /// The ID of the organization.
            org_id: String,
            /// The name of the unit test.
            name: String,
            /// A description of the unit test.
            description: String,
            /// The service that the unit test runs on.
            service_id: String,
            /// The version set of the service that the unit test runs on.
            service_version_set_name: String,
            /// The persona that unit test uses.
            persona_id: String,
            /// The scenario that the unit test uses.
            scenario_id: String,
            /// The max number of interactions after which the unit test fails.
            max_interactions: i64,
            /// The success criterions for the unit test.
            success_criterions: Vec<SuccessCriterionOutput>,
            /// Each time this unit test is run, the number of sessions to simulate.
            #[schema(required = false, minimum = 1)]
            run_count: i64,
            /// The tags of the unit test, sorted by key.
            tags: Vec<Tag>,
            /// Whether the unit test has been deleted.
            is_deleted: bool,
            creator: UserInfo,
            updated_by: UserInfo,
            #[schema(required = false)]
            created_at: DateTime<Utc>,
            #[schema(required = false)]
            updated_at: DateTime<Utc>,
        }
    };
}

unit_test_schema!(
    /// A unit test as the list operation writes it (`id`).
    SimulationUnitTestInstance,
    id
);
unit_test_schema!(
    /// A unit test as the search operation writes it (`_id`).
    SimulationUnitTest,
    _id
);

/// The distinct values of the filterable fields over every unit test the current filters select.
#[derive(Serialize, ToSchema)]
pub struct FilterValues {
    /// The creators of the selected unit tests.
    creators: Vec<UserInfo>,
    /// The tag keys of the selected unit tests.
    tags: Vec<String>,
    /// The services the selected unit tests run on.
    service_ids: Vec<String>,
    /// The personas the selected unit tests use.
    persona_ids: Vec<String>,
    /// The scenarios the selected unit tests use.
    scenario_ids: Vec<String>,
    /// The metrics the selected unit tests' criteria use.
    metric_ids: Vec<String>,
}

/// Answer of `get-simulation-unit-tests`.
#[derive(Serialize, ToSchema)]
pub struct GetSimulationUnitTestsResponse {
    /// The retrieved simulation unit tests.
    simulation_unit_tests: Vec<SimulationUnitTestInstance>,
    /// Whether there are more simulation unit tests to retrieve.
    has_more: bool,
    /// The continuation token to use to retrieve the next page, or `null` on the last page.
    #[schema(required = true)]
    continuation_token: Option<i64>,
    /// The facet values over all matching unit tests; only on the first page (`null` after).
    #[schema(required = true)]
    filter_values: Option<FilterValues>,
}

/// Answer of `search-simulation-unit-tests`.
#[derive(Serialize, ToSchema)]
pub struct SearchSimulationUnitTestsResponse {
    /// The retrieved simulation unit tests, most recently updated first, at most {SEARCH_LIMIT}.
    simulation_unit_tests: Vec<SimulationUnitTest>,
}

/// Answer of `sign-in-with-api-key`.
#[derive(Serialize, ToSchema)]
pub struct SignInWithApiKeyResponse {
    /// The ID token that should be attached to the Authorization header for future API calls.
    id_token: String,
    /// The time at which the token expires.
    expires_at: DateTime<Utc>,
}

/// Every error answer except 422.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// A human sentence saying what went wrong.
    detail: String,
    /// A stable snake_case code, e.g. `unit_test_name_taken`.
    error_code: String,
}

/// One step of a problem's location: a field name or a list index.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LocPart {
    Key(String),
    Index(u64),
}

/// One problem of a request that failed validation.
#[derive(Serialize, ToSchema)]
pub struct ValidationProblem {
    /// Where the problem is, e.g. `["body", "success_criterions", 0, "metric_id"]`.
    loc: Vec<LocPart>,
    /// What is wrong, in a human sentence.
    msg: String,
    /// The kind of problem, e.g. `missing`, `string_pattern_mismatch`.
    r#type: String,
}

/// A 422 answer: every problem of the request at once.
#[derive(Serialize, ToSchema)]
pub struct ValidationErrorBody {
    detail: Vec<ValidationProblem>,
    /// Always `validation_error`.
    error_code: String,
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema;

    use super::*;

    /// The white space `NON_BLANK` excludes, as ranges.
    const WHITE_SPACE: [(char, char); 11] = [
        ('\t', '\r'),
        (' ', ' '),
        ('\u{85}', '\u{85}'),
        ('\u{a0}', '\u{a0}'),
        ('\u{1680}', '\u{1680}'),
        ('\u{2000}', '\u{200a}'),
        ('\u{2028}', '\u{2028}'),
        ('\u{2029}', '\u{2029}'),
        ('\u{202f}', '\u{202f}'),
        ('\u{205f}', '\u{205f}'),
        ('\u{3000}', '\u{3000}'),
    ];

    #[test]
    fn non_blank_excludes_exactly_what_trim_removes() {
        let listed = |c: char| WHITE_SPACE.iter().any(|(a, b)| (*a..=*b).contains(&c));
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            assert_eq!(listed(c), c.is_whitespace(), "{:?}", c);
        }
        let escape = |c: char| match c {
            '\t' => "\\t".to_owned(),
            '\r' => "\\r".to_owned(),
            ' ' => " ".to_owned(),
            c => format!("\\u{:04x}", c as u32),
        };
        let class: String = WHITE_SPACE
            .iter()
            .map(|&(a, b)| match (a, b) {
                (a, b) if a == b => escape(a),
                (a, b) if b as u32 == a as u32 + 1 => escape(a) + &escape(b),
                (a, b) => format!("{}-{}", escape(a), escape(b)),
            })
            .collect();
        assert_eq!(NON_BLANK, format!("[^{class}]"));
    }

    fn schema_json<T: PartialSchema>() -> serde_json::Value {
        serde_json::to_value(T::schema()).unwrap()
    }

    #[test]
    fn string_schemas_carry_the_server_limits_and_the_non_blank_pattern() {
        let short = schema_json::<StrippedNonemptyString>();
        assert_eq!(short["pattern"], NON_BLANK);
        assert_eq!(short["maxLength"], limits::SHORT_STRING_CHARS);
        assert_eq!(limits::NAME_CHARS, limits::SHORT_STRING_CHARS);
        assert_eq!(limits::SEARCH_QUERY_CHARS, limits::SHORT_STRING_CHARS);
        let description = schema_json::<Description>();
        assert_eq!(description["pattern"], NON_BLANK);
        assert_eq!(description["maxLength"], limits::DESCRIPTION_CHARS);
        let tags = serde_json::to_value(tags_schema(false)).unwrap();
        assert_eq!(tags["maxProperties"], limits::TAGS);
        assert_eq!(tags["propertyNames"]["pattern"], NON_BLANK);
        assert_eq!(
            tags["propertyNames"]["maxLength"],
            limits::SHORT_STRING_CHARS
        );
        assert_eq!(
            tags["additionalProperties"]["maxLength"],
            limits::SHORT_STRING_CHARS
        );
    }
}
