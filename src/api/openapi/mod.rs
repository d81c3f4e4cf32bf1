//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the schema
//! mirrors in `schemas`, completed with what this server is configured to allow, served at
//! `GET /openapi.json`; and `GET /docs`, Swagger UI on that document, its assets compiled into the
//! binary (the machines reach no CDN).

pub mod lifecycle_schemas;
pub mod schemas;
pub mod set_schemas;

use std::sync::OnceLock;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::{bulk, unit_test_sets, unit_tests, users};
use crate::AppState;
use crate::clusters::CLUSTER_HEADER;
use crate::domain::{limits, query};
use crate::error::Error;
use crate::ratelimit::{Budgets, Limited};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "simtest — simulation unit tests on the Amigo classic REST surface",
        description = "Stores simulation unit tests and serves them on the same paths, parameters and \
            bodies as the Amigo classic API. Errors are `{\"detail\": \"...\", \"error_code\": \"...\"}`; \
            a 422 lists every problem as `{loc, msg, type}`.",
    ),
    paths(
        unit_tests::create_unit_test,
        unit_tests::list_unit_tests,
        unit_tests::update_unit_test,
        unit_tests::delete_unit_test,
        unit_tests::search_unit_tests,
        unit_tests::get_unit_test,
        unit_tests::clone_unit_test,
        unit_tests::unit_test_history,
        unit_tests::delete_unit_test_permanently,
        bulk::export_unit_tests,
        bulk::import_unit_tests,
        unit_test_sets::create_unit_test_set,
        unit_test_sets::list_unit_test_sets,
        unit_test_sets::search_unit_test_sets,
        unit_test_sets::update_unit_test_set,
        unit_test_sets::delete_unit_test_set,
        users::sign_in_with_api_key,
    ),
    // Schemas only parameters use are not collected from the paths; name them here.
    components(schemas(
        schemas::ObjectId,
        schemas::StrippedNonemptyString,
        schemas::SearchQueryString,
        schemas::CreatorFilter,
        schemas::TagFilter,
        schemas::SortKey,
        schemas::ErrorBody,
        schemas::ValidationErrorBody,
    )),
    modifiers(&SecuritySchemes),
    // Bearer or Basic carry the token; X-ORG-ID may be added to either.
    security(
        ("Bearer-Authorization" = []),
        ("Basic" = []),
        ("Bearer-Authorization" = [], "Bearer-Authorization-Organization" = []),
        ("Basic" = [], "Bearer-Authorization-Organization" = []),
    ),
    tags(
        (name = "Simulation", description = "Simulation unit tests."),
        (name = "User", description = "Exchanging an API key for a user token."),
        (name = "Beyond Amigo", description = "simtest's own operations, not in Amigo's classic API: reading one unit test, conditional writes, safe retries, cloning, history, export and import, hard delete."),
    )
)]
pub struct ApiDoc;

/// The security schemes of the extract: a JWT as bearer or as the password of Basic, the optional
/// issuing org, and the API-key headers of sign-in.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        let schemes = [
            (
                "Bearer-Authorization",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .description(Some(
                            "A JWT identifying a user, e.g. from `sign-in-with-api-key` or `simtest token`.",
                        ))
                        .build(),
                ),
            ),
            (
                "Bearer-Authorization-Organization",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "X-ORG-ID",
                    "The organization that issued the token, when it differs from the path's.",
                ))),
            ),
            (
                "Basic",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Basic)
                        .description(Some(
                            "Username `{org_id}_{user_id}` matching the token's claims; the token as password.",
                        ))
                        .build(),
                ),
            ),
            (
                "API-Key-Authorization-Key",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "x-api-key",
                    "The secret of an organization API key.",
                ))),
            ),
            (
                "API-Key-Authorization-ID",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "x-api-key-id",
                    "The ID of the API key.",
                ))),
            ),
            (
                "API-Key-Authorization-UserID",
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    "x-user-id",
                    "The user to sign in as.",
                ))),
            ),
        ];
        for (name, scheme) in schemes {
            components.add_security_scheme(name, scheme);
        }
    }
}

/// The document generated from the code, built once per process.
fn base_document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes")
    })
}

/// Limits of `domain` the texts name as `{NAME}`: the derives take string literals only, so the
/// figures are filled in here, once, from the constants the server enforces.
fn fixed_limits() -> [(&'static str, String); 6] {
    [
        (
            "{SHORT_STRING_CHARS}",
            limits::SHORT_STRING_CHARS.to_string(),
        ),
        ("{DESCRIPTION_CHARS}", limits::DESCRIPTION_CHARS.to_string()),
        ("{TAGS}", limits::TAGS.to_string()),
        ("{SEARCH_TERMS}", limits::SEARCH_TERMS.to_string()),
        (
            "{SEARCH_QUERY_CHARS}",
            limits::SEARCH_QUERY_CHARS.to_string(),
        ),
        ("{SEARCH_LIMIT}", query::SEARCH_LIMIT.to_string()),
    ]
}

/// The rate-limited action behind each operation that answers 429.
const LIMITED_OPERATIONS: [(&str, Limited); 6] = [
    ("create-simulation-unit-test", Limited::CreateUnitTest),
    ("get-simulation-unit-tests", Limited::ListUnitTests),
    ("search-simulation-unit-tests", Limited::SearchUnitTests),
    ("update-simulation-unit-test", Limited::UpdateUnitTest),
    ("delete-simulation-unit-test", Limited::DeleteUnitTest),
    ("sign-in-with-api-key", Limited::SignIn),
];

/// What the document says that depends on how this server is configured.
#[derive(Debug, Clone, Default)]
pub struct Served {
    /// The named MongoDB clusters (`x-mongo-cluster-name` values).
    pub cluster_names: Vec<String>,
    /// Requests per minute of each rate-limited action; 0 is off.
    pub budgets: Budgets,
    /// Larger request bodies get 413.
    pub max_body_bytes: usize,
}

/// The document for a server configured as `served`: the limits the texts name (`{NAME}` in the
/// derives) and the values `x-mongo-cluster-name` may take (any other is 422). With no named
/// cluster no value is valid, which the schema says with `not: {}`: the header must be left out.
pub fn document(served: &Served) -> Value {
    let mut doc = base_document().clone();
    let fixed = fixed_limits();
    for_each_string(&mut doc, &mut |text| {
        for (name, value) in &fixed {
            if text.contains(name) {
                *text = text.replace(name, value);
            }
        }
    });
    let max_body = format!("this server's limit of {}", bytes(served.max_body_bytes));
    let allowed = if served.cluster_names.is_empty() {
        "No named cluster is configured on this server: leave the header out.".to_owned()
    } else {
        format!(
            "Clusters configured on this server: {}.",
            served.cluster_names.join(", ")
        )
    };
    let paths = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut());
    let operations = paths.flat_map(|item| {
        item.as_object_mut()
            .into_iter()
            .flat_map(|o| o.values_mut())
    });
    for op in operations {
        let budget = LIMITED_OPERATIONS
            .iter()
            .find(|(id, _)| op["operationId"] == *id)
            .map(|(_, action)| served.budgets.get(*action));
        let rate_limit = match budget {
            Some(0) => "a rate limit (none is configured for this endpoint on this server, so 429 \
                        is not sent)"
                .to_owned(),
            Some(n) => format!("the rate limit of {n} requests per minute for this endpoint"),
            None => String::new(),
        };
        for_each_string(&mut op["responses"], &mut |text| {
            *text = text
                .replace("{RATE_LIMIT}", &rate_limit)
                .replace("{MAX_BODY}", &max_body);
        });
        let parameters = op
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten();
        for param in parameters.filter(|p| p["name"] == CLUSTER_HEADER && p["in"] == "header") {
            param["schema"] = if served.cluster_names.is_empty() {
                json!({ "not": {} })
            } else {
                json!({ "type": "string", "enum": served.cluster_names })
            };
            let described = param["description"].as_str().unwrap_or_default();
            param["description"] = json!(format!("{described} {allowed}"));
        }
    }
    doc
}

/// Calls `f` on every string value in `value`, however deep.
fn for_each_string(value: &mut Value, f: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items.iter_mut().for_each(|v| for_each_string(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| for_each_string(v, f)),
        _ => {}
    }
}

/// `1048576` → `1 MiB (1048576 bytes)`; sizes that are not whole KiB or MiB in bytes only.
fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match n {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB ({n} bytes)", n / MIB),
        n if n >= KIB && n % KIB == 0 => format!("{} KiB ({n} bytes)", n / KIB),
        n => format!("{n} bytes"),
    }
}

/// `/openapi.json` and `/docs`, the document built once for this server's configuration.
pub fn router(served: &Served) -> Router<AppState> {
    let body =
        Bytes::from(serde_json::to_string_pretty(&document(served)).expect("JSON serializes"));
    let swagger: Router<AppState> = SwaggerUi::new("/docs")
        .config(
            utoipa_swagger_ui::Config::new(["/openapi.json"])
                // Keeps the token across reloads, in this browser's local storage only.
                .persist_authorization(true)
                .display_operation_id(true)
                .display_request_duration(true)
                // The default asks validator.swagger.io about the document: no other host.
                .validator_url("none"),
        )
        .into();
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let body = body.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], body) }
            }),
        )
        .merge(swagger.layer(axum::middleware::map_response(problem_for_missing_asset)))
}

/// Swagger UI answers an unknown file under `/docs/` with an empty 404; clients get our error body.
async fn problem_for_missing_asset(response: Response<Body>) -> Response<Body> {
    if response.status() == StatusCode::NOT_FOUND {
        return Error::RouteNotFound.into_response();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query_string::{HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, SET_MAX_LIMIT};

    fn cluster_header_schemas(doc: &Value) -> Vec<Value> {
        let mut found = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().unwrap() {
                    if p["name"] == CLUSTER_HEADER {
                        found.push(p["schema"].clone());
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_cluster_header_allows_exactly_the_configured_clusters() {
        let served = |names: &[&str]| Served {
            cluster_names: names.iter().map(|n| n.to_string()).collect(),
            ..Served::default()
        };
        let doc = document(&served(&["eu", "us"]));
        let operations: usize = (doc["paths"].as_object().unwrap().values())
            .map(|item| item.as_object().unwrap().len())
            .sum();
        let named = cluster_header_schemas(&doc);
        assert_eq!(named.len(), operations, "one per operation");
        assert!(named.iter().all(|s| s["enum"] == json!(["eu", "us"])));
        let none = cluster_header_schemas(&document(&served(&[])));
        assert!(none.iter().all(|s| *s == json!({ "not": {} })));
    }

    /// The derives take numbers as literals only (utoipa-gen parses a literal); this holds each
    /// bound they state to the constant the server enforces.
    #[test]
    fn bounds_in_the_derives_are_the_server_limits() {
        let doc = document(&Served::default());
        let mut query_arrays = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            // Each paged operation's own page size.
            let (max_limit, default_limit) = if path.contains("unit_test_set") {
                (SET_MAX_LIMIT, SET_MAX_LIMIT)
            } else if path.ends_with("/history/") {
                (HISTORY_MAX_LIMIT, HISTORY_DEFAULT_LIMIT)
            } else {
                (query::MAX_LIMIT, query::DEFAULT_LIMIT)
            };
            for op in item.as_object().unwrap().values() {
                for p in op["parameters"].as_array().unwrap() {
                    if p["in"] == "query" && p["schema"]["type"] == "array" {
                        query_arrays += 1;
                        assert_eq!(p["schema"]["maxItems"], limits::QUERY_VALUES, "{p}");
                    }
                    if p["in"] == "query" && p["name"] == "limit" {
                        assert_eq!(p["schema"]["maximum"], max_limit, "{path} {p}");
                        assert_eq!(p["schema"]["default"], default_limit, "{path} {p}");
                    }
                }
            }
        }
        assert!(query_arrays >= 14, "{query_arrays}");
        let schemas = &doc["components"]["schemas"];
        for body in [
            "CreateSimulationUnitTestRequest",
            "UpdateSimulationUnitTestRequest",
        ] {
            let criteria = &schemas[body]["properties"]["success_criterions"];
            assert_eq!(criteria["maxItems"], limits::CRITERIA, "{body}");
        }
        let expected = &schemas["CategoricalMetricSuccessCriterionInput"]["properties"];
        assert_eq!(
            expected["expected_values"]["maxItems"],
            limits::EXPECTED_VALUES
        );
        assert_eq!(
            schemas["SearchQueryString"]["maxLength"],
            limits::SEARCH_QUERY_CHARS
        );
    }

    #[test]
    fn texts_name_the_configured_budgets_and_body_limit() {
        let mut budgets = Budgets::default();
        budgets.set(Limited::ListUnitTests, 9);
        budgets.set(Limited::SignIn, 0);
        let doc = document(&Served {
            budgets,
            max_body_bytes: 2 * 1024 * 1024,
            ..Served::default()
        });
        let text = |path: &str, method: &str, status: &str| {
            doc["paths"][path][method]["responses"][status]["description"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let list = text("/v1/{organization}/simulation/unit_test/", "get", "429");
        assert_eq!(
            list,
            "The user has exceeded the rate limit of 9 requests per minute for this endpoint."
        );
        let sign_in = text("/v1/{organization}/user/signin_with_api_key", "post", "429");
        assert!(sign_in.contains("429 is not sent"), "{sign_in}");
        let create = text("/v1/{organization}/simulation/unit_test/", "post", "413");
        assert_eq!(
            create,
            "The request body is larger than this server's limit of 2 MiB (2097152 bytes)."
        );
        assert_eq!(bytes(1536), "1536 bytes");
        assert_eq!(bytes(2048), "2 KiB (2048 bytes)");
    }
}
