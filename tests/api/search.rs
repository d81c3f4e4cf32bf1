//! `GET .../unit_test/search/`: every term in name or description (case-insensitive, regex
//! characters literal), filters, `_id` keys, latest update first, at most 100, deleted excluded,
//! 422 without a query.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    search_requires_every_term_in_name_or_description_ignoring_case,
    search_treats_regex_characters_literally,
    search_excludes_deleted_and_orders_by_latest_update,
    search_applies_filters_and_returns_underscore_ids,
    search_answers_at_most_100,
    search_refuses_a_missing_or_blank_query,
    search_without_read_permission_is_empty,
);

fn q(text: &str) -> String {
    format!("query={}", urlencode(text))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn create_named(app: &TestApp, name: &str, description: &str) -> String {
    let mut body = unit_test_body(name);
    body["description"] = json!(description);
    app.create_ok(&body).await
}

async fn search_requires_every_term_in_name_or_description_ignoring_case(app: TestApp) {
    create_named(&app, "Signup happy path", "New user completes onboarding").await;
    create_named(
        &app,
        "Refund flow",
        "Customer asks for a REFUND after signup",
    )
    .await;
    create_named(&app, "Password reset", "User forgets password").await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("signup", vec!["Refund flow", "Signup happy path"]),
        ("SIGNUP", vec!["Refund flow", "Signup happy path"]),
        ("signup refund", vec!["Refund flow"]),
        ("  signup   happy ", vec!["Signup happy path"]),
        ("onboard", vec!["Signup happy path"]),
        ("password missing-term", vec![]),
        ("xyz", vec![]),
    ];
    for (text, expected) in cases {
        let mut got = names(&app.search(&q(text)).await);
        got.sort();
        assert_eq!(got, expected, "{text:?}");
    }
}

async fn search_treats_regex_characters_literally(app: TestApp) {
    create_named(&app, "Costs $5 (approx.) [beta]", "a+b=c").await;
    create_named(&app, "Plain", "nothing special").await;
    for (text, hits) in [
        ("$5", 1),
        ("(approx.)", 1),
        ("[beta]", 1),
        ("a+b", 1),
        (".*", 0),
        ("^plain", 0),
        ("pl.in", 0),
        ("\\", 0),
        ("(", 1),
    ] {
        assert_eq!(names(&app.search(&q(text)).await).len(), hits, "{text:?}");
    }
}

async fn search_excludes_deleted_and_orders_by_latest_update(app: TestApp) {
    let a = create_named(&app, "match one", "x").await;
    let b = create_named(&app, "match two", "x").await;
    let c = create_named(&app, "match three", "x").await;
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    assert_eq!(
        app.update(&a, &json!({"description": "touched"}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete(&b).await.status(), StatusCode::NO_CONTENT);
    let got = app.search(&q("match")).await;
    let ids: Vec<&str> = got["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [a.as_str(), c.as_str()],
        "most recently updated first, deleted never"
    );
}

async fn search_applies_filters_and_returns_underscore_ids(app: TestApp) {
    create_named(&app, "filter me", "x").await;
    let mut other = unit_test_body("filter me too");
    other["service_id"] = json!(SERVICE_2);
    other["tags"] = json!({"team": "core"});
    let id = app.create_ok(&other).await;

    let got = app
        .search(&format!("{}&service_id={SERVICE_2}", q("filter")))
        .await;
    let items = got["simulation_unit_tests"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["_id"], id);
    assert!(
        items[0].get("id").is_none(),
        "search items carry _id, not id: {}",
        items[0]
    );
    assert_eq!(
        got.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["simulation_unit_tests"]
    );

    assert_eq!(
        names(&app.search(&format!("{}&tag=team:core", q("filter"))).await),
        ["filter me too"]
    );
    assert_eq!(
        names(
            &app.search(&format!("{}&creator=acme,bob", q("filter")))
                .await
        )
        .len(),
        0
    );
    assert_eq!(
        names(
            &app.search(&format!("{}&metric_id={METRIC_NUM}", q("filter")))
                .await
        )
        .len(),
        2
    );
}

async fn search_answers_at_most_100(app: TestApp) {
    for i in 0..105 {
        create_named(&app, &format!("bulk {i:03}"), "many").await;
    }
    assert_eq!(names(&app.search(&q("bulk")).await).len(), 100);
}

async fn search_refuses_a_missing_or_blank_query(app: TestApp) {
    for (query, reason) in [
        ("", "missing"),
        ("query=", "empty"),
        ("query=%20%20", "blank"),
        ("query=x&service_id=bad", "bad filter"),
    ] {
        let response = app.search_as(&app.admin_token(), "acme", query).await;
        let error = assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
        assert_eq!(error["detail"][0]["loc"][0], "query", "{reason}: {error}");
    }
}

async fn search_without_read_permission_is_empty(app: TestApp) {
    create_named(&app, "hidden", "x").await;
    let nobody = app.token("acme", "nobody");
    let (status, body) =
        status_and_json(app.search_as(&nobody, "acme", "query=hidden").await).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"simulation_unit_tests": []}))
    );
    // The same search by the admin finds it: the empty answer above is the permission, not search.
    assert_eq!(names(&app.search("query=hidden").await), ["hidden"]);
}
