//! simtest: simulation unit tests behind the Amigo classic REST surface.
//!
//! `build_app` wires configuration, store, services and routes; `main.rs` and the tests share it.

pub mod api;
pub mod auth;
pub mod clusters;
pub mod config;
pub mod domain;
pub mod error;
pub mod maintenance;
pub mod ratelimit;
pub mod service;
mod state;
pub mod store;
pub mod telemetry;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;

use auth::{Authenticator, TokenKeys};
use clusters::Clusters;
pub use config::{Config, MongoConfig};
use maintenance::Maintenance;
use ratelimit::RateLimits;
use service::UnitTestService;
pub use state::{AppState, Shared};
use store::Store;
use store::cached::CachedRecords;
use store::embedded::EmbeddedStore;
use store::mongo::MongoStore;

/// Why the application cannot start; `main` prints it on one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("named MongoDB clusters need a default one: give --mongodb-uri too")]
    ClustersWithoutDefault,
    #[error(transparent)]
    Embedded(#[from] store::embedded::OpenError),
    #[error(transparent)]
    Connect(#[from] store::mongo::ConnectError),
    #[error("cannot apply the migrations to MongoDB database {database:?} at {uri}: {source}")]
    Migrate {
        database: String,
        uri: String,
        source: store::StoreError,
    },
    #[error("MongoDB cluster {name:?}: {source}")]
    Cluster {
        name: String,
        source: Box<StartError>,
    },
    #[error("cannot read the shared token secret: {0}")]
    SharedSecret(store::StoreError),
    #[error(transparent)]
    Secret(#[from] config::SecretError),
    #[error("invalid token configuration: {0}")]
    Token(#[from] auth::token::TokenError),
}

/// A built application: the router to serve and the state behind it.
pub struct App {
    pub router: Router,
    pub state: AppState,
}

/// Opens the configured stores (the default one and any named clusters) and builds the application.
pub async fn build_app(config: &Config) -> Result<App, StartError> {
    if !config.mongodb_clusters.is_empty() && config.mongodb.is_none() {
        return Err(StartError::ClustersWithoutDefault);
    }
    let store = open_store(config).await?;
    let mut named = BTreeMap::new();
    if let Some(default) = &config.mongodb {
        for (name, uri) in &config.mongodb_clusters {
            let cluster = MongoConfig {
                uri: uri.clone(),
                ..default.clone()
            };
            let cluster_store: Arc<dyn Store> = Arc::new(open_mongo(&cluster).await.map_err(
                |e| StartError::Cluster {
                    name: name.clone(),
                    source: Box::new(e),
                },
            )?);
            named.insert(name.clone(), cluster_store);
        }
    }
    build_app_with_clusters(config, store, named).await
}

/// Opens the store the configuration names: MongoDB, migrated to the current schema, when a URI
/// is configured; the embedded store in the data dir otherwise.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    match &config.mongodb {
        Some(mongo) => Ok(Arc::new(open_mongo(mongo).await?)),
        None => Ok(Arc::new(EmbeddedStore::open(&config.data_dir)?)),
    }
}

/// Connects to MongoDB and applies the migrations it lacks (fails when MongoDB cannot be reached).
pub async fn open_mongo(mongo: &MongoConfig) -> Result<MongoStore, StartError> {
    let store = MongoStore::connect(&mongo.uri, &mongo.database, mongo.write_concern).await?;
    store
        .migrate()
        .await
        .map_err(|source| StartError::Migrate {
            database: mongo.database.clone(),
            uri: config::redact_uri(&mongo.uri),
            source,
        })?;
    store.spawn_search_grams_backfill();
    Ok(store)
}

/// The signing keys: the configured secret; else, on MongoDB, the one every instance shares through
/// the database; else the one kept in the data dir.
pub async fn token_keys(config: &Config, store: &dyn Store) -> Result<TokenKeys, StartError> {
    let shared = match &config.jwt_secret {
        Some(_) => None,
        None => store
            .shared_token_secret(&config::new_secret())
            .await
            .map_err(StartError::SharedSecret)?,
    };
    let secret = match shared {
        Some(secret) => secret.into_bytes(),
        None => config.token_secret()?,
    };
    Ok(
        TokenKeys::new(&secret, &config.jwt_issuer, config.token_ttl_seconds)
            .and_then(|keys| keys.with_max_lifetime(config.token_max_lifetime_seconds))?,
    )
}

/// The signing keys for the `token` command: like [`token_keys`], without opening the embedded
/// store (a running server holds it).
pub async fn token_keys_for_cli(config: &Config) -> Result<TokenKeys, StartError> {
    match (&config.mongodb, &config.jwt_secret) {
        (Some(mongo), None) => {
            let store =
                MongoStore::connect(&mongo.uri, &mongo.database, mongo.write_concern).await?;
            token_keys(config, &store).await
        }
        _ => Ok(TokenKeys::new(
            &config.token_secret()?,
            &config.jwt_issuer,
            config.token_ttl_seconds,
        )
        .and_then(|keys| keys.with_max_lifetime(config.token_max_lifetime_seconds))?),
    }
}

/// Builds the application on one store (no named clusters).
pub async fn build_app_with_store(
    config: &Config,
    store: Arc<dyn Store>,
) -> Result<App, StartError> {
    build_app_with_clusters(config, store, BTreeMap::new()).await
}

pub async fn build_app_with_clusters(
    config: &Config,
    store: Arc<dyn Store>,
    named: BTreeMap<String, Arc<dyn Store>>,
) -> Result<App, StartError> {
    let keys = token_keys(config, store.as_ref()).await?;
    // Records cached outside the metering, so the store metrics count real lookups only.
    let wrap = |s| CachedRecords::wrap(telemetry::MeteredStore::wrap(s), config.auth_cache_ttl);
    let store = wrap(store);
    let named = named.into_iter().map(|(name, s)| (name, wrap(s))).collect();
    let state = AppState::new(Shared {
        store: store.clone(),
        clusters: Arc::new(Clusters::new(store, named)),
        unit_tests: UnitTestService,
        unit_test_sets: crate::service::sets::UnitTestSetService,
        auth: Arc::new(Authenticator::new(keys, config.sign_in)),
        rate_limits: Arc::new(RateLimits::new(config.rate_limits)),
        maintenance: Maintenance::new(config.maintenance_file.clone()),
        renderings: Arc::default(),
        max_body_bytes: config.http.max_body_bytes,
        import_max_bytes: config.http.import_max_bytes,
    });
    let router = api::router(state.clone(), &config.http, config.rate_limits);
    Ok(App { router, state })
}

/// Serves `router` on `listener` until `shutdown` completes, with each connection's peer address
/// known to the handlers (the per-address sign-in budget needs it).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Housekeeping a serving process runs beside the requests; stopped when dropped.
pub struct BackgroundTasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for BackgroundTasks {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}

/// How often idle rate-limit keys are dropped.
const HOUSEKEEPING_PERIOD: std::time::Duration = std::time::Duration::from_secs(30);

/// Follows the maintenance flag, forgets idle rate-limit keys, keeps metric histograms bounded.
pub fn start_background_tasks(state: &AppState) -> BackgroundTasks {
    let limits = state.rate_limits.clone();
    let housekeeping = tokio::spawn(async move {
        let mut tick = tokio::time::interval(HOUSEKEEPING_PERIOD);
        loop {
            tick.tick().await;
            limits.forget_idle();
        }
    });
    BackgroundTasks(vec![
        state.maintenance.watch(),
        housekeeping,
        telemetry::keep_metrics_bounded(),
    ])
}
