//! What every handler shares: the stores, the services, authentication, rate limits, maintenance.
//! Built once by `build_app`; cloning it clones handles, not data.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::api::render::Renderings;
use crate::auth::Authenticator;
use crate::clusters::Clusters;
use crate::maintenance::Maintenance;
use crate::ratelimit::RateLimits;
use crate::service::UnitTestService;
use crate::service::sets::UnitTestSetService;
use crate::store::Store;

/// What handlers share: one allocation behind an `Arc`, so the several extractions of a request
/// (middleware, the permissions step, the handler) each bump one counter, not eight (`perf` of a
/// search under 32 clients: 2.5 % of the server's CPU cloning and dropping the eight handles).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The default cluster's store (the only one unless named clusters are configured).
    pub store: Arc<dyn Store>,
    pub clusters: Arc<Clusters>,
    pub unit_tests: UnitTestService,
    pub unit_test_sets: UnitTestSetService,
    pub auth: Arc<Authenticator>,
    pub rate_limits: Arc<RateLimits>,
    pub maintenance: Maintenance,
    /// Unit tests as list and search write them (see `api::render`).
    pub renderings: Arc<Renderings>,
    /// Request bodies larger than this are refused (413); middleware that reads a body whole
    /// (`Idempotency-Key`) reads no more.
    pub max_body_bytes: usize,
    /// The same for an import body.
    pub import_max_bytes: usize,
}

/// The permissions step (`auth::CurrentUser`) needs only the authenticator.
impl FromRef<AppState> for Arc<Authenticator> {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}
