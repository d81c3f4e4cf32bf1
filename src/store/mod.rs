//! The storage boundary: one trait that the embedded store and MongoDB both implement, so the
//! service layer (and every test) is the same whichever holds the data.

use async_trait::async_trait;

use crate::domain::idempotency::{Claim, KeyRecord};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserId};

pub mod cached;
pub mod deadline;
pub mod embedded;
pub mod mongo;
pub mod records;
pub mod round_trips;
#[cfg(test)]
pub(crate) mod tests;

pub use records::{ApiKey, Metric, NamedRecord, Organization, Records, Role, Service, User};

/// What can go wrong below the service layer, independent of the backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique rule (an active unit test name in an org) would be broken.
    #[error("duplicate key")]
    Duplicate,
    /// The store cannot be reached or is not answering in time; the request may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug, a corrupt record, a full disk.
    #[error("store failure: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How a conditional write ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Stored.
    Done,
    /// The stored document is no longer the `previous` the write was based on (changed or
    /// deleted meanwhile): nothing was written; read again and retry.
    Stale,
    /// A unit test delete refused: a set that is not deleted lists the unit test.
    InUse,
    /// A set write refused: it lists this unit test, which is unknown, deleted or of another org.
    UnitTestMissing(ObjectIdHex),
}

/// Which kind of referenced record a lookup is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamedKind {
    Persona,
    Scenario,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Succeeds when the store answers.
    async fn ping(&self) -> StoreResult<()>;

    async fn organization(&self, org_id: &OrgId) -> StoreResult<Option<Organization>>;
    async fn user(&self, org_id: &OrgId, user_id: &UserId) -> StoreResult<Option<User>>;
    async fn role(&self, org_id: &OrgId, name: &str) -> StoreResult<Option<Role>>;
    async fn api_key(&self, org_id: &OrgId, key_id: &str) -> StoreResult<Option<ApiKey>>;
    async fn service(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Option<Service>>;
    async fn named(
        &self,
        kind: NamedKind,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>>;
    /// The metrics of `org_id` among `ids` (missing ones are simply absent).
    async fn metrics(&self, org_id: &OrgId, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>>;
    /// Whether a unit test set that is not deleted lists `unit_test_id` in its runs.
    async fn unit_test_in_live_set(
        &self,
        org_id: &OrgId,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool>;

    /// Stores a new unit test; [`StoreError::Duplicate`] when an active one of the org has its name.
    /// Must be atomic: of two concurrent inserts with one name exactly one succeeds.
    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()>;
    /// Stores all of `docs` or none: [`StoreError::Duplicate`] (nothing stored) when an active
    /// unit test of the org, or an earlier one of `docs`, has the name of one of them. Others may
    /// see part of them for a moment on MongoDB (no multi-document transactions: the ones stored
    /// before a refusal are removed again), never after the answer.
    async fn insert_unit_tests(&self, docs: &[UnitTest]) -> StoreResult<()>;
    async fn unit_test(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Option<UnitTest>>;
    /// Turns `previous` into `next` if the stored unit test is still `previous` (same `updated_at`)
    /// and active; [`Written::Stale`] when it changed or was deleted meanwhile: one atomic
    /// conditional write, so of two racing writers (in any process) exactly one wins.
    /// `is_deleted: true` in `next` frees the name, and is refused with [`Written::InUse`] while a
    /// set that is not deleted lists the unit test: a delete and a set write listing the unit test
    /// never both succeed, however they interleave.
    async fn replace_unit_test(&self, previous: &UnitTest, next: &UnitTest)
    -> StoreResult<Written>;
    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage>;
    /// Removes unit test `id` and its versions for good, if it is deleted ([`Written::Stale`]
    /// otherwise, or when unknown) and no set, deleted or not, lists it ([`Written::InUse`]).
    async fn purge_unit_test(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Written>;
    /// The recorded versions of unit test `id` (each write's result, deletes included) made at
    /// or before `up_to`, newest first, at most `limit`: versions written before history was kept
    /// are not there.
    async fn unit_test_versions(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
        up_to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UnitTest>>;

    /// Stores a new set; [`StoreError::Duplicate`] when an active set of the org has its name,
    /// [`Written::UnitTestMissing`] (and nothing stored) when a unit test it lists is not an active
    /// unit test of the org, checked atomically with the write as [`Store::replace_unit_test`]
    /// describes.
    async fn insert_unit_test_set(&self, set: &UnitTestSet) -> StoreResult<Written>;
    /// The set, deleted or not; `None` when unknown in the org.
    async fn unit_test_set(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<UnitTestSet>>;
    /// Turns `previous` into `next` if the stored set is still `previous` (same `updated_at`) and
    /// not deleted: [`Written::Stale`] otherwise, [`Written::UnitTestMissing`] when `next` lists a
    /// unit test that is not active, [`StoreError::Duplicate`] when `next`'s name is taken.
    async fn replace_unit_test_set(
        &self,
        previous: &UnitTestSet,
        next: &UnitTestSet,
    ) -> StoreResult<Written>;
    async fn list_unit_test_sets(&self, query: &UnitTestSetQuery) -> StoreResult<SetPage>;

    /// Claims the `Idempotency-Key` of `record.scope` for the request `record` describes: stores
    /// it when the scope has no record or only a stale one ([`KeyRecord::is_stale`]), atomically
    /// (of two racing claims one gets [`Claim::Claimed`]); otherwise what the stored record means
    /// for this request ([`KeyRecord::claim_by`]).
    async fn claim_key(&self, record: &KeyRecord) -> StoreResult<Claim>;
    /// Ends the claim `record` made (the stored record with its nonce): keeps `record.answer` for
    /// replay, or with no answer releases the key. A claim taken over meanwhile is left alone.
    async fn finish_key(&self, record: &KeyRecord) -> StoreResult<()>;

    /// Upserts seed records by their natural keys (idempotent).
    async fn upsert_records(&self, records: &Records) -> StoreResult<()>;

    /// The token-signing secret shared by every simtest instance on this store: `proposal` is kept
    /// if none is stored yet, and the stored one is returned. `None` when the store cannot share
    /// one (the embedded store keeps its secret in the data dir instead).
    async fn shared_token_secret(&self, proposal: &str) -> StoreResult<Option<String>> {
        let _ = proposal;
        Ok(None)
    }
}

/// Calls `$callback!` with the signature of every [`Store`] operation (`self` and `StoreResult`
/// left out), so a store that forwards each one (MongoDB into its detached tasks, the metered
/// store into its timer) lists them once, here beside the trait.
macro_rules! for_each_store_operation {
    ($callback:ident) => {
        $callback! {
            fn ping() -> ();
            fn shared_token_secret(proposal: &str) -> Option<String>;
            fn organization(org_id: &OrgId) -> Option<Organization>;
            fn user(org_id: &OrgId, user_id: &UserId) -> Option<User>;
            fn role(org_id: &OrgId, name: &str) -> Option<Role>;
            fn api_key(org_id: &OrgId, key_id: &str) -> Option<ApiKey>;
            fn service(org_id: &OrgId, id: ObjectIdHex) -> Option<Service>;
            fn named(kind: NamedKind, org_id: &OrgId, id: ObjectIdHex) -> Option<NamedRecord>;
            fn metrics(org_id: &OrgId, ids: &[ObjectIdHex]) -> Vec<Metric>;
            fn unit_test_in_live_set(org_id: &OrgId, unit_test_id: ObjectIdHex) -> bool;
            fn insert_unit_test(doc: &UnitTest) -> ();
            fn insert_unit_tests(docs: &[UnitTest]) -> ();
            fn unit_test(org_id: &OrgId, id: ObjectIdHex) -> Option<UnitTest>;
            fn replace_unit_test(previous: &UnitTest, next: &UnitTest) -> Written;
            fn list_unit_tests(query: &ListQuery) -> ListPage;
            fn purge_unit_test(org_id: &OrgId, id: ObjectIdHex) -> Written;
            fn unit_test_versions(org_id: &OrgId, id: ObjectIdHex, up_to: Timestamp, limit: u32) -> Vec<UnitTest>;
            fn insert_unit_test_set(set: &UnitTestSet) -> Written;
            fn unit_test_set(org_id: &OrgId, id: ObjectIdHex) -> Option<UnitTestSet>;
            fn replace_unit_test_set(previous: &UnitTestSet, next: &UnitTestSet) -> Written;
            fn list_unit_test_sets(query: &UnitTestSetQuery) -> SetPage;
            fn claim_key(record: &KeyRecord) -> Claim;
            fn finish_key(record: &KeyRecord) -> ();
            fn upsert_records(records: &Records) -> ();
        }
    };
}
pub(crate) use for_each_store_operation;
