//! Prometheus metrics: the process-wide recorder, and a store decorator that times every store call.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::domain::idempotency::{Claim, KeyRecord};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserId};
use crate::store::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreResult, User, Written,
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

/// How often the histograms' samples are folded into their buckets. The exporter keeps every
/// sample recorded until then, so between two upkeeps memory grows with the request rate (about
/// 60 bytes a request: at 25k requests/s, 1.5 MB a second).
pub const METRICS_UPKEEP: Duration = Duration::from_secs(1);

/// Folds the histograms' samples into their buckets every [`METRICS_UPKEEP`], whether or not
/// anyone scrapes `/metrics`; stops when the returned task is aborted.
pub fn keep_metrics_bounded() -> tokio::task::JoinHandle<()> {
    let handle = prometheus();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        loop {
            tick.tick().await;
            handle.run_upkeep();
        }
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

/// The [`Store`] impl, given every operation's signature: each one timed under its name.
macro_rules! timed_store {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl Store for MeteredStore {
            $(async fn $name(&self, $($arg: $ty),*) -> StoreResult<$out> {
                timed(stringify!($name), self.inner.$name($($arg),*)).await
            })*
        }
    };
}

crate::store::for_each_store_operation!(timed_store);
