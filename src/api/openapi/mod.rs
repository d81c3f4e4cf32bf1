//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the schema
//! mirrors in `schemas`, served at `GET /openapi.json`; and `GET /docs`, a page of our own that
//! renders it without fetching anything but the document (the machines reach no CDN).

pub mod schemas;

use std::sync::OnceLock;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{unit_tests, users};
use crate::AppState;
use crate::clusters::CLUSTER_HEADER;

/// The page behind `/docs`: plain HTML and JavaScript that fetches `/openapi.json`.
const DOCS_PAGE: &str = include_str!("docs.html");

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
        users::sign_in_with_api_key,
    ),
    // Schemas only parameters use are not collected from the paths; name them here.
    components(schemas(
        schemas::ObjectId,
        schemas::StrippedNonemptyString,
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

/// The document for a server whose named MongoDB clusters are `cluster_names`: the one thing the
/// code cannot know is which values `x-mongo-cluster-name` may take (any other is 422), so they
/// are filled in here as its `enum`. With no named cluster no value is valid, which the schema
/// says with `not: {}`: the header must be left out.
pub fn document(cluster_names: &[&str]) -> Value {
    let mut doc = base_document().clone();
    let allowed = if cluster_names.is_empty() {
        "No named cluster is configured on this server: leave the header out.".to_owned()
    } else {
        format!(
            "Clusters configured on this server: {}.",
            cluster_names.join(", ")
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
    let parameters = operations
        .filter_map(|op| op.get_mut("parameters").and_then(Value::as_array_mut))
        .flatten();
    for param in parameters.filter(|p| p["name"] == CLUSTER_HEADER && p["in"] == "header") {
        param["schema"] = if cluster_names.is_empty() {
            json!({ "not": {} })
        } else {
            json!({ "type": "string", "enum": cluster_names })
        };
        let described = param["description"].as_str().unwrap_or_default();
        param["description"] = json!(format!("{described} {allowed}"));
    }
    doc
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
}

async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    let names: Vec<&str> = state.clusters.all().filter_map(|(name, _)| name).collect();
    let body = serde_json::to_string_pretty(&document(&names)).expect("JSON serializes");
    ([(header::CONTENT_TYPE, "application/json")], body)
}

async fn docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let named = cluster_header_schemas(&document(&["eu", "us"]));
        assert_eq!(named.len(), 6, "one per operation");
        assert!(named.iter().all(|s| s["enum"] == json!(["eu", "us"])));
        let none = cluster_header_schemas(&document(&[]));
        assert!(none.iter().all(|s| *s == json!({ "not": {} })));
    }
}
