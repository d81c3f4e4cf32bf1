//! `POST .../unit_test/`: 201 stores every field; 403, 422 (every problem at once), 404 references,
//! 400 criterion type and 409 name refusals each change nothing; concurrent creates of one name
//! give exactly one 201.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    create_returns_201_and_stores_every_field,
    create_returns_422_listing_every_problem,
    create_refuses_bad_values_one_by_one,
    create_refuses_malformed_missing_and_non_json_bodies,
    create_returns_404_for_missing_deleted_or_foreign_references,
    create_returns_400_when_a_criterion_type_differs_from_its_metric,
    create_returns_409_when_an_active_unit_test_has_the_name,
    concurrent_creates_with_one_name_give_exactly_one_201,
    create_requires_the_create_permission,
    create_checks_permission_before_validation,
);

async fn create_returns_201_and_stores_every_field(app: TestApp) {
    let mut body = unit_test_body("  Signup works  ");
    body["tags"] = json!({"team": "growth", "flaky": null, "area": "auth"});
    let id = app.create_ok(&body).await;
    assert!(
        id.len() == 24
            && id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{id}"
    );

    let t = app.get(&id).await;
    assert_eq!(t["id"], id);
    assert_eq!(t["org_id"], "acme");
    assert_eq!(t["name"], "Signup works", "names are trimmed");
    assert_eq!(t["description"], "Checks that   Signup works   works");
    assert_eq!(t["service_id"], SERVICE);
    assert_eq!(t["service_version_set_name"], "release");
    assert_eq!(t["persona_id"], PERSONA);
    assert_eq!(t["scenario_id"], SCENARIO);
    assert_eq!(t["max_interactions"], 10);
    assert_eq!(t["run_count"], 1);
    assert_eq!(t["is_deleted"], false);
    assert_eq!(
        t["success_criterions"],
        body["success_criterions"].clone().tap_threshold_float()
    );
    assert_eq!(
        t["tags"],
        json!([{"key": "area", "value": "auth"}, {"key": "flaky", "value": null}, {"key": "team", "value": "growth"}]),
        "tags come out as a list sorted by key"
    );
    assert_eq!(t["creator"], json!({"org_id": "acme", "user_id": "alice"}));
    assert_eq!(
        t["updated_by"],
        json!({"org_id": "acme", "user_id": "alice"})
    );
    let created = t["created_at"].as_str().unwrap();
    assert_eq!(t["updated_at"], created);
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );
    assert!(created.ends_with("+00:00"), "UTC with offset: {created}");
}

trait ThresholdAsFloat {
    fn tap_threshold_float(self) -> Value;
}

impl ThresholdAsFloat for Value {
    /// Numerical thresholds are numbers; they come back as floats.
    fn tap_threshold_float(mut self) -> Value {
        for c in self.as_array_mut().unwrap() {
            if c["criterion"]["type"] == "numerical" {
                let t = c["criterion"]["threshold"].as_f64().unwrap();
                c["criterion"]["threshold"] = json!(t);
            }
        }
        self
    }
}

async fn create_returns_422_listing_every_problem(app: TestApp) {
    let mut body = unit_test_body("x");
    body["name"] = json!("   ");
    body["max_interactions"] = json!(0);
    body["persona_id"] = json!("6618791275130B73714E8D2A");
    body["success_criterions"][0]["metric_id"] = json!("short");
    body["success_criterions"][2]["criterion"]["expected_values"] = json!([]);
    body.as_object_mut().unwrap().remove("scenario_id");
    body["unexpected"] = json!(true);

    let error = assert_error(
        app.create(&body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let detail = error["detail"].as_array().unwrap();
    let locs: Vec<Value> = detail.iter().map(|p| p["loc"].clone()).collect();
    for expected in [
        json!(["body", "name"]),
        json!(["body", "max_interactions"]),
        json!(["body", "persona_id"]),
        json!(["body", "success_criterions", 0, "metric_id"]),
        json!([
            "body",
            "success_criterions",
            2,
            "criterion",
            "categorical",
            "expected_values"
        ]),
        json!(["body", "scenario_id"]),
        json!(["body", "unexpected"]),
    ] {
        assert!(
            locs.contains(&expected),
            "no problem at {expected}: {error}"
        );
    }
    assert_eq!(detail.len(), 7, "{error}");
    for problem in detail {
        assert!(
            problem["msg"].is_string() && problem["type"].is_string(),
            "{problem}"
        );
    }
    assert_eq!(
        app.list("").await["simulation_unit_tests"],
        json!([]),
        "nothing was written"
    );
}

async fn create_refuses_bad_values_one_by_one(app: TestApp) {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("empty name", Box::new(|b| b["name"] = json!(""))),
        ("name is a number", Box::new(|b| b["name"] = json!(5))),
        ("name with NUL", Box::new(|b| b["name"] = json!("a\u{0}b"))),
        (
            "blank description",
            Box::new(|b| b["description"] = json!(" \t")),
        ),
        (
            "null description",
            Box::new(|b| b["description"] = Value::Null),
        ),
        (
            "max_interactions 101",
            Box::new(|b| b["max_interactions"] = json!(101)),
        ),
        (
            "max_interactions negative",
            Box::new(|b| b["max_interactions"] = json!(-1)),
        ),
        (
            "max_interactions as string",
            Box::new(|b| b["max_interactions"] = json!("5")),
        ),
        (
            "max_interactions fractional",
            Box::new(|b| b["max_interactions"] = json!(5.5)),
        ),
        (
            "max_interactions huge",
            Box::new(|b| b["max_interactions"] = json!(u64::MAX)),
        ),
        (
            "service id in upper case",
            Box::new(|b| b["service_id"] = json!(SERVICE.to_uppercase())),
        ),
        (
            "service id too long",
            Box::new(|b| b["service_id"] = json!(format!("{SERVICE}0"))),
        ),
        (
            "no criteria",
            Box::new(|b| b["success_criterions"] = json!([])),
        ),
        (
            "criteria not a list",
            Box::new(|b| b["success_criterions"] = json!({})),
        ),
        (
            "unknown verb",
            Box::new(|b| b["success_criterions"][1]["criterion"]["verb"] = json!("=<")),
        ),
        (
            "threshold as string",
            Box::new(|b| b["success_criterions"][1]["criterion"]["threshold"] = json!("5")),
        ),
        (
            "boolean expected as string",
            Box::new(|b| b["success_criterions"][0]["criterion"]["expected_value"] = json!("true")),
        ),
        (
            "blank expected value",
            Box::new(|b| b["success_criterions"][2]["criterion"]["expected_values"] = json!([""])),
        ),
        (
            "unknown criterion type",
            Box::new(|b| b["success_criterions"][0]["criterion"]["type"] = json!("fuzzy")),
        ),
        (
            "criterion without type",
            Box::new(|b| b["success_criterions"][0]["criterion"] = json!({"expected_value": true})),
        ),
        (
            "blank criterion name",
            Box::new(|b| b["success_criterions"][0]["name"] = json!(" ")),
        ),
        (
            "extra field in criterion",
            Box::new(|b| b["success_criterions"][0]["weight"] = json!(1)),
        ),
        (
            "tags as list",
            Box::new(|b| b["tags"] = json!([{"key": "a", "value": "b"}])),
        ),
        (
            "tag value a number",
            Box::new(|b| b["tags"] = json!({"a": 1})),
        ),
        ("empty tag key", Box::new(|b| b["tags"] = json!({"": "x"}))),
        (
            "run_count is not a create field",
            Box::new(|b| b["run_count"] = json!(2)),
        ),
        (
            "missing tags",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("tags");
            }),
        ),
        (
            "name too long",
            Box::new(|b| b["name"] = json!("n".repeat(1001))),
        ),
        (
            "too many criteria",
            Box::new(|b| {
                let one = b["success_criterions"][0].clone();
                b["success_criterions"] = Value::Array(vec![one; 101]);
            }),
        ),
    ];
    for (reason, mutate) in cases {
        let mut body = unit_test_body("Bad input");
        mutate(&mut body);
        let (status, json) = status_and_json(app.create(&body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reason}: {json}");
        assert_eq!(json["error_code"], "validation_error", "{reason}");
        assert!(!json["detail"].as_array().unwrap().is_empty(), "{reason}");
    }
    assert_eq!(
        app.list("").await["simulation_unit_tests"],
        json!([]),
        "nothing was written"
    );
}

async fn create_refuses_malformed_missing_and_non_json_bodies(app: TestApp) {
    let url = app.url("/v1/acme/simulation/unit_test/");
    let token = app.admin_token();
    let cases: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        (
            "truncated JSON",
            Some("application/json"),
            b"{\"name\": \"x\"".to_vec(),
        ),
        ("empty body", Some("application/json"), Vec::new()),
        (
            "not JSON at all",
            Some("application/json"),
            b"name=x".to_vec(),
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            unit_test_body("Form").to_string().into_bytes(),
        ),
        (
            "text content type",
            Some("text/plain"),
            unit_test_body("Text").to_string().into_bytes(),
        ),
        (
            "invalid UTF-8",
            Some("application/json"),
            b"{\"name\": \"\xff\xfe\"}".to_vec(),
        ),
        ("a JSON array", Some("application/json"), b"[]".to_vec()),
        (
            "a repeated key",
            Some("application/json"),
            unit_test_body("Twice")
                .to_string()
                .replacen('{', r#"{"name": "Once", "#, 1)
                .into_bytes(),
        ),
        (
            "deep nesting",
            Some("application/json"),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
        ),
    ];
    for (reason, content_type, bytes) in cases {
        let mut request = app.client.post(&url).bearer_auth(&token).body(bytes);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        let (status, json) = status_and_json(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reason}: {json}");
        assert_eq!(json["error_code"], "validation_error", "{reason}");
        assert_eq!(json["detail"][0]["loc"][0], "body", "{reason}: {json}");
    }
    // A body without any content type is read as JSON, as the original API does.
    let response = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .body(unit_test_body("No type").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(names(&app.list("").await), ["No type"]);
}

async fn create_returns_404_for_missing_deleted_or_foreign_references(app: TestApp) {
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "unknown service",
            "service_id",
            json!(UNKNOWN_ID),
            "service_not_found",
        ),
        (
            "inactive service",
            "service_id",
            json!(SERVICE_INACTIVE),
            "service_not_found",
        ),
        (
            "another org's service",
            "service_id",
            json!(GLOBEX_SERVICE),
            "service_not_found",
        ),
        (
            "unknown version set",
            "service_version_set_name",
            json!("nightly"),
            "service_version_set_not_found",
        ),
        (
            "unknown persona",
            "persona_id",
            json!(UNKNOWN_ID),
            "persona_not_found",
        ),
        (
            "deleted persona",
            "persona_id",
            json!(PERSONA_DELETED),
            "persona_not_found",
        ),
        (
            "another org's persona",
            "persona_id",
            json!(GLOBEX_PERSONA),
            "persona_not_found",
        ),
        (
            "unknown scenario",
            "scenario_id",
            json!(UNKNOWN_ID),
            "scenario_not_found",
        ),
        (
            "deleted scenario",
            "scenario_id",
            json!(SCENARIO_DELETED),
            "scenario_not_found",
        ),
    ];
    for (reason, field, value, code) in cases {
        let mut body = unit_test_body("References");
        body[field] = value;
        let (status, json) = status_and_json(app.create(&body).await).await;
        assert_eq!(
            (status, json["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some(code)),
            "{reason}: {json}"
        );
    }
    for (reason, metric) in [
        ("unknown metric", UNKNOWN_ID),
        ("deleted metric", METRIC_DELETED),
        ("another org's metric", GLOBEX_METRIC),
    ] {
        let mut body = unit_test_body("References");
        body["success_criterions"][0]["metric_id"] = json!(metric);
        let (status, json) = status_and_json(app.create(&body).await).await;
        assert_eq!(
            (status, json["error_code"].as_str()),
            (StatusCode::NOT_FOUND, Some("metric_not_found")),
            "{reason}"
        );
    }
    assert_eq!(
        app.list("").await["simulation_unit_tests"],
        json!([]),
        "nothing was written"
    );
}

async fn create_returns_400_when_a_criterion_type_differs_from_its_metric(app: TestApp) {
    let mut body = unit_test_body("Mismatch");
    body["success_criterions"][0]["metric_id"] = json!(METRIC_NUM); // boolean criterion on a numerical metric
    assert_error(
        app.create(&body).await,
        StatusCode::BAD_REQUEST,
        "metric_type_mismatch",
    )
    .await;

    // A missing metric elsewhere in the list wins over a mismatch: 404 comes before 400.
    body["success_criterions"][2]["metric_id"] = json!(UNKNOWN_ID);
    assert_error(
        app.create(&body).await,
        StatusCode::NOT_FOUND,
        "metric_not_found",
    )
    .await;
    assert_eq!(app.list("").await["simulation_unit_tests"], json!([]));
}

async fn create_returns_409_when_an_active_unit_test_has_the_name(app: TestApp) {
    let first = app.create_ok(&unit_test_body("Unique")).await;
    assert_error(
        app.create(&unit_test_body("Unique")).await,
        StatusCode::CONFLICT,
        "unit_test_name_taken",
    )
    .await;
    assert_error(
        app.create(&unit_test_body("  Unique ")).await,
        StatusCode::CONFLICT,
        "unit_test_name_taken",
    )
    .await;
    app.create_ok(&unit_test_body("unique")).await; // names are case-sensitive

    // Another org may use the name.
    let gary = app.token("globex", "gary");
    let response = app
        .create_as(&gary, "globex", &globex_unit_test_body("Unique"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);

    // Deleting frees the name.
    assert_eq!(app.delete(&first).await.status(), StatusCode::NO_CONTENT);
    let second = app.create_ok(&unit_test_body("Unique")).await;
    assert_ne!(first, second);
    assert_eq!(
        app.list("is_deleted=false&sort_by=name").await["simulation_unit_tests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

async fn concurrent_creates_with_one_name_give_exactly_one_201(app: TestApp) {
    let body = unit_test_body("Race");
    let (token, url) = (app.admin_token(), app.url("/v1/acme/simulation/unit_test/"));
    let requests: Vec<_> = (0..64)
        .map(|_| {
            let request = app.client.post(&url).bearer_auth(&token).json(&body);
            tokio::spawn(async move { request.send().await.unwrap().status() })
        })
        .collect();
    let mut statuses = Vec::new();
    for r in requests {
        statuses.push(r.await.unwrap());
    }
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 63), "{statuses:?}");
    assert_eq!(names(&app.list("").await), ["Race"]);
}

async fn create_requires_the_create_permission(app: TestApp) {
    for (user, reason) in [
        ("victor", "viewer"),
        ("audrey", "org role with Get only"),
        ("nobody", "unknown role"),
    ] {
        let token = app.token("acme", user);
        let (status, json) =
            status_and_json(app.create_as(&token, "acme", &unit_test_body("Perm")).await).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{reason}: {json}");
        assert_eq!(json["error_code"], "missing_permission");
    }
    let arthur = app.token("acme", "arthur");
    assert_eq!(
        app.create_as(&arthur, "acme", &unit_test_body("Perm"))
            .await
            .status(),
        StatusCode::CREATED,
        "org role with Create"
    );
}

async fn create_checks_permission_before_validation(app: TestApp) {
    let bad = json!({"name": ""});
    let victor = app.token("acme", "victor");
    // 403 before 422.
    let r = app.create_as(&victor, "acme", &bad).await;
    assert_error(r, StatusCode::FORBIDDEN, "missing_permission").await;
    // 401 before 422.
    let r = app.create_as("not-a-token", "acme", &bad).await;
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // 404 org before 422.
    let alice = app.admin_token();
    let r = app.create_as(&alice, "initech", &bad).await;
    assert_error(r, StatusCode::NOT_FOUND, "organization_not_found").await;
    // 422 before reference checks: a bad body with unknown references lists the body problems.
    let mut body = unit_test_body("Order");
    body["service_id"] = json!(UNKNOWN_ID);
    body["max_interactions"] = json!(0);
    assert_error(
        app.create(&body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
}
