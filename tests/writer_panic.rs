//! A write that panics after its commit: the failpoint makes the writer panic, and failpoints are
//! process-wide, so this runs in a binary of its own (in `failpoints.rs` another test's app,
//! seeding outside the scenario lock, could hit the panic).

#[allow(dead_code, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;

use fail::FailScenario;
use reqwest::StatusCode;
use serde_json::json;

use helpers::*;

/// A batch that panics after its commit, before the catalog takes it in, leaves a catalog that
/// lacks a stored write. Closing must not save that catalog as the snapshot the next start
/// loads: the restarted server reads the rows and lists the write. (An update, so the number of
/// unit tests cannot tell the snapshot is stale.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_that_missed_a_commit_is_not_saved_for_the_next_start() {
    let app = spawn_app(Backend::Embedded).await;
    let _scenario = FailScenario::setup();
    let kept = app.create_ok(&unit_test_body("kept")).await;
    fail::cfg("embedded::after_commit", "panic").unwrap();
    let updated = app
        .update(&kept, &json!({"description": "rewritten"}))
        .await;
    assert_eq!(updated.status(), StatusCode::INTERNAL_SERVER_ERROR);
    fail::remove("embedded::after_commit");
    let app = app.restart().await;
    assert_eq!(
        app.get(&kept).await["description"],
        "rewritten",
        "committed"
    );
    assert_eq!(names(&app.search("query=rewritten").await), ["kept"]);
}
