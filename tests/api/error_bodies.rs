//! The error bodies clients see (`detail` texts and `error_code`s), as `insta` snapshots taken
//! through the real server; the store-dependent ones on both stores against one snapshot each.
//!
//! A changed text fails here: review it (`cargo insta review`) as the API change it is.

use std::time::Duration;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use simtest::ratelimit::Limited;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    authentication_and_permission_errors,
    not_found_errors,
    conflict_and_bad_request_errors,
    validation_errors
);

/// The answers of a scenario, in the order they were asked, each with its status and body.
#[derive(Default)]
struct Answers {
    answers: Vec<Value>,
    /// Values that change from run to run (ids), each replaced by a stable name.
    redactions: Vec<(String, &'static str)>,
}

impl Answers {
    fn redact(&mut self, value: &str, name: &'static str) {
        self.redactions.push((value.to_owned(), name));
    }

    async fn send(&mut self, case: &str, request: RequestBuilder) {
        self.add(case, request.send().await.unwrap()).await;
    }

    async fn add(&mut self, case: &str, response: Response) {
        let (status, body) = status_and_json(response).await;
        let mut text = body.to_string();
        for (value, name) in &self.redactions {
            text = text.replace(value, name);
        }
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(
            body["error_code"].is_string(),
            "{case}: not an error body: {status} {body}"
        );
        self.answers
            .push(json!({"case": case, "status": status.as_u16(), "body": body}));
    }
}

/// A request the helpers do not build (no credentials, odd methods and bodies).
fn raw(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    app.client.request(method, app.url(path))
}

const COLLECTION: &str = "/v1/acme/simulation/unit_test/";

async fn authentication_and_permission_errors(app: TestApp) {
    let mut answers = Answers::default();
    let list = || raw(&app, Method::GET, COLLECTION);
    let sign_in = || raw(&app, Method::POST, "/v1/acme/user/signin_with_api_key");
    answers.send("no credentials", list()).await;
    let garbage = list().bearer_auth("not-a-token");
    answers.send("a token that is not a JWT", garbage).await;
    let unknown_org = list().bearer_auth(app.token("initech", "alice"));
    answers
        .send(
            "a token of an organization that does not exist",
            unknown_org,
        )
        .await;
    let deleted_user = list().bearer_auth(app.token("acme", "dora"));
    answers.send("a deleted user's token", deleted_user).await;
    let other_user = list().basic_auth("acme_bob", Some(app.admin_token()));
    answers
        .send("Basic with a username that is not the token's", other_user)
        .await;
    let wrong_secret = sign_in()
        .header("x-api-key", "wrong")
        .header("x-api-key-id", "acme-ci")
        .header("x-user-id", "alice");
    answers
        .send("sign-in with a wrong secret", wrong_secret)
        .await;
    let viewer = app.token("acme", "victor");
    let created = app
        .create_as(&viewer, "acme", &unit_test_body("Viewer"))
        .await;
    answers.add("a viewer creates", created).await;
    let id = app.create_ok(&unit_test_body("Held")).await;
    answers.redact(&id, "<id>");
    let author = app.token("acme", "arthur");
    let deleted = app.delete_as(&author, "acme", &id).await;
    answers.add("an author deletes", deleted).await;
    insta::assert_json_snapshot!("authentication_and_permission", answers.answers);
}

async fn not_found_errors(app: TestApp) {
    let mut answers = Answers::default();
    let admin = app.admin_token();
    let listed = app.list_as(&admin, "initech", "").await;
    answers
        .add("a path organization that does not exist", listed)
        .await;
    let sign_in = raw(&app, Method::POST, "/v1/initech/user/signin_with_api_key")
        .header("x-api-key", "acme-ci-secret")
        .header("x-api-key-id", "acme-ci")
        .header("x-user-id", "alice");
    answers
        .send("sign-in to an organization that does not exist", sign_in)
        .await;
    let updated = app.update(UNKNOWN_ID, &json!({"run_count": 2})).await;
    answers.add("update of an unknown unit test", updated).await;
    let deleted = app.delete(UNKNOWN_ID).await;
    answers.add("delete of an unknown unit test", deleted).await;
    let id = app.create_ok(&unit_test_body("Deleted twice")).await;
    answers.redact(&id, "<id>");
    app.delete(&id).await;
    let deleted = app.delete(&id).await;
    answers.add("delete of a deleted unit test", deleted).await;
    let references = [
        ("/service_id", json!(SERVICE_INACTIVE)),
        ("/persona_id", json!(PERSONA_DELETED)),
        ("/scenario_id", json!(SCENARIO_DELETED)),
        ("/service_version_set_name", json!("no-such-set")),
        ("/success_criterions/0/metric_id", json!(METRIC_DELETED)),
    ];
    for (pointer, value) in references {
        let mut body = unit_test_body("Bad references");
        *body.pointer_mut(pointer).unwrap() = value;
        let created = app.create(&body).await;
        answers
            .add(&format!("create with an unknown {pointer}"), created)
            .await;
    }
    let unknown_route = raw(&app, Method::GET, "/v1/acme/simulation/nothing").bearer_auth(&admin);
    answers.send("an unknown route", unknown_route).await;
    let put = raw(&app, Method::PUT, COLLECTION).bearer_auth(&admin);
    answers.send("a method the route does not serve", put).await;
    insta::assert_json_snapshot!("not_found", answers.answers);
}

async fn conflict_and_bad_request_errors(app: TestApp) {
    let mut answers = Answers::default();
    app.create_ok(&unit_test_body("Taken")).await;
    let taken = app.create(&unit_test_body("Taken")).await;
    answers.add("create with a name in use", taken).await;
    let mut mismatch = unit_test_body("Mismatch");
    mismatch["success_criterions"][0]["metric_id"] = json!(METRIC_NUM);
    let mismatch = app.create(&mismatch).await;
    answers
        .add("a boolean criterion on a numerical metric", mismatch)
        .await;
    let id = app.create_ok(&unit_test_body("In a set")).await;
    answers.redact(&id, "<id>");
    app.seed(&json!({"unit_test_sets": [{
        "_id": "6618791275130b73714e8d5a", "org_id": "acme", "name": "nightly",
        "unit_test_runs": [{"unit_test_id": id, "run_count": 2}]
    }]}))
    .await;
    let deleted = app.delete(&id).await;
    answers
        .add("delete of a unit test a set lists", deleted)
        .await;
    insta::assert_json_snapshot!("conflict_and_bad_request", answers.answers);
}

async fn validation_errors(app: TestApp) {
    let mut answers = Answers::default();
    let admin = app.admin_token();
    let invalid = app
        .create(&json!({
            "name": "  ",
            "description": "d",
            "service_id": "not-an-id",
            "max_interactions": 0,
            "success_criterions": [],
            "tags": {"": "x"},
            "surprise": true
        }))
        .await;
    answers
        .add(
            "create with blank, missing and out-of-range fields",
            invalid,
        )
        .await;
    let not_json = raw(&app, Method::POST, COLLECTION)
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ");
    answers.send("a body that is not JSON", not_json).await;
    let query = "limit=501&sort_by=colour&creator=acme&tag=nokey";
    let listed = app.list_as(&admin, "acme", query).await;
    answers
        .add("list with a bad limit, sort and filter", listed)
        .await;
    let searched = app.search_as(&admin, "acme", "").await;
    answers.add("search without a query", searched).await;
    let updated = app.update("xyz", &json!({"run_count": 0})).await;
    answers.add("update of a malformed id", updated).await;
    let sign_in = raw(&app, Method::POST, "/v1/acme/user/signin_with_api_key");
    answers
        .send("sign-in without the key headers", sign_in)
        .await;
    insta::assert_json_snapshot!("validation", answers.answers);
}

/// Limits of the HTTP layer, the same whichever store serves: 413, 429 and maintenance's 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_maintenance_errors() {
    let app = spawn_app_with(Backend::Embedded, |config| {
        config.http.max_body_bytes = 1024;
        config.rate_limits.set(Limited::SearchUnitTests, 1);
    })
    .await;
    let mut answers = Answers::default();
    let mut large = unit_test_body("Large");
    large["description"] = json!("x".repeat(2000));
    let large = app.create(&large).await;
    answers.add("a body over the limit", large).await;

    let admin = app.admin_token();
    let first = app.search_as(&admin, "acme", "query=x").await;
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let refused = app.search_as(&admin, "acme", "query=x").await;
    let retry = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .to_owned();
    let secs: u64 = retry.parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    let waited = format!("retry in {retry} s");
    answers.redact(&waited, "retry in <Retry-After> s");
    let case = "the second search of a one-per-minute budget";
    answers.add(case, refused).await;

    std::fs::write(&app.config().maintenance_file, "").unwrap();
    let mut during = None;
    for _ in 0..50 {
        let r = app.list_as(&admin, "acme", "").await;
        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            during = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let during = during.expect("maintenance takes effect within seconds");
    answers.add("during maintenance", during).await;
    insta::assert_json_snapshot!("limits_and_maintenance", answers.answers);
}
