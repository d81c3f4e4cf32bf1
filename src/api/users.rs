//! `POST /v1/{organization}/user/signin_with_api_key`: an org API key buys a user token.

use axum::extract::{RawPathParams, State};
use axum::handler::Handler;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::openapi::schemas::{
    CommonHeaders, ErrorBody, OrganizationPath, SignInWithApiKeyResponse, ValidationErrorBody,
};
use super::{middleware, with_trailing_slash};
use crate::AppState;
use crate::domain::problems::{Loc, Problems};
use crate::error::{Error, Result};
use crate::ratelimit::Limited;

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = from_fn_with_state((state.clone(), Limited::SignIn), middleware::rate_limit);
    let mut router = Router::new();
    for path in with_trailing_slash("/v1/{organization}/user/signin_with_api_key") {
        router = router.route(&path, post(sign_in_with_api_key.layer(limited.clone())));
    }
    router
}

/// Sign in with API key
///
/// Given an organization API key, issue an authorization token for the specified user. The token
/// is then sent as `Authorization: Bearer <token>` in later calls.
#[utoipa::path(
    post,
    path = "/v1/{organization}/user/signin_with_api_key",
    operation_id = "sign-in-with-api-key",
    tag = "User",
    params(
        OrganizationPath,
        ("x-api-key" = String, Header, pattern = "^[\\x21-\\x7e]+$", description = "The value of the API key."),
        ("x-api-key-id" = String, Header, pattern = "^[\\x21-\\x7e]+$", description = "The ID of the API key."),
        ("x-user-id" = String, Header, pattern = "^[\\x21-\\x7e]+$", description = "The ID of the user to sign in as."),
        CommonHeaders,
    ),
    responses(
        (status = 200, description = "Succeeded.", body = SignInWithApiKeyResponse),
        (status = 401, description = "API key not found, is incorrect, or the requested user is not found.", body = ErrorBody),
        (status = 404, description = "Specified organization is not found.", body = ErrorBody),
        (status = 422, description = "Invalid request path parameter or a missing header failed validation.", body = ValidationErrorBody),
        (status = 429, description = "The API key has exceeded {RATE_LIMIT}.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
        (status = 503, description = "The service is going through temporary maintenance, or the store is unreachable.", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before retrying."))),
    ),
    security(("API-Key-Authorization-Key" = [], "API-Key-Authorization-ID" = [], "API-Key-Authorization-UserID" = []))
)]
async fn sign_in_with_api_key(
    State(state): State<AppState>,
    params: RawPathParams,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let org = params
        .iter()
        .find(|(k, _)| *k == "organization")
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    let mut p = Problems::default();
    let mut header = |name: &str| match headers.get(name).map(|v| v.to_str()) {
        Some(Ok(v)) if !v.is_empty() => Some(v.to_owned()),
        Some(_) => {
            p.push(
                &Loc::root("header").key(name),
                "string_type",
                "Header must be a non-empty visible ASCII string",
            );
            None
        }
        None => {
            p.push(&Loc::root("header").key(name), "missing", "Field required");
            None
        }
    };
    let (secret, key_id, user_id) = (
        header("x-api-key"),
        header("x-api-key-id"),
        header("x-user-id"),
    );
    let (Some(secret), Some(key_id), Some(user_id)) = (secret, key_id, user_id) else {
        return Err(Error::Invalid(p.into_vec()));
    };
    let store = state.clusters.resolve(&org, &headers).await?;
    let (token, expires_at) = state
        .auth
        .sign_in_with_api_key(store.as_ref(), &org, &key_id, &secret, &user_id)
        .await?;
    tracing::info!(org = %org, user = %user_id, key_id = %key_id, "signed in with API key");
    Ok(Json(json!({ "id_token": token, "expires_at": expires_at })))
}
