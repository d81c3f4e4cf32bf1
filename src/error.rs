//! The one error type of the HTTP surface: each variant picks its status and `error_code`, and
//! internal causes are logged here and never shown to clients.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::domain::{FieldProblem, MetricValueType, ObjectIdHex};
use crate::store::StoreError;

/// A referenced record a unit test points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    Service,
    VersionSet,
    Persona,
    Scenario,
    Metric,
}

impl Reference {
    fn noun(self) -> &'static str {
        match self {
            Self::Service => "service",
            Self::VersionSet => "service version set",
            Self::Persona => "persona",
            Self::Scenario => "scenario",
            Self::Metric => "metric",
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::Service => "service_not_found",
            Self::VersionSet => "service_version_set_not_found",
            Self::Persona => "persona_not_found",
            Self::Scenario => "scenario_not_found",
            Self::Metric => "metric_not_found",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Deliberately vague: the reason is logged, the client learns only that it is not let in.
    #[error("invalid authorization credentials")]
    Unauthorized(&'static str),
    #[error("organization {0:?} not found")]
    OrganizationNotFound(String),
    #[error("missing permission {0}")]
    Forbidden(&'static str),
    #[error("invalid request")]
    Invalid(Vec<FieldProblem>),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{} {id:?} not found", .reference.noun())]
    ReferenceNotFound { reference: Reference, id: String },
    #[error("success criterion {index} is {criterion} but metric {metric_id} is {metric}")]
    MetricTypeMismatch {
        index: usize,
        metric_id: ObjectIdHex,
        criterion: MetricValueType,
        metric: MetricValueType,
    },
    #[error("an active unit test named {0:?} already exists")]
    NameTaken(String),
    #[error("unit test {0} is used in a simulation unit test set")]
    UnitTestInUse(ObjectIdHex),
    #[error("unit test {0} not found")]
    UnitTestNotFound(ObjectIdHex),
    #[error("unit test {0} is not deleted; only a deleted unit test can be deleted for good")]
    UnitTestNotDeleted(ObjectIdHex),
    #[error("unit test {0} changed since the version If-Match names")]
    PreconditionFailed(ObjectIdHex),
    #[error("a request with this Idempotency-Key is still running; retry shortly")]
    IdempotencyKeyInUse,
    #[error("simulation unit test set {0} not found")]
    UnitTestSetNotFound(ObjectIdHex),
    #[error("an active simulation unit test set named {0:?} already exists")]
    SetNameTaken(String),
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    #[error("the service is in maintenance")]
    Maintenance,
    #[error("the request timed out")]
    Timeout { after_secs: u64 },
    #[error("too many sign-ins are being verified")]
    SignInBusy,
    #[error("the store is unavailable")]
    Unavailable(String),
    /// Every attempt to write a unit test lost its race to another writer of it.
    #[error("too many concurrent changes to unit test {0}")]
    TooManyConcurrentChanges(ObjectIdHex),
    /// Every attempt to write a set lost its race to another writer of it.
    #[error("too many concurrent changes to simulation unit test set {0}")]
    TooManyConcurrentSetChanges(ObjectIdHex),
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Error::Unavailable(cause),
            // A duplicate reaching here was not expected by the caller: treat as a bug, not a 409.
            StoreError::Duplicate => Error::Internal("unexpected duplicate key".into()),
            StoreError::Internal(cause) => Error::Internal(cause),
        }
    }
}

/// Every problem found in a request, as its one 422.
impl From<Vec<FieldProblem>> for Error {
    fn from(problems: Vec<FieldProblem>) -> Self {
        Error::Invalid(problems)
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::OrganizationNotFound(_)
            | Self::ReferenceNotFound { .. }
            | Self::UnitTestNotFound(_)
            | Self::UnitTestSetNotFound(_)
            | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MetricTypeMismatch { .. }
            | Self::UnitTestInUse(_)
            | Self::UnitTestNotDeleted(_) => StatusCode::BAD_REQUEST,
            Self::NameTaken(_) | Self::SetNameTaken(_) | Self::IdempotencyKeyInUse => {
                StatusCode::CONFLICT
            }
            Self::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Maintenance
            | Self::Timeout { .. }
            | Self::Unavailable(_)
            | Self::TooManyConcurrentChanges(_)
            | Self::TooManyConcurrentSetChanges(_)
            | Self::SignInBusy => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized(_) => "invalid_credentials",
            Self::OrganizationNotFound(_) => "organization_not_found",
            Self::Forbidden(_) => "missing_permission",
            Self::Invalid(_) => "validation_error",
            Self::PayloadTooLarge => "payload_too_large",
            Self::ReferenceNotFound { reference, .. } => reference.code(),
            Self::MetricTypeMismatch { .. } => "metric_type_mismatch",
            Self::NameTaken(_) => "unit_test_name_taken",
            Self::UnitTestInUse(_) => "unit_test_in_use",
            Self::UnitTestNotFound(_) => "unit_test_not_found",
            Self::UnitTestNotDeleted(_) => "unit_test_not_deleted",
            Self::UnitTestSetNotFound(_) => "unit_test_set_not_found",
            Self::PreconditionFailed(_) => "precondition_failed",
            Self::IdempotencyKeyInUse => "idempotency_key_in_use",
            Self::SetNameTaken(_) => "unit_test_set_name_taken",
            Self::RouteNotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Maintenance => "maintenance",
            Self::Timeout { .. } => "request_timeout",
            Self::Unavailable(_) => "service_unavailable",
            Self::TooManyConcurrentChanges(_) | Self::TooManyConcurrentSetChanges(_) => {
                "too_many_concurrent_changes"
            }
            Self::SignInBusy => "sign_in_busy",
            Self::Internal(_) => "internal_error",
        }
    }

    /// The `detail` of the error body.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Self::Invalid(problems) => json!(crate::domain::problems::capped(problems)),
            Self::Unauthorized(_) => json!("Invalid authorization credentials."),
            Self::Forbidden(permission) => {
                json!(format!("Missing required permission {permission}."))
            }
            Self::RateLimited { retry_after_secs } => {
                json!(format!(
                    "Rate limit exceeded for this endpoint; retry in {retry_after_secs} s."
                ))
            }
            Self::Maintenance => json!("The service is going through temporary maintenance."),
            Self::Timeout { after_secs } => {
                json!(format!(
                    "The request did not complete within {after_secs} s and was abandoned; retry later."
                ))
            }
            Self::Unavailable(_) => json!("The service is temporarily unavailable; retry shortly."),
            Self::TooManyConcurrentChanges(id) => json!(format!(
                "Too many concurrent changes to unit test {id}; retry shortly."
            )),
            Self::TooManyConcurrentSetChanges(id) => json!(format!(
                "Too many concurrent changes to simulation unit test set {id}; retry shortly."
            )),
            Self::SignInBusy => {
                json!("Too many sign-ins are being verified at once; retry shortly.")
            }
            Self::Internal(_) => json!("An internal error occurred."),
            other => json!(format!("{}.", capitalize(&other.to_string()))),
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(cause = %cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(cause = %cause, "store unavailable"),
            Self::TooManyConcurrentChanges(id) | Self::TooManyConcurrentSetChanges(id) => {
                tracing::warn!(id = %id, "every write attempt lost its race")
            }
            Self::Unauthorized(reason) => tracing::info!(reason, "request not authenticated"),
            _ => {}
        }
        let status = self.status();
        let body = json!({"detail": self.detail(), "error_code": self.code()});
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Maintenance => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            Self::Timeout { .. } | Self::Unavailable(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            // Contention on one unit test passes quickly.
            Self::SignInBusy
            | Self::IdempotencyKeyInUse
            | Self::TooManyConcurrentChanges(_)
            | Self::TooManyConcurrentSetChanges(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
