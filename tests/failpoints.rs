//! Fault injection (the `fail` crate's failpoints, compiled in by the `failpoints` feature that only
//! the test build turns on): writes made slow on purpose, past a short request timeout, on both
//! stores. The promise under test: a request is answered 503 `request_timeout` only if nothing of
//! it was written; a write that commits is answered with its real outcome, however late. And a
//! write that keeps losing its race to other writers is reported as that, not as an outage.
//!
//! Its own test binary because failpoints are process-wide: here they cannot slow down the other
//! tests, and `FailScenario` runs these one at a time.

#[allow(dead_code, unused_imports)]
#[path = "api/helpers.rs"]
mod helpers;

use std::time::{Duration, Instant};

use fail::FailScenario;
use reqwest::StatusCode;
use serde_json::{Value, json};

use helpers::*;

const TIMEOUT: Duration = Duration::from_secs(1);
/// Longer than the timeout, so the time is up while the write is held.
const HOLD_MS: u64 = 2000;

/// The failpoints of a backend: (before the deadline check, inside the commit).
fn failpoints(app: &TestApp) -> (&'static str, &'static str) {
    match app.backend {
        Backend::Embedded => ("embedded::before_commit", "embedded::commit"),
        Backend::Mongo => ("mongo::before_write", "mongo::write"),
    }
}

async fn short_timeout_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |c| c.http.request_timeout = TIMEOUT).await
}

/// The write is held past the deadline before it is checked: the client gets 503, and once the
/// held write has gone on, nothing of it is stored.
async fn a_write_held_before_its_commit_past_the_timeout_is_503_and_writes_nothing(app: TestApp) {
    let (before, _) = failpoints(&app);
    // Failpoints are process-wide: the scenario lock keeps the other tests out until the end.
    let _scenario = FailScenario::setup();
    let kept = app.create_ok(&unit_test_body("kept")).await;
    fail::cfg(before, &format!("sleep({HOLD_MS})")).unwrap();

    let created = app.create(&unit_test_body("late")).await;
    let body = assert_error(created, StatusCode::SERVICE_UNAVAILABLE, "request_timeout").await;
    assert!(
        body["detail"].as_str().unwrap().contains("within 1 s"),
        "{body}"
    );
    let updated = app
        .update(&kept, &json!({"description": "changed late"}))
        .await;
    assert_error(updated, StatusCode::SERVICE_UNAVAILABLE, "request_timeout").await;
    let deleted = app.delete(&kept).await;
    assert_error(deleted, StatusCode::SERVICE_UNAVAILABLE, "request_timeout").await;

    fail::remove(before);
    // The held writes wake up after the answers were sent: give them their time, then look.
    tokio::time::sleep(Duration::from_millis(HOLD_MS + 500)).await;
    let page = app.list("").await;
    assert_eq!(names(&page), ["kept"], "nothing new: {page}");
    let kept_now = app.get(&kept).await;
    assert_eq!(kept_now["description"], "Checks that kept works");
    assert_eq!(kept_now["is_deleted"], false);
}

/// The write is held inside its commit past the deadline: the client waits and gets the real
/// outcome (201, 204), never a 503 for a write that landed.
async fn a_commit_that_outlives_the_timeout_is_answered_with_its_real_outcome(app: TestApp) {
    let (_, commit) = failpoints(&app);
    // Failpoints are process-wide: the scenario lock keeps the other tests out until the end.
    let _scenario = FailScenario::setup();
    let kept = app.create_ok(&unit_test_body("kept")).await;
    fail::cfg(commit, &format!("sleep({HOLD_MS})")).unwrap();

    let started = Instant::now();
    let (status, created) = status_and_json(app.create(&unit_test_body("late")).await).await;
    assert!(
        started.elapsed() >= Duration::from_millis(HOLD_MS),
        "the commit was really held past the 1 s timeout"
    );
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let late = created["simulation_unit_test_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let updated = app
        .update(&kept, &json!({"description": "changed late"}))
        .await;
    let (status, body) = status_and_json(updated).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    fail::remove(commit);

    assert_eq!(app.get(&late).await["name"], "late");
    assert_eq!(app.get(&kept).await["description"], "changed late");
    assert_eq!(app.delete(&late).await.status(), StatusCode::NO_CONTENT);
}

/// A write queued behind a held commit: the held one is answered 201; the queued one gets 503
/// only if it wrote nothing (embedded: it waits for the one writer and its time runs out first),
/// or its real outcome (MongoDB: it is sent beside the held one).
async fn a_write_queued_behind_a_slow_commit_gets_503_only_if_it_wrote_nothing(app: TestApp) {
    let (_, commit) = failpoints(&app);
    let _scenario = FailScenario::setup();
    fail::cfg(commit, &format!("sleep({HOLD_MS})")).unwrap();
    let held = {
        let request = app
            .client
            .post(app.url("/v1/acme/simulation/unit_test/"))
            .bearer_auth(app.admin_token())
            .json(&unit_test_body("held"));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = status_and_json(app.create(&unit_test_body("queued")).await).await;
    fail::remove(commit);
    assert_eq!(held.await.unwrap(), StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(HOLD_MS)).await;
    let stored = names(&app.list("").await);
    match status {
        StatusCode::SERVICE_UNAVAILABLE => {
            assert_eq!(body["error_code"], "request_timeout", "{body}");
            assert_eq!(stored, ["held"], "a 503 wrote nothing");
        }
        StatusCode::CREATED => assert!(stored.contains(&"queued".to_owned()), "{stored:?}"),
        other => panic!("unexpected {other}: {body}"),
    }
    if app.backend == Backend::Embedded {
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "one writer at a time: {body}"
        );
    }
}

/// Every write of an update or a delete loses its race to another writer: once its attempts are
/// spent the request is 503 `too_many_concurrent_changes` (not `service_unavailable`: the store is
/// fine) with a short `Retry-After`, and nothing of it was written.
async fn writes_that_keep_losing_their_race_are_503_too_many_concurrent_changes(app: TestApp) {
    let _scenario = FailScenario::setup();
    let kept = app.create_ok(&unit_test_body("kept")).await;
    fail::cfg("service::lose_race", "return").unwrap();
    let updated = app.update(&kept, &json!({"description": "never"})).await;
    assert_eq!(updated.headers()["retry-after"], "1");
    let code = "too_many_concurrent_changes";
    let body = assert_error(updated, StatusCode::SERVICE_UNAVAILABLE, code).await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("concurrent changes"),
        "{body}"
    );
    let deleted = app.delete(&kept).await;
    assert_error(deleted, StatusCode::SERVICE_UNAVAILABLE, code).await;
    fail::remove("service::lose_race");

    let now = app.get(&kept).await;
    assert_eq!(now["description"], "Checks that kept works");
    assert_eq!(now["is_deleted"], false);
}

/// Writes queued behind a slow commit share the next commit, each with its own outcome: a taken
/// name is refused (409) without failing the others. Embedded store only (one writer; MongoDB sends
/// each write by itself). The commit and write counters are process-wide: other tests' writes add
/// one commit per write at most, so they cannot make up commits saved here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_queued_behind_a_slow_commit_share_the_next_commit_embedded() {
    let app = spawn_app_with(Backend::Embedded, |c| {
        c.http.request_timeout = Duration::from_secs(30)
    })
    .await;
    let _scenario = FailScenario::setup();
    let saved = async || {
        let text = metrics_text(&app.client, &app.url("")).await;
        counter(&text, "simtest_embedded_writes_total")
            - counter(&text, "simtest_embedded_commits_total")
    };
    let saved_before = saved().await;
    let commit = "embedded::commit";
    fail::cfg(commit, "sleep(1000)").unwrap();
    let create = |name: &str| {
        let request = app
            .client
            .post(app.url("/v1/acme/simulation/unit_test/"))
            .bearer_auth(app.admin_token())
            .json(&unit_test_body(name));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    let held = create("held");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Queued while the writer is held: the eight new names and one taken by the held write.
    let queued: Vec<_> = (0..8)
        .map(|i| create(&format!("queued {i}")))
        .chain([create("held")])
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    fail::remove(commit);
    assert_eq!(held.await.unwrap(), StatusCode::CREATED);
    let mut statuses = Vec::new();
    for q in queued {
        statuses.push(q.await.unwrap());
    }
    assert_eq!(statuses[..8], [StatusCode::CREATED; 8]);
    assert_eq!(statuses[8], StatusCode::CONFLICT);
    let mut stored = names(&app.list("").await);
    stored.sort();
    assert_eq!(stored.len(), 9, "{stored:?}");
    // All eight arrive during the held commit (700 ms) in practice, saving 7 commits; half of
    // them sharing is the least that proves it.
    let saved = saved().await - saved_before;
    assert!(
        saved >= 4,
        "queued writes shared commits: {saved} commits saved"
    );
}

/// A create with an `Idempotency-Key` that times out (503, nothing written) does not hold its key:
/// the retry with the key runs at once and creates, instead of waiting out the key (409) or getting
/// the 503 again.
async fn a_create_that_timed_out_frees_its_idempotency_key_for_the_retry(app: TestApp) {
    let (before, _) = failpoints(&app);
    let _scenario = FailScenario::setup();
    let create = || {
        app.client
            .post(app.url("/v1/acme/simulation/unit_test/"))
            .bearer_auth(app.admin_token())
            .header("Idempotency-Key", "timed-out-1")
            .json(&unit_test_body("retried"))
            .send()
    };
    fail::cfg(before, &format!("sleep({HOLD_MS})")).unwrap();
    let first = create().await.unwrap();
    assert_error(first, StatusCode::SERVICE_UNAVAILABLE, "request_timeout").await;
    fail::remove(before);
    // The held write wakes up and gives up; the released key is free by then.
    tokio::time::sleep(Duration::from_millis(HOLD_MS + 500)).await;
    let (status, body) = status_and_json(create().await.unwrap()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(names(&app.list("").await), ["retried"]);
}

/// An import whose time runs out part-way (each commit held, the rows written a batch at a time):
/// the rows written by then are not hidden behind a 503. The answer is the report, and it says
/// exactly which rows landed; the others are refused as unavailable and written nowhere.
async fn an_import_whose_time_runs_out_part_way_reports_the_rows_that_landed(app: TestApp) {
    let (_, commit) = failpoints(&app);
    let _scenario = FailScenario::setup();
    let rows: String = (0..80)
        .map(|i| format!("{}\n", unit_test_body(&format!("Imported {i:02}"))))
        .collect();
    fail::cfg(commit, "sleep(300)").unwrap();
    let response = app
        .client
        .post(app.url("/v1/acme/simulation/unit_test/import"))
        .bearer_auth(app.admin_token())
        .header("content-type", "application/x-ndjson")
        .body(rows)
        .send()
        .await
        .unwrap();
    let (status, report) = status_and_json(response).await;
    fail::remove(commit);
    assert_eq!(status, StatusCode::OK, "{report}");
    let results = report["results"].as_array().unwrap();
    let landed: Vec<String> = (results.iter())
        .filter(|r| r["status"] == 201)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let refused = results.iter().filter(|r| r["status"] == 503).count();
    assert_eq!(report["created"], landed.len(), "{report}");
    assert!(
        !landed.is_empty() && refused > 0,
        "the time ran out part-way: {report}"
    );
    let others: Vec<&Value> = (results.iter())
        .filter(|r| r["status"] != 201 && r["status"] != 503)
        .collect();
    assert_eq!(
        landed.len() + refused,
        80,
        "rows neither written nor unavailable: {others:?}"
    );
    // Nothing refused is written later: what the store holds is exactly what the report says.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let mut stored: Vec<String> = (app.list("limit=100").await["simulation_unit_tests"].as_array())
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    let mut landed = landed;
    stored.sort();
    landed.sort();
    assert_eq!(stored, landed);
}

backend_tests!(
    spawn: super::short_timeout_app;
    a_write_held_before_its_commit_past_the_timeout_is_503_and_writes_nothing,
    a_commit_that_outlives_the_timeout_is_answered_with_its_real_outcome,
    a_write_queued_behind_a_slow_commit_gets_503_only_if_it_wrote_nothing,
    writes_that_keep_losing_their_race_are_503_too_many_concurrent_changes,
    a_create_that_timed_out_frees_its_idempotency_key_for_the_retry,
    an_import_whose_time_runs_out_part_way_reports_the_rows_that_landed,
);
