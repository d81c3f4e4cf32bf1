//! Request pieces read in the contract's order: the body is taken in full here but only judged
//! (422) after authentication and permissions, so a bad body never hides a 401 or 403.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde_json::Value;

use crate::domain::problems::{Loc, Problems};
use crate::domain::{FieldProblem, ObjectIdHex};
use crate::error::Error;

/// A JSON request body, read but not yet judged.
pub struct JsonBody(Result<Value, Vec<FieldProblem>>);

impl JsonBody {
    /// The parsed JSON, or the problems that make it unusable (wrong content type, empty, malformed).
    pub fn value(self) -> Result<Value, Vec<FieldProblem>> {
        self.0
    }
}

fn is_json_content_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("").to_owned());
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::Invalid(vec![problem(
                    "body_read",
                    "The request body could not be read",
                )])
            }
        })?;
        // Like the original, a body without a content type is read as JSON; any other type is refused.
        if let Some(ct) = content_type.filter(|ct| !is_json_content_type(ct)) {
            let msg = format!("Expected Content-Type application/json, got {ct:?}");
            return Ok(Self(Err(vec![problem("content_type", msg)])));
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(Err(vec![problem("missing", "Field required")])));
        }
        Ok(Self(crate::domain::json::parse_strict(&bytes).map_err(
            |e| vec![problem("json_invalid", format!("JSON decode error: {e}"))],
        )))
    }
}

fn problem(kind: &'static str, msg: impl Into<String>) -> FieldProblem {
    let mut p = Problems::default();
    p.push(&Loc::root("body"), kind, msg);
    p.into_vec().remove(0)
}

/// The path's id and what else the request was read into, or every problem of both at once (422):
/// `p` holds the path's (and headers') problems, `rest` the body's or query's.
pub fn id_with<T>(
    id: Option<ObjectIdHex>,
    p: Problems,
    rest: std::result::Result<T, Vec<FieldProblem>>,
) -> std::result::Result<(ObjectIdHex, T), Error> {
    match (id, rest) {
        (Some(id), Ok(rest)) if p.is_empty() => Ok((id, rest)),
        (_, rest) => {
            let mut problems = p.into_vec();
            problems.extend(rest.err().unwrap_or_default());
            Err(Error::Invalid(problems))
        }
    }
}

/// Names the id segment of a path.
pub trait IdSegment {
    const NAME: &'static str;
}

/// `{simulation_unit_test_id}`.
pub struct UnitTestSegment;
impl IdSegment for UnitTestSegment {
    const NAME: &'static str = "simulation_unit_test_id";
}

/// `{simulation_unit_test_set_id}`.
pub struct UnitTestSetSegment;
impl IdSegment for UnitTestSetSegment {
    const NAME: &'static str = "simulation_unit_test_set_id";
}

/// An id path segment, checked against the id pattern later (with the body's problems).
pub struct IdParam<S>(String, std::marker::PhantomData<S>);

/// The `{simulation_unit_test_id}` path segment.
pub type UnitTestIdParam = IdParam<UnitTestSegment>;
/// The `{simulation_unit_test_set_id}` path segment.
pub type UnitTestSetIdParam = IdParam<UnitTestSetSegment>;

impl<S: IdSegment> IdParam<S> {
    pub fn parse(&self, p: &mut Problems) -> Option<ObjectIdHex> {
        let id = ObjectIdHex::parse(&self.0);
        if id.is_none() {
            p.push(
                &Loc::root("path").key(S::NAME),
                "string_pattern_mismatch",
                "String should match pattern '^[a-f0-9]{24}$'",
            );
        }
        id
    }
}

impl<S: Send + Sync, N: IdSegment> FromRequestParts<S> for IdParam<N> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| Error::RouteNotFound)?;
        params
            .iter()
            .find(|(name, _)| *name == N::NAME)
            .map(|(_, v)| Self(v.to_owned(), std::marker::PhantomData))
            .ok_or(Error::RouteNotFound)
    }
}
