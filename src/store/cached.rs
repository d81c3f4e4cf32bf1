//! Organization, user and role records kept for a short time (`--auth-cache-ttl-ms`, off by
//! default), so authenticating a caller who came recently costs no store round trip (on MongoDB,
//! two per request otherwise).
//!
//! The price is a revocation delay: a user, role or organization deleted or changed in the store
//! by another process is honoured as it was for up to the TTL. Writes of records through this
//! process (seeding) clear the cache at once. Absent records are kept too (a deleted user stays
//! refused), and every cache is bounded, so callers naming made-up orgs or users cannot grow it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use moka::future::Cache;

use super::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreError, StoreResult, User,
};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::{ObjectIdHex, UnitTest, UserId};

/// Records of each kind kept at most; a few MiB at this size.
const CAPACITY: u64 = 10_000;

/// A [`Store`] whose organization, user and role lookups are answered from memory for a while.
pub struct CachedRecords {
    inner: Arc<dyn Store>,
    organizations: Cache<String, Option<Organization>>,
    users: Cache<(String, UserId), Option<User>>,
    roles: Cache<(String, String), Option<Role>>,
}

impl CachedRecords {
    /// `inner` with its records kept for `ttl`; `inner` itself when `ttl` is zero.
    pub fn wrap(inner: Arc<dyn Store>, ttl: Duration) -> Arc<dyn Store> {
        if ttl.is_zero() {
            return inner;
        }
        fn cache<K, V>(ttl: Duration) -> Cache<K, V>
        where
            K: std::hash::Hash + Eq + Send + Sync + 'static,
            V: Clone + Send + Sync + 'static,
        {
            Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_live(ttl)
                .build()
        }
        Arc::new(Self {
            inner,
            organizations: cache(ttl),
            users: cache(ttl),
            roles: cache(ttl),
        })
    }

    fn forget_all(&self) {
        self.organizations.invalidate_all();
        self.users.invalidate_all();
        self.roles.invalidate_all();
    }
}

/// Concurrent misses of one key share one store lookup; its error reaches each of them.
fn shared(error: Arc<StoreError>) -> StoreError {
    (*error).clone()
}

#[async_trait]
impl Store for CachedRecords {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }

    async fn organization(&self, org_id: &str) -> StoreResult<Option<Organization>> {
        self.organizations
            .try_get_with(org_id.to_owned(), self.inner.organization(org_id))
            .await
            .map_err(shared)
    }

    async fn user(&self, org_id: &str, user_id: &UserId) -> StoreResult<Option<User>> {
        let key = (org_id.to_owned(), user_id.clone());
        self.users
            .try_get_with(key, self.inner.user(org_id, user_id))
            .await
            .map_err(shared)
    }

    async fn role(&self, org_id: &str, name: &str) -> StoreResult<Option<Role>> {
        let key = (org_id.to_owned(), name.to_owned());
        self.roles
            .try_get_with(key, self.inner.role(org_id, name))
            .await
            .map_err(shared)
    }

    /// Never cached: a deleted or expired key stops signing in at once.
    async fn api_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<ApiKey>> {
        self.inner.api_key(org_id, key_id).await
    }

    async fn service(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        self.inner.service(org_id, id).await
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &str,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        self.inner.named(kind, org_id, id).await
    }

    async fn metrics(&self, org_id: &str, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        self.inner.metrics(org_id, ids).await
    }

    async fn unit_test_in_live_set(
        &self,
        org_id: &str,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        self.inner.unit_test_in_live_set(org_id, unit_test_id).await
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        self.inner.insert_unit_test(doc).await
    }

    async fn unit_test(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        self.inner.unit_test(org_id, id).await
    }

    async fn replace_unit_test(&self, previous: &UnitTest, next: &UnitTest) -> StoreResult<bool> {
        self.inner.replace_unit_test(previous, next).await
    }

    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage> {
        self.inner.list_unit_tests(query).await
    }

    async fn upsert_records(&self, records: &Records) -> StoreResult<()> {
        let result = self.inner.upsert_records(records).await;
        // Also after a failure: part of the records may have been written.
        self.forget_all();
        result
    }

    async fn shared_token_secret(&self, proposal: &str) -> StoreResult<Option<String>> {
        self.inner.shared_token_secret(proposal).await
    }
}
