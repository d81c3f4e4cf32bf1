//! The authentication record cache (`--auth-cache-ttl-ms`): records are honoured as read for up to
//! the TTL when another process changes them (the documented revocation delay, which also proves
//! the store was not asked again), never longer, and not at all when the cache is off; records
//! written through this server take effect at once.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// Bob (an acme admin) deleted.
fn bob_deleted() -> serde_json::Value {
    json!({"users": [{"org_id": "acme", "user_id": "bob", "role": "admin", "is_deleted": true}]})
}

async fn status_as_bob(app: &TestApp) -> StatusCode {
    app.list_as(&app.token("acme", "bob"), "acme", "")
        .await
        .status()
}

async fn records_written_here_take_effect_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.auth_cache_ttl = Duration::from_secs(600)).await;
    assert_eq!(status_as_bob(&app).await, StatusCode::OK);
    app.seed(&bob_deleted()).await;
    assert_eq!(status_as_bob(&app).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_here_take_effect_at_once_embedded() {
    records_written_here_take_effect_at_once(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_written_here_take_effect_at_once_mongo() {
    if mongo_available() {
        records_written_here_take_effect_at_once(Backend::Mongo).await;
    }
}

/// Deletes bob through a second connection to the server's database, as another simtest
/// instance or the `seed` command would.
async fn delete_bob_elsewhere(app: &TestApp) {
    let elsewhere = simtest::open_store(app.config())
        .await
        .expect("a second connection");
    simtest::service::seed::seed(elsewhere.as_ref(), &bob_deleted().to_string())
        .await
        .expect("seed elsewhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_deleted_elsewhere_is_honoured_until_the_ttl_ends_then_refused() {
    if !mongo_available() {
        return;
    }
    let ttl = Duration::from_secs(3);
    let app = spawn_app_with(Backend::Mongo, |c| c.auth_cache_ttl = ttl).await;
    let cached_at = Instant::now();
    assert_eq!(status_as_bob(&app).await, StatusCode::OK);
    delete_bob_elsewhere(&app).await;
    let answer = status_as_bob(&app).await;
    if cached_at.elapsed() < ttl {
        assert_eq!(answer, StatusCode::OK, "bob's record is read again");
    }
    tokio::time::sleep(ttl.saturating_sub(cached_at.elapsed()) + Duration::from_millis(200)).await;
    assert_eq!(status_as_bob(&app).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_cache_a_user_deleted_elsewhere_is_refused_at_once() {
    if !mongo_available() {
        return;
    }
    let app = spawn_app(Backend::Mongo).await;
    assert_eq!(
        app.config().auth_cache_ttl,
        Duration::ZERO,
        "off by default"
    );
    assert_eq!(status_as_bob(&app).await, StatusCode::OK);
    delete_bob_elsewhere(&app).await;
    assert_eq!(status_as_bob(&app).await, StatusCode::UNAUTHORIZED);
}
