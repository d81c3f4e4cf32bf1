//! `POST .../user/signin_with_api_key`: a valid org API key buys a working token; bad, expired or
//! revoked keys, unknown users and missing headers are refused.

use reqwest::StatusCode;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    sign_in_with_a_valid_key_returns_a_working_token,
    sign_in_refuses_bad_keys_and_users,
    sign_in_needs_its_three_headers
);

async fn sign_in(
    app: &TestApp,
    org: &str,
    key_id: &str,
    secret: &str,
    user: &str,
) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/v1/{org}/user/signin_with_api_key")))
        .header("x-api-key", secret)
        .header("x-api-key-id", key_id)
        .header("x-user-id", user)
        .send()
        .await
        .unwrap()
}

async fn sign_in_with_a_valid_key_returns_a_working_token(app: TestApp) {
    let (status, body) =
        status_and_json(sign_in(&app, "acme", "acme-ci", "acme-ci-secret", "victor").await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let expires_at =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert!(expires_at > chrono::Utc::now());
    let token = body["id_token"].as_str().unwrap();
    let (status, _) = status_and_json(app.list_as(token, "acme", "").await).await;
    assert_eq!(status, StatusCode::OK);
    // victor is a viewer: the token carries his identity, not the key's.
    assert_eq!(
        app.create_as(token, "acme", &unit_test_body("x"))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // The trailing-slash form works too.
    let response = app
        .client
        .post(app.url("/v1/acme/user/signin_with_api_key/"))
        .header("x-api-key", "acme-ci-secret")
        .header("x-api-key-id", "acme-ci")
        .header("x-user-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn sign_in_refuses_bad_keys_and_users(app: TestApp) {
    let cases = [
        (
            "acme",
            "acme-ci",
            "wrong-secret",
            "alice",
            StatusCode::UNAUTHORIZED,
            "wrong secret",
        ),
        (
            "acme",
            "no-such-key",
            "acme-ci-secret",
            "alice",
            StatusCode::UNAUTHORIZED,
            "unknown key",
        ),
        (
            "acme",
            "acme-old",
            "acme-old-secret",
            "alice",
            StatusCode::UNAUTHORIZED,
            "expired key",
        ),
        (
            "acme",
            "acme-revoked",
            "acme-revoked-secret",
            "alice",
            StatusCode::UNAUTHORIZED,
            "deleted key",
        ),
        (
            "acme",
            "acme-ci",
            "acme-ci-secret",
            "mallory",
            StatusCode::UNAUTHORIZED,
            "unknown user",
        ),
        (
            "acme",
            "acme-ci",
            "acme-ci-secret",
            "dora",
            StatusCode::UNAUTHORIZED,
            "deleted user",
        ),
        (
            "acme",
            "globex-ci",
            "globex-ci-secret",
            "alice",
            StatusCode::UNAUTHORIZED,
            "another org's key",
        ),
        (
            "initech",
            "acme-ci",
            "acme-ci-secret",
            "alice",
            StatusCode::NOT_FOUND,
            "unknown org",
        ),
    ];
    for (org, key, secret, user, status, reason) in cases {
        let (actual, body) = status_and_json(sign_in(&app, org, key, secret, user).await).await;
        assert_eq!(actual, status, "{reason}: {body}");
        assert!(body.get("id_token").is_none(), "{reason}");
        if status == StatusCode::UNAUTHORIZED {
            assert_eq!(
                body["detail"], "Invalid authorization credentials.",
                "{reason}: no hint for an attacker"
            );
        }
    }
}

async fn sign_in_needs_its_three_headers(app: TestApp) {
    let response = app
        .client
        .post(app.url("/v1/acme/user/signin_with_api_key"))
        .header("x-api-key-id", "acme-ci")
        .send()
        .await
        .unwrap();
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let locs: Vec<&serde_json::Value> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["loc"])
        .collect();
    assert_eq!(
        locs,
        [
            &serde_json::json!(["header", "x-api-key"]),
            &serde_json::json!(["header", "x-user-id"])
        ]
    );
}
