//! Routing: every contract path with and without its trailing slash, JSON 404/405 for unknown
//! routes and methods, health and readiness.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    every_path_works_with_and_without_trailing_slash,
    unknown_routes_and_methods_answer_json_errors,
    health_and_readiness_answer
);

async fn every_path_works_with_and_without_trailing_slash(app: TestApp) {
    let token = app.admin_token();
    let id = app.create_ok(&unit_test_body("Slash")).await;
    for base in [
        "/v1/acme/simulation/unit_test",
        "/v1/acme/simulation/unit_test/",
    ] {
        let r = app
            .client
            .get(app.url(base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{base}");
    }
    for path in [
        "/v1/acme/simulation/unit_test/search?query=slash",
        "/v1/acme/simulation/unit_test/search/?query=slash",
    ] {
        let r = app
            .client
            .get(app.url(path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
    }
    for (i, path) in [
        format!("/v1/acme/simulation/unit_test/{id}"),
        format!("/v1/acme/simulation/unit_test/{id}/"),
    ]
    .iter()
    .enumerate()
    {
        let r = app
            .client
            .post(app.url(path))
            .bearer_auth(&token)
            .json(&json!({"run_count": i + 2}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
    }
    let r = app
        .client
        .post(app.url("/v1/acme/simulation/unit_test"))
        .bearer_auth(&token)
        .json(&unit_test_body("No slash"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .client
        .delete(app.url(&format!("/v1/acme/simulation/unit_test/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn unknown_routes_and_methods_answer_json_errors(app: TestApp) {
    let r = app
        .client
        .get(app.url("/v1/acme/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::NOT_FOUND, "not_found").await;
    let r = app
        .client
        .put(app.url("/v1/acme/simulation/unit_test/"))
        .send()
        .await
        .unwrap();
    assert_error(r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed").await;
}

async fn health_and_readiness_answer(app: TestApp) {
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["x-request-id"],
        "trace-me-42",
        "a given request id is echoed"
    );
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(
        !r.headers()["x-request-id"].is_empty(),
        "a request id is generated"
    );
}
