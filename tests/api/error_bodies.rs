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

/// The answers of a scenario, in the order they were asked, each with its status and body;
/// `redact` pairs replace values that change from run to run (ids) by a stable name.
#[derive(Default)]
struct Answers(Vec<Value>);

impl Answers {
    async fn add(&mut self, case: &str, response: Response, redact: &[(&str, &str)]) {
        let (status, body) = status_and_json(response).await;
        let mut text = body.to_string();
        for (value, name) in redact {
            text = text.replace(value, name);
        }
        let body: Value = serde_json::from_str(&text).unwrap();
        assert!(
            body["error_code"].is_string(),
            "{case}: not an error body: {status} {body}"
        );
        self.0
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
    answers
        .add("no credentials", list().send().await.unwrap(), &[])
        .await;
    answers
        .add(
            "a token that is not a JWT",
            list().bearer_auth("not-a-token").send().await.unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "a token of an organization that does not exist",
            list()
                .bearer_auth(app.token("initech", "alice"))
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "a deleted user's token",
            list()
                .bearer_auth(app.token("acme", "dora"))
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "Basic with a username that is not the token's",
            list()
                .basic_auth("acme_bob", Some(app.admin_token()))
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "sign-in with a wrong secret",
            raw(&app, Method::POST, "/v1/acme/user/signin_with_api_key")
                .header("x-api-key", "wrong")
                .header("x-api-key-id", "acme-ci")
                .header("x-user-id", "alice")
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "a viewer creates",
            app.create_as(
                &app.token("acme", "victor"),
                "acme",
                &unit_test_body("Viewer"),
            )
            .await,
            &[],
        )
        .await;
    let id = app.create_ok(&unit_test_body("Held")).await;
    answers
        .add(
            "an author deletes",
            app.delete_as(&app.token("acme", "arthur"), "acme", &id)
                .await,
            &[(&id, "<id>")],
        )
        .await;
    insta::assert_json_snapshot!("authentication_and_permission", answers.0);
}

async fn not_found_errors(app: TestApp) {
    let mut answers = Answers::default();
    let admin = app.admin_token();
    answers
        .add(
            "a path organization that does not exist",
            app.list_as(&admin, "initech", "").await,
            &[],
        )
        .await;
    answers
        .add(
            "sign-in to an organization that does not exist",
            raw(&app, Method::POST, "/v1/initech/user/signin_with_api_key")
                .header("x-api-key", "acme-ci-secret")
                .header("x-api-key-id", "acme-ci")
                .header("x-user-id", "alice")
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "update of an unknown unit test",
            app.update(UNKNOWN_ID, &json!({"run_count": 2})).await,
            &[],
        )
        .await;
    answers
        .add(
            "delete of an unknown unit test",
            app.delete(UNKNOWN_ID).await,
            &[],
        )
        .await;
    let id = app.create_ok(&unit_test_body("Deleted twice")).await;
    app.delete(&id).await;
    answers
        .add(
            "delete of a deleted unit test",
            app.delete(&id).await,
            &[(&id, "<id>")],
        )
        .await;
    let mut body = unit_test_body("Bad references");
    let references = [
        ("service_id", SERVICE_INACTIVE),
        ("persona_id", PERSONA_DELETED),
        ("scenario_id", SCENARIO_DELETED),
        ("service_version_set_name", "no-such-set"),
    ];
    for (field, value) in references {
        body[field] = json!(value);
        answers
            .add(
                &format!("create with an unknown {field}"),
                app.create(&body).await,
                &[],
            )
            .await;
        body = unit_test_body("Bad references");
    }
    body["success_criterions"][0]["metric_id"] = json!(METRIC_DELETED);
    answers
        .add("create with a deleted metric", app.create(&body).await, &[])
        .await;
    answers
        .add(
            "an unknown route",
            raw(&app, Method::GET, "/v1/acme/simulation/nothing")
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "a method the route does not serve",
            raw(&app, Method::PUT, COLLECTION)
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    insta::assert_json_snapshot!("not_found", answers.0);
}

async fn conflict_and_bad_request_errors(app: TestApp) {
    let mut answers = Answers::default();
    app.create_ok(&unit_test_body("Taken")).await;
    answers
        .add(
            "create with a name in use",
            app.create(&unit_test_body("Taken")).await,
            &[],
        )
        .await;
    let mut mismatch = unit_test_body("Mismatch");
    mismatch["success_criterions"][0]["metric_id"] = json!(METRIC_NUM);
    answers
        .add(
            "a boolean criterion on a numerical metric",
            app.create(&mismatch).await,
            &[],
        )
        .await;
    let id = app.create_ok(&unit_test_body("In a set")).await;
    app.seed(&json!({"unit_test_sets": [{
        "_id": "6618791275130b73714e8d5a", "org_id": "acme", "name": "nightly",
        "unit_test_runs": [{"unit_test_id": id, "run_count": 2}]
    }]}))
    .await;
    answers
        .add(
            "delete of a unit test a set lists",
            app.delete(&id).await,
            &[(&id, "<id>")],
        )
        .await;
    insta::assert_json_snapshot!("conflict_and_bad_request", answers.0);
}

async fn validation_errors(app: TestApp) {
    let mut answers = Answers::default();
    let admin = app.admin_token();
    answers
        .add(
            "create with blank, missing and out-of-range fields",
            app.create(&json!({
                "name": "  ",
                "description": "d",
                "service_id": "not-an-id",
                "max_interactions": 0,
                "success_criterions": [],
                "tags": {"": "x"},
                "surprise": true
            }))
            .await,
            &[],
        )
        .await;
    answers
        .add(
            "a body that is not JSON",
            raw(&app, Method::POST, COLLECTION)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{\"name\": ")
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    answers
        .add(
            "list with a bad limit, sort and filter",
            app.list_as(
                &admin,
                "acme",
                "limit=501&sort_by=colour&creator=acme&tag=nokey",
            )
            .await,
            &[],
        )
        .await;
    answers
        .add(
            "search without a query",
            app.search_as(&admin, "acme", "").await,
            &[],
        )
        .await;
    answers
        .add(
            "update of a malformed id",
            app.update("xyz", &json!({"run_count": 0})).await,
            &[],
        )
        .await;
    answers
        .add(
            "sign-in without the key headers",
            raw(&app, Method::POST, "/v1/acme/user/signin_with_api_key")
                .send()
                .await
                .unwrap(),
            &[],
        )
        .await;
    insta::assert_json_snapshot!("validation", answers.0);
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
    answers
        .add("a body over the limit", app.create(&large).await, &[])
        .await;

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
    answers
        .add(
            "the second search of a one-per-minute budget",
            refused,
            &[(&waited, "retry in <Retry-After> s")],
        )
        .await;

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
    answers.add("during maintenance", during, &[]).await;
    insta::assert_json_snapshot!("limits_and_maintenance", answers.0);
}
