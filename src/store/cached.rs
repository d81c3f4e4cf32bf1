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
    StoreError, StoreResult, User, Written,
};
use crate::domain::idempotency::{Claim, KeyRecord};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserId};

/// Records of each kind kept at most; a few MiB at this size.
const CAPACITY: u64 = 10_000;

/// A [`Store`] whose organization, user and role lookups are answered from memory for a while.
pub struct CachedRecords {
    inner: Arc<dyn Store>,
    organizations: Cache<OrgId, Option<Organization>>,
    users: Cache<(OrgId, UserId), Option<User>>,
    roles: Cache<(OrgId, String), Option<Role>>,
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

/// `lookup`'s answer, kept in `cache` under `key`; concurrent misses of one key share one lookup,
/// and its error reaches each of them.
async fn cached<K, V>(
    cache: &Cache<K, V>,
    key: K,
    lookup: impl Future<Output = StoreResult<V>>,
) -> StoreResult<V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    cache
        .try_get_with(key, lookup)
        .await
        .map_err(|error: Arc<StoreError>| (*error).clone())
}

/// The body of each store operation: the record lookups through their cache, record writes
/// clearing it, everything else (API keys too: a deleted key stops signing in at once) straight
/// to the store.
macro_rules! through_cache {
    ($store:ident, organization, $org_id:ident) => {
        cached(&$store.organizations, $org_id.to_owned(), $store.inner.organization($org_id)).await
    };
    ($store:ident, user, $org_id:ident, $user_id:ident) => {{
        let key = ($org_id.to_owned(), $user_id.clone());
        cached(&$store.users, key, $store.inner.user($org_id, $user_id)).await
    }};
    ($store:ident, role, $org_id:ident, $name:ident) => {{
        let key = ($org_id.to_owned(), $name.to_owned());
        cached(&$store.roles, key, $store.inner.role($org_id, $name)).await
    }};
    ($store:ident, upsert_records, $records:ident) => {{
        let result = $store.inner.upsert_records($records).await;
        // Also after a failure: part of the records may have been written.
        $store.forget_all();
        result
    }};
    ($store:ident, $name:ident $(, $arg:ident)*) => {
        $store.inner.$name($($arg),*).await
    };
}

macro_rules! cached_store {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl Store for CachedRecords {
            $(async fn $name(&self, $($arg: $ty),*) -> StoreResult<$out> {
                through_cache!(self, $name $(, $arg)*)
            })*
        }
    };
}

super::for_each_store_operation!(cached_store);
