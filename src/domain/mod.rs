//! Domain types. Each is built by parsing, so code past the edge can trust what it holds.

pub mod etag;
mod id;
pub mod idempotency;
pub mod json;
pub mod limits;
mod org;
pub mod problems;
pub mod query;
pub mod query_string;
mod requests;
pub mod search;
mod unit_test;
pub mod unit_test_set;
mod user;

pub use id::ObjectIdHex;
pub use org::OrgId;
pub use problems::FieldProblem;
pub use requests::{CloneRequest, NewUnitTest, UnitTestPatch};
pub use unit_test::{
    Criterion, IdKey, MetricValueType, SuccessCriterion, Tag, Timestamp, UnitTest, UnitTestJson,
    UserInfo, Verb,
};
pub use user::UserId;
