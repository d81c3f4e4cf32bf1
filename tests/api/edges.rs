//! Production edges: rate limits, maintenance, body and time limits, CORS, compression, metrics.
//! Those that read the store (budgets per user, API-key throttling, maintenance, 413) run on both
//! stores; the rest (CORS, compression, metrics, the slow-body timeout) are HTTP layers and run on
//! the embedded store only. The timeout cases where a write is under way: `tests/failpoints.rs`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use simtest::ratelimit::{Budgets, Limited};

use crate::helpers::*;

/// Emits an embedded and a mongo test for each `async fn(Backend)`: these edges read the store
/// (the caller's user and API key, the data a refused write must not change), so both stores.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Embedded).await
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if super::mongo_available() {
                        super::$name(super::Backend::Mongo).await
                    }
                }
            )*
        }
    };
}

on_both_stores!(
    a_spent_budget_gives_429_with_retry_after_for_that_user_and_endpoint_only,
    sign_in_is_throttled_per_api_key_so_secrets_cannot_be_guessed,
    maintenance_flag_file_switches_v1_to_503_without_a_restart,
    a_body_over_the_cap_is_413_and_writes_nothing,
);

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

async fn a_spent_budget_gives_429_with_retry_after_for_that_user_and_endpoint_only(
    backend: Backend,
) {
    let app = spawn_app_with(backend, |c| {
        c.rate_limits = Budgets::default();
        c.rate_limits.set(Limited::SearchUnitTests, 3);
    })
    .await;
    let alice = app.admin_token();
    for expected_remaining in ["2", "1", "0"] {
        let r = app.search_as(&alice, "acme", "query=x").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(expected_remaining)
        );
        let reset: i64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            reset >= chrono::Utc::now().timestamp(),
            "reset is a unix time ahead"
        );
    }
    let refused = app.search_as(&alice, "acme", "query=x").await;
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some("0"));
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    assert_error(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    let bob = app.token("acme", "bob");
    assert_eq!(
        app.search_as(&bob, "acme", "query=x").await.status(),
        StatusCode::OK,
        "another user"
    );
    let list = app.list_as(&alice, "acme", "").await;
    assert_eq!(list.status(), StatusCode::OK, "another endpoint");
    assert_eq!(header(&list, "x-ratelimit-limit"), Some("200"));
    // Authentication comes before the budget: a bad token is 401, not 429.
    assert_eq!(
        app.search_as("bad", "acme", "query=x").await.status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn sign_in_is_throttled_per_api_key_so_secrets_cannot_be_guessed(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.rate_limits.set(Limited::SignIn, 2)).await;
    let attempt = |key_id: &'static str, secret: &'static str| {
        app.client
            .post(app.url("/v1/acme/user/signin_with_api_key"))
            .header("x-api-key-id", key_id)
            .header("x-api-key", secret)
            .header("x-user-id", "alice")
            .send()
    };
    for guess in ["guess-1", "guess-2"] {
        let r = attempt("acme-ci", guess).await.unwrap();
        assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Even the right secret waits.
    let blocked = attempt("acme-ci", "acme-ci-secret").await.unwrap();
    assert!(header(&blocked, "retry-after").is_some());
    assert_error(blocked, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // Other keys are unaffected: a wrong secret there is 401, not 429.
    let other = attempt("acme-old", "x").await.unwrap();
    assert_error(other, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

#[tokio::test]
async fn rate_limits_can_be_turned_off() {
    let app = spawn_app_with(Backend::Embedded, |c| c.rate_limits = Budgets::off()).await;
    let r = app.search_as(&app.admin_token(), "acme", "query=x").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(header(&r, "x-ratelimit-limit").is_none());
}

async fn maintenance_flag_file_switches_v1_to_503_without_a_restart(backend: Backend) {
    let app = spawn_app(backend).await;
    let flag = app.config().maintenance_file.clone();
    std::fs::write(&flag, "").unwrap();
    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = app.list_as(&app.admin_token(), "acme", "").await.status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "maintenance takes effect within seconds"
    );
    let r = app.create(&unit_test_body("during maintenance")).await;
    assert!(header(&r, "retry-after").is_some());
    assert_error(r, StatusCode::SERVICE_UNAVAILABLE, "maintenance").await;
    // Before authentication: even anonymous requests get 503.
    let anonymous = app
        .client
        .get(app.url("/v1/acme/simulation/unit_test/"))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, StatusCode::SERVICE_UNAVAILABLE, "maintenance").await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    std::fs::remove_file(&flag).unwrap();
    for _ in 0..40 {
        status = app.list_as(&app.admin_token(), "acme", "").await.status();
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.list("").await["simulation_unit_tests"],
        json!([]),
        "nothing was written during maintenance"
    );
}

async fn a_body_over_the_cap_is_413_and_writes_nothing(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.http.max_body_bytes = 64 * 1024).await;
    let mut body = unit_test_body("huge");
    body["description"] = json!("x".repeat(100 * 1024));
    let r = app.create(&body).await;
    assert_error(r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(app.list("").await["simulation_unit_tests"], json!([]));
}

#[tokio::test]
async fn a_request_over_the_timeout_gets_503_with_a_clear_detail() {
    let app = spawn_app_with(Backend::Embedded, |c| {
        c.http.request_timeout = Duration::from_secs(1)
    })
    .await;
    let body = unit_test_body("slow").to_string();
    let answer = slow_request(
        app.addr,
        &app.admin_token(),
        &body,
        Duration::from_millis(2500),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("request_timeout") && answer.contains("within 1 s"),
        "{answer}"
    );
    assert_eq!(app.list("").await["simulation_unit_tests"], json!([]));
}

#[tokio::test]
async fn cors_answers_preflight_only_for_configured_origins() {
    let app = spawn_app_with(Backend::Embedded, |c| {
        c.http.cors_origins = vec!["https://app.example.com".parse().unwrap()];
    })
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                app.url("/v1/acme/simulation/unit_test/"),
            )
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    assert_eq!(
        header(&allowed, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let methods = header(&allowed, "access-control-allow-methods")
        .unwrap()
        .to_ascii_uppercase();
    assert!(methods.contains("POST"), "{methods}");
    let other = preflight("https://evil.example.net").await.unwrap();
    assert_eq!(header(&other, "access-control-allow-origin"), None);

    let r = app
        .client
        .get(app.url("/v1/acme/simulation/unit_test/"))
        .bearer_auth(app.admin_token())
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let exposed = header(&r, "access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-ratelimit-remaining"), "{exposed}");
}

#[tokio::test]
async fn without_configured_origins_no_cors_headers_are_sent() {
    let app = spawn_app(Backend::Embedded).await;
    let r = app
        .client
        .get(app.url("/v1/acme/simulation/unit_test/"))
        .bearer_auth(app.admin_token())
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(header(&r, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn large_list_answers_are_gzipped_when_the_client_accepts_it() {
    let app = spawn_app(Backend::Embedded).await;
    for i in 0..10 {
        app.create_ok(&unit_test_body(&format!("compressible {i}")))
            .await;
    }
    let get = |encoding: Option<&'static str>, query: &'static str| {
        let mut r = app
            .client
            .get(app.url(&format!("/v1/acme/simulation/unit_test/?{query}")))
            .bearer_auth(app.admin_token());
        if let Some(e) = encoding {
            r = r.header("accept-encoding", e);
        }
        r.send()
    };
    let gzipped = get(Some("gzip"), "").await.unwrap();
    assert_eq!(header(&gzipped, "content-encoding"), Some("gzip"));
    let plain = get(None, "").await.unwrap();
    assert_eq!(header(&plain, "content-encoding"), None);
    let small = get(Some("gzip"), "limit=0&is_deleted=true").await.unwrap();
    assert_eq!(
        header(&small, "content-encoding"),
        None,
        "small answers are sent as they are"
    );
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_status_and_time_the_store() {
    let app = spawn_app_with(Backend::Embedded, |c| {
        c.rate_limits.set(Limited::SearchUnitTests, 1)
    })
    .await;
    app.create_ok(&unit_test_body("measured")).await;
    let _ = app.search_as(&app.admin_token(), "acme", "query=m").await;
    let _ = app.search_as(&app.admin_token(), "acme", "query=m").await;
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        header(&r, "content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    for expected in [
        r#"simtest_http_requests_total{method="POST",route="/v1/{organization}/simulation/unit_test/",status="201"}"#,
        r#"simtest_http_request_duration_seconds_bucket{method="POST",route="/v1/{organization}/simulation/unit_test/",status="201""#,
        r#"simtest_store_operation_duration_seconds_bucket{operation="insert_unit_test",outcome="ok""#,
        r#"simtest_rate_limit_rejections_total{endpoint="search"}"#,
    ] {
        assert!(text.contains(expected), "{expected} missing from /metrics");
    }
}
