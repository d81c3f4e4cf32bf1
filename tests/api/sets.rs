//! `/v1/{org}/simulation/unit_test_set/…`: the five set operations end to end, their refusals
//! (nothing stored), and the rule across the two resources: a unit test a live set lists cannot be
//! deleted, a set cannot come to list a deleted unit test, even when the two requests race.

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    sets_are_created_listed_searched_updated_and_deleted,
    set_writes_refuse_bad_unit_tests_taken_names_and_bad_bodies_changing_nothing,
    a_listed_unit_test_is_deleted_only_once_no_live_set_lists_it,
    racing_unit_test_deletes_and_set_creates_never_both_succeed,
    set_permissions_follow_the_roles,
);

/// A request to a set path of acme (`rest` after `unit_test_set`), as `token`.
async fn call(
    app: &TestApp,
    method: Method,
    rest: &str,
    token: &str,
    body: Option<&Value>,
) -> Response {
    let mut request = reqwest::Client::new()
        .request(
            method,
            app.url(&format!("/v1/acme/simulation/unit_test_set{rest}")),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

fn set_body(name: &str, unit_tests: &[&str]) -> Value {
    json!({
        "name": name,
        "description": "nightly checks",
        "unit_test_runs": unit_tests.iter().map(|id| json!({"unit_test_id": id, "run_count": 2})).collect::<Vec<_>>(),
        "tags": {"team": "core", "draft": null}
    })
}

async fn create_set(app: &TestApp, body: &Value) -> (StatusCode, Value) {
    status_and_json(call(app, Method::POST, "/", &app.admin_token(), Some(body)).await).await
}

async fn list_sets(app: &TestApp, query: &str) -> Value {
    let (status, page) = status_and_json(
        call(
            app,
            Method::GET,
            &format!("/?{query}"),
            &app.admin_token(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "list sets {query}: {page}");
    page
}

fn set_names(page: &Value, key: &str) -> Vec<String> {
    page[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn sets_are_created_listed_searched_updated_and_deleted(app: TestApp) {
    let a = app.create_ok(&unit_test_body("Refund flow")).await;
    let b = app.create_ok(&unit_test_body("Password reset")).await;
    let (status, created) = create_set(&app, &set_body("Nightly", &[&a, &b])).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["simulation_unit_test_set_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 24);
    let (status, other) = create_set(&app, &set_body("Weekly", &[&a])).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");

    let page = list_sets(&app, "sort_by=-updated_at").await;
    assert_eq!(
        set_names(&page, "simulation_unit_test_sets"),
        ["Weekly", "Nightly"]
    );
    assert_eq!(page["has_more"], false);
    assert_eq!(page["continuation_token"], Value::Null);
    let nightly = &page["simulation_unit_test_sets"][1];
    assert_eq!(nightly["id"], id.as_str());
    assert_eq!(nightly["org_id"], "acme");
    assert_eq!(nightly["description"], "nightly checks");
    assert_eq!(nightly["last_triggered_run_id"], Value::Null);
    assert_eq!(nightly["is_deleted"], false);
    assert_eq!(
        nightly["unit_test_runs"],
        json!([{"unit_test_id": a, "run_count": 2}, {"unit_test_id": b, "run_count": 2}])
    );
    assert_eq!(
        nightly["tags"],
        json!([{"key": "draft", "value": null}, {"key": "team", "value": "core"}])
    );
    assert_eq!(
        nightly["creator"],
        json!({"org_id": "acme", "user_id": "alice"})
    );
    let mut ids = vec![a.clone(), b.clone()];
    ids.sort();
    assert_eq!(page["filter_values"]["unit_test_ids"], json!(ids));
    assert_eq!(page["filter_values"]["tags"], json!(["draft", "team"]));

    // Filters, paging.
    let by_unit_test = list_sets(&app, &format!("unit_test_id={b}")).await;
    assert_eq!(
        set_names(&by_unit_test, "simulation_unit_test_sets"),
        ["Nightly"]
    );
    let first = list_sets(&app, "limit=1").await;
    assert_eq!(first["has_more"], true);
    assert_eq!(first["continuation_token"], 1);
    let second = list_sets(&app, "limit=1&continuation_token=1").await;
    assert_eq!(
        second["filter_values"],
        Value::Null,
        "facets on the first page only"
    );
    assert_eq!(set_names(&second, "simulation_unit_test_sets").len(), 1);

    // Search: terms in name or description, `_id` key.
    let (status, found) = status_and_json(
        call(
            &app,
            Method::GET,
            "/search/?query=WEEK%20checks",
            &app.admin_token(),
            None,
        )
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(set_names(&found, "simulation_unit_test_sets"), ["Weekly"]);
    assert_eq!(
        found["simulation_unit_test_sets"][0]["_id"],
        other["simulation_unit_test_set_id"]
    );
    assert!(found["simulation_unit_test_sets"][0].get("id").is_none());

    // Update without the trailing slash, as the original serves it.
    let patch = json!({"name": "Nightly v2", "description": null, "unit_test_runs": [{"unit_test_id": a, "run_count": 5}]});
    let response = call(
        &app,
        Method::POST,
        &format!("/{id}"),
        &app.token("acme", "bob"),
        Some(&patch),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let page = list_sets(&app, &format!("id={id}")).await;
    let updated = &page["simulation_unit_test_sets"][0];
    assert_eq!(updated["name"], "Nightly v2");
    assert_eq!(updated["description"], Value::Null);
    assert_eq!(
        updated["unit_test_runs"],
        json!([{"unit_test_id": a, "run_count": 5}])
    );
    assert_eq!(
        updated["updated_by"],
        json!({"org_id": "acme", "user_id": "bob"})
    );
    assert_eq!(
        updated["creator"],
        json!({"org_id": "acme", "user_id": "alice"})
    );
    // `{}` leaves the description; b is free now and can be deleted.
    let response = call(
        &app,
        Method::POST,
        &format!("/{id}/"),
        &app.admin_token(),
        Some(&json!({"description": {}})),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&b).await.status(), StatusCode::NO_CONTENT);

    // Delete: soft, the name is free again.
    let response = call(
        &app,
        Method::DELETE,
        &format!("/{id}"),
        &app.admin_token(),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let deleted = list_sets(&app, "is_deleted=true").await;
    assert_eq!(
        set_names(&deleted, "simulation_unit_test_sets"),
        ["Nightly v2"]
    );
    let response = call(
        &app,
        Method::DELETE,
        &format!("/{id}"),
        &app.admin_token(),
        None,
    )
    .await;
    assert_error(response, StatusCode::NOT_FOUND, "unit_test_set_not_found").await;
    let (status, _) = create_set(&app, &set_body("Nightly v2", &[&a])).await;
    assert_eq!(status, StatusCode::CREATED, "a deleted set frees its name");
}

async fn set_writes_refuse_bad_unit_tests_taken_names_and_bad_bodies_changing_nothing(
    app: TestApp,
) {
    let a = app.create_ok(&unit_test_body("Kept")).await;
    let gone = app.create_ok(&unit_test_body("Gone")).await;
    assert_eq!(app.delete(&gone).await.status(), StatusCode::NO_CONTENT);
    let foreign = {
        let response = app
            .create_as(
                &app.token("globex", "gary"),
                "globex",
                &globex_unit_test_body("Theirs"),
            )
            .await;
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["simulation_unit_test_id"].as_str().unwrap().to_owned()
    };
    let unknown = "0123456789abcdef01234567";
    for missing in [gone.clone(), foreign, unknown.to_owned()] {
        let response = call(
            &app,
            Method::POST,
            "/",
            &app.admin_token(),
            Some(&set_body("Bad", &[&a, &missing])),
        )
        .await;
        let body = assert_error(response, StatusCode::NOT_FOUND, "unit_test_not_found").await;
        assert!(
            body["detail"].as_str().unwrap().contains(missing.as_str()),
            "{body}"
        );
    }
    let (status, _) = create_set(&app, &set_body("Taken", &[&a])).await;
    assert_eq!(status, StatusCode::CREATED);
    let response = call(
        &app,
        Method::POST,
        "/",
        &app.admin_token(),
        Some(&set_body("Taken", &[&a])),
    )
    .await;
    assert_error(response, StatusCode::CONFLICT, "unit_test_set_name_taken").await;
    // Every problem of a bad body at once.
    let bad = json!({"name": "  ", "unit_test_runs": [{"unit_test_id": "nope", "run_count": 0}], "tags": [], "extra": 1});
    let response = call(&app, Method::POST, "/", &app.admin_token(), Some(&bad)).await;
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let locs: Vec<String> = body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["loc"].to_string())
        .collect();
    for want in [
        "\"name\"",
        "\"description\"",
        "\"unit_test_id\"",
        "\"run_count\"",
        "\"tags\"",
        "\"extra\"",
    ] {
        assert!(locs.iter().any(|l| l.contains(want)), "{want} in {locs:?}");
    }
    let empty = json!({"name": "x", "description": null, "unit_test_runs": [], "tags": {}});
    let response = call(&app, Method::POST, "/", &app.admin_token(), Some(&empty)).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;

    // Updates: a rename onto a taken name, a deleted unit test, an unknown set.
    let (_, other) = create_set(&app, &set_body("Other", &[&a])).await;
    let other = other["simulation_unit_test_set_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = call(
        &app,
        Method::POST,
        &format!("/{other}"),
        &app.admin_token(),
        Some(&json!({"name": "Taken"})),
    )
    .await;
    assert_error(response, StatusCode::CONFLICT, "unit_test_set_name_taken").await;
    let runs = json!({"unit_test_runs": [{"unit_test_id": gone, "run_count": 1}]});
    let response = call(
        &app,
        Method::POST,
        &format!("/{other}"),
        &app.admin_token(),
        Some(&runs),
    )
    .await;
    assert_error(response, StatusCode::NOT_FOUND, "unit_test_not_found").await;
    let response = call(
        &app,
        Method::POST,
        &format!("/{unknown}"),
        &app.admin_token(),
        Some(&json!({"name": "z"})),
    )
    .await;
    assert_error(response, StatusCode::NOT_FOUND, "unit_test_set_not_found").await;
    let response = call(
        &app,
        Method::POST,
        "/not-an-id",
        &app.admin_token(),
        Some(&json!({"name": "z"})),
    )
    .await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;

    // Nothing of the refused writes is stored.
    let page = list_sets(&app, "").await;
    let mut names = set_names(&page, "simulation_unit_test_sets");
    names.sort();
    assert_eq!(names, ["Other", "Taken"]);
    let other_now = list_sets(&app, &format!("id={other}")).await;
    assert_eq!(
        other_now["simulation_unit_test_sets"][0]["unit_test_runs"],
        json!([{"unit_test_id": a, "run_count": 2}])
    );
}

async fn a_listed_unit_test_is_deleted_only_once_no_live_set_lists_it(app: TestApp) {
    let a = app.create_ok(&unit_test_body("Listed")).await;
    let (_, set) = create_set(&app, &set_body("Holds a", &[&a])).await;
    let set = set["simulation_unit_test_set_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_error(
        app.delete(&a).await,
        StatusCode::BAD_REQUEST,
        "unit_test_in_use",
    )
    .await;
    // Moving the set off `a` frees it as much as deleting the set does.
    let b = app.create_ok(&unit_test_body("Other")).await;
    let runs = json!({"unit_test_runs": [{"unit_test_id": b, "run_count": 1}]});
    let response = call(
        &app,
        Method::POST,
        &format!("/{set}"),
        &app.admin_token(),
        Some(&runs),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&a).await.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.delete(&b).await,
        StatusCode::BAD_REQUEST,
        "unit_test_in_use",
    )
    .await;
    let response = call(
        &app,
        Method::DELETE,
        &format!("/{set}/"),
        &app.admin_token(),
        None,
    )
    .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&b).await.status(), StatusCode::NO_CONTENT);
}

async fn racing_unit_test_deletes_and_set_creates_never_both_succeed(app: TestApp) {
    const PAIRS: usize = 24;
    let mut ids = Vec::new();
    for i in 0..PAIRS {
        ids.push(app.create_ok(&unit_test_body(&format!("Raced {i}"))).await);
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let (app, id) = (app.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let delete = app.delete(&id);
            let body = set_body(&format!("Race set {i}"), &[&id]);
            let token = app.admin_token();
            let create = call(&app, Method::POST, "/", &token, Some(&body));
            let (deleted, created) = tokio::join!(delete, create);
            (id, deleted.status(), created.status())
        }));
    }
    for task in tasks {
        let (id, deleted, created) = task.await.unwrap();
        match (deleted, created) {
            (StatusCode::NO_CONTENT, StatusCode::NOT_FOUND) => {
                let page = list_sets(&app, &format!("unit_test_id={id}")).await;
                assert_eq!(
                    page["simulation_unit_test_sets"],
                    json!([]),
                    "no set lists deleted {id}"
                );
            }
            (StatusCode::BAD_REQUEST, StatusCode::CREATED) => {
                assert_eq!(app.get(&id).await["is_deleted"], false);
            }
            other => panic!("unit test {id}: delete and set create answered {other:?}"),
        }
    }
}

async fn set_permissions_follow_the_roles(app: TestApp) {
    let a = app.create_ok(&unit_test_body("Viewed")).await;
    let (status, _) = create_set(&app, &set_body("Seen", &[&a])).await;
    assert_eq!(status, StatusCode::CREATED);
    let victor = app.token("acme", "victor");
    let (status, page) = status_and_json(call(&app, Method::GET, "/", &victor, None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        set_names(&page, "simulation_unit_test_sets"),
        ["Seen"],
        "viewers read sets"
    );
    let response = call(
        &app,
        Method::POST,
        "/",
        &victor,
        Some(&set_body("Nope", &[&a])),
    )
    .await;
    assert_error(response, StatusCode::FORBIDDEN, "missing_permission").await;
    // A token of another org without a grant reads an empty page and writes nothing.
    let gary = app.token("globex", "gary");
    let (status, page) = status_and_json(call(&app, Method::GET, "/", &gary, None).await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["simulation_unit_test_sets"], json!([]));
    let response = call(
        &app,
        Method::POST,
        "/",
        &gary,
        Some(&set_body("Nope", &[&a])),
    )
    .await;
    assert_error(response, StatusCode::FORBIDDEN, "missing_permission").await;
}
