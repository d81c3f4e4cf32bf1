//! Hostile input: whatever arrives, a clean 4xx, nothing written, memory bounded, and the server
//! keeps serving.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    hostile_bodies_get_clean_4xx_and_change_nothing,
    hostile_query_strings_get_clean_answers
);

async fn hostile_bodies_get_clean_4xx_and_change_nothing(app: TestApp) {
    let url = app.url("/v1/acme/simulation/unit_test/");
    let token = app.admin_token();
    let criterion = unit_test_body("x")["success_criterions"][0].clone();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = unit_test_body("Hostile");
        f(&mut b);
        b.to_string().into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        (
            "a body over the 1 MiB cap",
            format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "5,000 criteria",
            with(&|b| b["success_criterions"] = Value::Array(vec![criterion.clone(); 5_000])),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "50,000 expected values",
            with(&|b| {
                b["success_criterions"][2]["criterion"]["expected_values"] =
                    json!(vec!["v"; 50_000])
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "5,000 tags",
            with(&|b| {
                b["tags"] =
                    Value::Object((0..5000).map(|i| (format!("k{i}"), json!("v"))).collect())
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "control characters in the name",
            with(&|b| b["name"] = json!("bell\u{7}\u{1b}[31m")),
            StatusCode::CREATED,
        ),
        (
            "a NUL in a tag value",
            with(&|b| b["tags"] = json!({"k": "a\u{0}b"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a number far out of range",
            br#"{"name": "n", "max_interactions": 1e400}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a negative zero threshold",
            with(&|b| b["success_criterions"][1]["criterion"]["threshold"] = json!(-0.0)),
            StatusCode::CREATED,
        ),
        (
            "an id in upper case",
            with(&|b| b["persona_id"] = json!(PERSONA.to_uppercase())),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "an id with a NUL",
            with(&|b| b["persona_id"] = json!(format!("{}\u{0}", &PERSONA[..23]))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "nesting 100,000 deep",
            format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a lone surrogate escape",
            br#"{"name": "\ud800"}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "overlong UTF-8",
            b"{\"name\": \"\xc0\xaf\"}".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    let mut created = 0;
    for (reason, body, expected) in cases {
        let r = app
            .client
            .post(&url)
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let (status, json) = status_and_json(r).await;
        assert_eq!(status, expected, "{reason}: {json}");
        if status == StatusCode::CREATED {
            created += 1;
            let id = json["simulation_unit_test_id"].as_str().unwrap();
            assert_eq!(
                app.delete(id).await.status(),
                StatusCode::NO_CONTENT,
                "{reason}"
            );
        } else {
            assert!(json["error_code"].is_string(), "{reason}: {json}");
        }
    }
    assert_eq!(created, 2);
    assert_eq!(
        app.list("is_deleted=false").await["simulation_unit_tests"],
        json!([]),
        "nothing else was written"
    );
    assert_eq!(
        app.create(&unit_test_body("Still serving")).await.status(),
        StatusCode::CREATED
    );
}

async fn hostile_query_strings_get_clean_answers(app: TestApp) {
    app.create_ok(&unit_test_body("needle")).await;
    let token = app.admin_token();
    let many_unknown: String = (0..5000)
        .map(|i| format!("p{i}=v"))
        .collect::<Vec<_>>()
        .join("&");
    let many_tags: String = (0..5000)
        .map(|i| format!("tag=k{i}:v"))
        .collect::<Vec<_>>()
        .join("&");
    let cases: Vec<(&str, String, StatusCode)> = vec![
        ("5,000 unknown parameters", many_unknown, StatusCode::OK),
        (
            "5,000 tag filters",
            many_tags,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a limit beyond i64",
            "limit=99999999999999999999999".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a token beyond i64",
            "continuation_token=99999999999999999999999".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "a huge offset",
            format!("continuation_token={}", i64::MAX),
            StatusCode::OK,
        ),
        (
            "invalid percent-encoding",
            "tag=%ZZ:%G0&creator=%".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        ("a NUL in a tag", "tag=a%00:b".into(), StatusCode::OK),
        (
            "an id in upper case",
            format!("id={}", UNKNOWN_ID.to_uppercase()),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ];
    for (reason, query, expected) in cases {
        let r = app.list_as(&token, "acme", &query).await;
        let (status, json) = status_and_json(r).await;
        assert_eq!(status, expected, "{reason}: {json}");
    }
    let long_query = format!("query={}", "a".repeat(5000));
    let r = app.search_as(&token, "acme", &long_query).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let many_terms = format!(
        "query={}",
        (0..100)
            .map(|i| format!("t{i}"))
            .collect::<Vec<_>>()
            .join("+")
    );
    let r = app.search_as(&token, "acme", &many_terms).await;
    assert_error(r, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    assert_eq!(names(&app.list("").await), ["needle"], "still serving");
}
