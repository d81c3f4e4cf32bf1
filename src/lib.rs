//! simtest: simulation unit tests behind the Amigo classic REST surface.
//!
//! `build_app` wires configuration, store, services and routes; `main.rs` and the tests share it.

pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod maintenance;
pub mod ratelimit;
pub mod service;
pub mod store;
pub mod telemetry;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use auth::{Authenticator, TokenKeys};
pub use config::{Config, MongoConfig};
use maintenance::Maintenance;
use ratelimit::RateLimits;
use service::UnitTestService;
use store::Store;
use store::embedded::EmbeddedStore;
use store::mongo::MongoStore;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub unit_tests: UnitTestService,
    pub auth: Arc<Authenticator>,
    pub rate_limits: Arc<RateLimits>,
    pub maintenance: Maintenance,
}

/// A built application: the router to serve and the state behind it.
pub struct App {
    pub router: Router,
    pub state: AppState,
}

/// Opens the configured store and builds the application on it.
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    let store = open_store(config).await?;
    build_app_with_store(config, store)
}

/// Opens the store the configuration names: MongoDB, migrated to the current schema, when a URI
/// is configured; the embedded store in the data dir otherwise.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.mongodb {
        Some(mongo) => Ok(Arc::new(open_mongo(mongo).await?)),
        None => Ok(Arc::new(EmbeddedStore::open(&config.data_dir)?)),
    }
}

/// Connects to MongoDB and applies the migrations it lacks (fails when MongoDB cannot be reached).
pub async fn open_mongo(mongo: &MongoConfig) -> anyhow::Result<MongoStore> {
    let store = MongoStore::connect(&mongo.uri, &mongo.database, mongo.write_concern).await?;
    store.migrate().await.with_context(|| {
        format!(
            "cannot apply the migrations to MongoDB database {:?} at {}",
            mongo.database,
            config::redact_uri(&mongo.uri)
        )
    })?;
    Ok(store)
}

/// The signing keys the configuration names.
pub fn token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let secret = config.token_secret()?;
    TokenKeys::new(&secret, &config.jwt_issuer, config.token_ttl_seconds)
        .context("invalid token configuration")
}

pub fn build_app_with_store(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<App> {
    let keys = token_keys(config)?;
    let store = telemetry::MeteredStore::wrap(store);
    let state = AppState {
        store: store.clone(),
        unit_tests: UnitTestService::new(store.clone()),
        auth: Arc::new(Authenticator::new(store, keys)),
        rate_limits: Arc::new(RateLimits::new(config.rate_limits)),
        maintenance: Maintenance::new(config.maintenance_file.clone()),
    };
    let router = api::router(state.clone(), &config.http);
    Ok(App { router, state })
}

/// Housekeeping a serving process runs beside the requests; stopped when dropped.
pub struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// How often idle rate-limit keys are dropped and metric histograms are compacted.
const HOUSEKEEPING_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

/// Follows the maintenance flag, forgets idle rate-limit keys, keeps metric histograms bounded.
pub fn start_background_tasks(state: &AppState) -> BackgroundTasks {
    let limits = state.rate_limits.clone();
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
        loop {
            tick.tick().await;
            limits.forget_idle();
            telemetry::prometheus().run_upkeep();
        }
    });
    BackgroundTasks(vec![state.maintenance.watch(), housekeeping])
}
