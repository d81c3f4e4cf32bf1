//! Prometheus metrics: the process-wide recorder, and a store decorator that times every store call.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::query::{ListPage, ListQuery};
use crate::domain::{ObjectIdHex, UnitTest, UserId};
use crate::store::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreResult, User,
};

pub const HTTP_REQUESTS: &str = "simtest_http_requests_total";
pub const HTTP_DURATION: &str = "simtest_http_request_duration_seconds";
pub const STORE_DURATION: &str = "simtest_store_operation_duration_seconds";
pub const RATE_LIMITED: &str = "simtest_rate_limit_rejections_total";

/// Seconds; from a fast cached read to a request timing out.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The process-wide Prometheus recorder (installed on first use; every app in the process shares it).
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!(
                "a metrics recorder was already installed; /metrics shows only simtest's own"
            );
        }
        handle
    })
}

/// A [`Store`] that records how long each operation takes and whether it failed.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        prometheus();
        Arc::new(Self { inner })
    }
}

async fn timed<T>(
    operation: &'static str,
    work: impl Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    let started = Instant::now();
    let result = work.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    metrics::histogram!(STORE_DURATION, "operation" => operation, "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    result
}

#[async_trait]
impl Store for MeteredStore {
    async fn ping(&self) -> StoreResult<()> {
        timed("ping", self.inner.ping()).await
    }

    async fn organization(&self, org_id: &str) -> StoreResult<Option<Organization>> {
        timed("organization", self.inner.organization(org_id)).await
    }

    async fn user(&self, org_id: &str, user_id: &UserId) -> StoreResult<Option<User>> {
        timed("user", self.inner.user(org_id, user_id)).await
    }

    async fn role(&self, org_id: &str, name: &str) -> StoreResult<Option<Role>> {
        timed("role", self.inner.role(org_id, name)).await
    }

    async fn api_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<ApiKey>> {
        timed("api_key", self.inner.api_key(org_id, key_id)).await
    }

    async fn service(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        timed("service", self.inner.service(org_id, id)).await
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &str,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        timed("named", self.inner.named(kind, org_id, id)).await
    }

    async fn metrics(&self, org_id: &str, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        timed("metrics", self.inner.metrics(org_id, ids)).await
    }

    async fn unit_test_in_live_set(
        &self,
        org_id: &str,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        timed(
            "unit_test_in_live_set",
            self.inner.unit_test_in_live_set(org_id, unit_test_id),
        )
        .await
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        timed("insert_unit_test", self.inner.insert_unit_test(doc)).await
    }

    async fn unit_test(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        timed("unit_test", self.inner.unit_test(org_id, id)).await
    }

    async fn replace_unit_test(&self, previous: &UnitTest, next: &UnitTest) -> StoreResult<bool> {
        timed(
            "replace_unit_test",
            self.inner.replace_unit_test(previous, next),
        )
        .await
    }

    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage> {
        timed("list_unit_tests", self.inner.list_unit_tests(query)).await
    }

    async fn upsert_records(&self, records: &Records) -> StoreResult<()> {
        timed("upsert_records", self.inner.upsert_records(records)).await
    }

    async fn shared_token_secret(&self, proposal: &str) -> StoreResult<Option<String>> {
        timed(
            "shared_token_secret",
            self.inner.shared_token_secret(proposal),
        )
        .await
    }
}
