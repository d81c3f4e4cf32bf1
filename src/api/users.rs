//! `POST /v1/{organization}/user/signin_with_api_key`: an org API key buys a user token.

use axum::extract::State;
use axum::handler::Handler;
use axum::http::HeaderMap;
use axum::middleware::from_fn_with_state;
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::{Value, json};

use super::openapi::schemas::{
    CommonHeaders, ErrorBody, OrganizationPath, SignInWithApiKeyResponse, ValidationErrorBody,
};
use super::{pipeline, with_trailing_slash};
use crate::AppState;
use crate::auth::RequestOrg;
use crate::domain::UserId;
use crate::domain::problems::{Loc, Problems};
use crate::error::{Error, Result};

pub fn router(state: &AppState) -> Router<AppState> {
    let limited = from_fn_with_state(state.clone(), pipeline::sign_in_rate_limit);
    let mut router = Router::new();
    for path in with_trailing_slash("/v1/{organization}/user/signin_with_api_key") {
        router = router.route(&path, post(sign_in_with_api_key.layer(limited.clone())));
    }
    router
}

/// Longest value of a sign-in header (key ids and user ids are short; generated secrets are 64).
pub const MAX_SIGN_IN_HEADER_CHARS: usize = 256;

/// The three sign-in headers, judged before any limiter or store sees them.
#[derive(Clone)]
pub struct SignInHeaders {
    pub secret: String,
    pub key_id: String,
    pub user_id: UserId,
}

/// Never shows the secret.
impl std::fmt::Debug for SignInHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInHeaders")
            .field("key_id", &self.key_id)
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl SignInHeaders {
    /// Each header present, 1 to [`MAX_SIGN_IN_HEADER_CHARS`] visible ASCII characters; every
    /// problem in one 422, none of them echoing a value.
    pub fn parse(headers: &HeaderMap) -> Result<Self> {
        let mut p = Problems::default();
        let mut header = |name: &str| {
            let loc = Loc::root("header").key(name);
            let value = headers.get(name).map(|v| v.as_bytes());
            match value {
                None => p.push(&loc, "missing", "Field required"),
                Some(v) if v.len() > MAX_SIGN_IN_HEADER_CHARS => p.push(
                    &loc,
                    "string_too_long",
                    format!("String should have at most {MAX_SIGN_IN_HEADER_CHARS} characters"),
                ),
                Some(v) if v.is_empty() || !v.iter().all(|c| (0x21..=0x7e).contains(c)) => p.push(
                    &loc,
                    "string_pattern_mismatch",
                    "Header must be a non-empty visible ASCII string",
                ),
                Some(v) => return Some(String::from_utf8_lossy(v).into_owned()),
            }
            None
        };
        let (secret, key_id, user_id) = (
            header("x-api-key"),
            header("x-api-key-id"),
            header("x-user-id"),
        );
        match (secret, key_id, user_id) {
            (Some(secret), Some(key_id), Some(user_id)) => Ok(Self {
                secret,
                key_id,
                user_id: user_id.into(),
            }),
            _ => Err(Error::Invalid(p.into_vec())),
        }
    }
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
        ("x-api-key" = String, Header, pattern = "^[\\x21-\\x7e]{1,256}$", description = "The value of the API key."),
        ("x-api-key-id" = String, Header, pattern = "^[\\x21-\\x7e]{1,256}$", description = "The ID of the API key."),
        ("x-user-id" = String, Header, pattern = "^[\\x21-\\x7e]{1,256}$", description = "The ID of the user to sign in as."),
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
    Extension(org): Extension<RequestOrg>,
    Extension(headers): Extension<SignInHeaders>,
) -> Result<Json<Value>> {
    let (token, expires_at) = state
        .auth
        .sign_in_with_api_key(
            org.store.as_ref(),
            &org.org,
            &headers.key_id,
            &headers.secret,
            &headers.user_id,
        )
        .await?;
    tracing::info!(org = %org.org, user = %headers.user_id, key_id = %headers.key_id, "signed in with API key");
    Ok(Json(json!({ "id_token": token, "expires_at": expires_at })))
}
