//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the schema
//! mirrors in `schemas`, served at `GET /openapi.json`; and `GET /docs`, a page of our own that
//! renders it without fetching anything but the document (the machines reach no CDN).

pub mod schemas;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{unit_tests, users};
use crate::AppState;

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

/// The document as served, rendered once.
pub fn document_json() -> Arc<str> {
    static DOC: OnceLock<Arc<str>> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .expect("the OpenAPI document serializes")
            .into()
    })
    .clone()
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
}

async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json().to_string(),
    )
}

async fn docs() -> Html<&'static str> {
    Html(DOCS_PAGE)
}
