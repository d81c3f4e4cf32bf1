//! simtest: simulation unit tests behind the Amigo classic REST surface.
//!
//! `build_app` wires configuration, store, services and routes; `main.rs` and the tests share it.

pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod service;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use auth::{Authenticator, TokenKeys};
pub use config::Config;
use service::UnitTestService;
use store::Store;
use store::embedded::EmbeddedStore;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub unit_tests: UnitTestService,
    pub auth: Arc<Authenticator>,
}

/// A built application: the router to serve and the state behind it.
pub struct App {
    pub router: Router,
    pub state: AppState,
}

/// Opens the configured store and builds the application on it.
pub async fn build_app(config: &Config) -> anyhow::Result<App> {
    let store: Arc<dyn Store> = Arc::new(open_store(config)?);
    build_app_with_store(config, store)
}

/// Opens the store the configuration names.
pub fn open_store(config: &Config) -> anyhow::Result<EmbeddedStore> {
    Ok(EmbeddedStore::open(&config.data_dir)?)
}

/// The signing keys the configuration names.
pub fn token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let secret = config.token_secret()?;
    TokenKeys::new(&secret, &config.jwt_issuer, config.token_ttl_seconds)
        .context("invalid token configuration")
}

pub fn build_app_with_store(config: &Config, store: Arc<dyn Store>) -> anyhow::Result<App> {
    let keys = token_keys(config)?;
    let state = AppState {
        store: store.clone(),
        unit_tests: UnitTestService::new(store.clone()),
        auth: Arc::new(Authenticator::new(store, keys)),
    };
    let router = api::router(state.clone(), config.max_body_bytes);
    Ok(App { router, state })
}
