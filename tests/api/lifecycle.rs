//! simtest's own operations beyond Amigo's API: reading one unit test with its `ETag`,
//! `If-None-Match` (304), and `If-Match` on update and delete (412 on a stale copy, atomic with
//! the write: of racing updates based on one version exactly one lands); cloning; safe retries
//! with `Idempotency-Key`; history; hard delete.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    read_one_answers_the_list_item_with_an_etag_and_304_when_unchanged,
    if_match_refuses_writes_on_a_stale_copy_and_changes_nothing,
    racing_updates_with_one_etag_let_exactly_one_through,
    clone_copies_the_content_under_a_new_name,
    an_idempotency_key_replays_the_first_answer_and_refuses_other_requests,
    concurrent_creates_with_one_idempotency_key_create_one_unit_test,
    history_lists_every_write_newest_first_with_its_changes,
    hard_delete_removes_a_deleted_unlisted_unit_test_for_good,
);

async fn read(
    app: &TestApp,
    token: &str,
    org: &str,
    id: &str,
    if_none_match: Option<&str>,
) -> Response {
    let mut request = app
        .client
        .get(app.url(&format!("/v1/{org}/simulation/unit_test/{id}/")))
        .bearer_auth(token);
    if let Some(tag) = if_none_match {
        request = request.header("If-None-Match", tag);
    }
    request.send().await.expect("request")
}

fn etag_of(response: &Response) -> String {
    response
        .headers()
        .get("etag")
        .expect("an ETag header")
        .to_str()
        .unwrap()
        .to_owned()
}

async fn update_if(app: &TestApp, id: &str, tag: &str, body: &Value) -> Response {
    app.client
        .post(app.url(&format!("/v1/acme/simulation/unit_test/{id}/")))
        .bearer_auth(app.admin_token())
        .header("If-Match", tag)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn read_one_answers_the_list_item_with_an_etag_and_304_when_unchanged(app: TestApp) {
    let created = app.create(&unit_test_body("Readable")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created_tag = etag_of(&created);
    let id = created.json::<Value>().await.unwrap()["simulation_unit_test_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = read(&app, &app.admin_token(), "acme", &id, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let tag = etag_of(&response);
    assert_eq!(tag, created_tag, "the create's ETag names the version read");
    assert!(tag.starts_with('"') && tag.ends_with('"'), "strong: {tag}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, app.get(&id).await, "the list item's shape");

    let response = read(&app, &app.admin_token(), "acme", &id, Some(&tag)).await;
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(etag_of(&response), tag);
    assert!(response.bytes().await.unwrap().is_empty());
    let weak = format!("W/{tag}");
    let response = read(&app, &app.admin_token(), "acme", &id, Some(&weak)).await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_MODIFIED,
        "If-None-Match compares weakly"
    );

    // An update moves the tag; its answer carries the new one.
    let updated = app.update(&id, &json!({"max_interactions": 7})).await;
    assert_eq!(updated.status(), StatusCode::NO_CONTENT);
    let new_tag = etag_of(&updated);
    assert_ne!(new_tag, tag);
    let response = read(&app, &app.admin_token(), "acme", &id, Some(&tag)).await;
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the old tag no longer matches"
    );
    assert_eq!(etag_of(&response), new_tag);

    // Viewers read; deleted unit tests stay readable; other orgs' and unknown ids are 404.
    let viewer = app.token("acme", "victor");
    assert_eq!(
        read(&app, &viewer, "acme", &id, None).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.delete(&id).await.status(), StatusCode::NO_CONTENT);
    let response = read(&app, &app.admin_token(), "acme", &id, None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["is_deleted"], true);
    let gary = app.token("globex", "gary");
    let response = read(&app, &gary, "globex", &id, None).await;
    assert_error(response, StatusCode::NOT_FOUND, "unit_test_not_found").await;
    let response = read(
        &app,
        &app.admin_token(),
        "acme",
        "0123456789abcdef01234567",
        None,
    )
    .await;
    assert_error(response, StatusCode::NOT_FOUND, "unit_test_not_found").await;
    let response = read(&app, &app.admin_token(), "acme", "xyz", Some("nope")).await;
    let body = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(
        body["detail"].as_array().unwrap().len(),
        2,
        "path and header: {body}"
    );
    // A token of another org without a grant has no permission here.
    let response = read(&app, &gary, "acme", &id, None).await;
    assert_error(response, StatusCode::FORBIDDEN, "missing_permission").await;
}

async fn if_match_refuses_writes_on_a_stale_copy_and_changes_nothing(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Guarded")).await;
    let first = etag_of(&read(&app, &app.admin_token(), "acme", &id, None).await);
    let response = update_if(&app, &id, &first, &json!({"max_interactions": 9})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let second = etag_of(&response);

    // The first copy is stale now: refused, nothing written.
    let before = app.get(&id).await;
    let response = update_if(&app, &id, &first, &json!({"max_interactions": 3})).await;
    assert_error(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    )
    .await;
    let response = app
        .client
        .delete(app.url(&format!("/v1/acme/simulation/unit_test/{id}/")))
        .bearer_auth(app.admin_token())
        .header("If-Match", &first)
        .send()
        .await
        .unwrap();
    assert_error(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    )
    .await;
    assert_eq!(app.get(&id).await, before, "nothing changed");
    // A weak tag never matches strongly; a malformed header is 422.
    let response = update_if(
        &app,
        &id,
        &format!("W/{second}"),
        &json!({"max_interactions": 3}),
    )
    .await;
    assert_error(
        response,
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
    )
    .await;
    let response = update_if(&app, &id, "not-a-tag", &json!({"max_interactions": 3})).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(app.get(&id).await, before, "nothing changed");

    // The current tag (in a list, or `*`) lets the write through.
    let listed = format!("\"other\", {second}");
    let response = update_if(&app, &id, &listed, &json!({"max_interactions": 4})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = update_if(&app, &id, "*", &json!({"max_interactions": 5})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let current = etag_of(&response);
    let response = app
        .client
        .delete(app.url(&format!("/v1/acme/simulation/unit_test/{id}/")))
        .bearer_auth(app.admin_token())
        .header("If-Match", &current)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
}

async fn racing_updates_with_one_etag_let_exactly_one_through(app: TestApp) {
    const WRITERS: usize = 16;
    let id = app.create_ok(&unit_test_body("Contended")).await;
    let tag = etag_of(&read(&app, &app.admin_token(), "acme", &id, None).await);
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let (app, id, tag) = (app.clone(), id.clone(), tag.clone());
        tasks.push(tokio::spawn(async move {
            let response = update_if(
                &app,
                &id,
                &tag,
                &json!({"description": format!("writer {n}")}),
            )
            .await;
            (n, response.status())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (n, status) = task.await.unwrap();
        match status {
            StatusCode::NO_CONTENT => winners.push(n),
            StatusCode::PRECONDITION_FAILED => {}
            other => panic!("writer {n}: {other}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one update based on {tag} lands: {winners:?}"
    );
    assert_eq!(
        app.get(&id).await["description"],
        format!("writer {}", winners[0])
    );
}

async fn clone_to(app: &TestApp, token: &str, id: &str, body: &Value) -> Response {
    app.client
        .post(app.url(&format!("/v1/acme/simulation/unit_test/{id}/clone")))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

async fn clone_copies_the_content_under_a_new_name(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Original")).await;
    assert_eq!(
        app.update(&id, &json!({"run_count": 4})).await.status(),
        StatusCode::NO_CONTENT
    );
    let original = app.get(&id).await;
    let bob = app.token("acme", "bob");
    let response = clone_to(&app, &bob, &id, &json!({"name": "  Copy  "})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let tag = etag_of(&response);
    let copy_id = response.json::<Value>().await.unwrap()["simulation_unit_test_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(copy_id, id);
    let copy = app.get(&copy_id).await;
    assert_eq!(
        etag_of(&read(&app, &app.admin_token(), "acme", &copy_id, None).await),
        tag
    );
    for same in [
        "description",
        "service_id",
        "service_version_set_name",
        "persona_id",
        "scenario_id",
        "max_interactions",
        "success_criterions",
        "run_count",
        "tags",
    ] {
        assert_eq!(copy[same], original[same], "{same}");
    }
    assert_eq!(copy["name"], "Copy");
    assert_eq!(copy["creator"], json!({"org_id": "acme", "user_id": "bob"}));
    assert_eq!(copy["is_deleted"], false);

    // A taken name, a bad body, an unknown source, a viewer: refused, nothing created.
    let before = app.list("").await["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .len();
    let response = clone_to(&app, &bob, &id, &json!({"name": "Copy"})).await;
    assert_error(response, StatusCode::CONFLICT, "unit_test_name_taken").await;
    let response = clone_to(&app, &bob, &id, &json!({"name": "x", "description": "no"})).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let response = clone_to(
        &app,
        &bob,
        "0123456789abcdef01234567",
        &json!({"name": "y"}),
    )
    .await;
    assert_error(response, StatusCode::NOT_FOUND, "unit_test_not_found").await;
    let viewer = app.token("acme", "victor");
    let response = clone_to(&app, &viewer, &id, &json!({"name": "z"})).await;
    assert_error(response, StatusCode::FORBIDDEN, "missing_permission").await;
    assert_eq!(
        app.list("").await["simulation_unit_tests"]
            .as_array()
            .unwrap()
            .len(),
        before
    );

    // A deleted unit test can be cloned back.
    assert_eq!(app.delete(&id).await.status(), StatusCode::NO_CONTENT);
    let response = clone_to(&app, &bob, &id, &json!({"name": "Original"})).await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn create_with_key(app: &TestApp, token: &str, key: &str, body: &Value) -> Response {
    app.client
        .post(app.url("/v1/acme/simulation/unit_test/"))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .expect("request")
}

fn count_named(page: &Value, name: &str) -> usize {
    page["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == name)
        .count()
}

async fn an_idempotency_key_replays_the_first_answer_and_refuses_other_requests(app: TestApp) {
    let alice = app.admin_token();
    let body = unit_test_body("Once only");
    let first = create_with_key(&app, &alice, "retry-1", &body).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let tag = etag_of(&first);
    let first: Value = first.json().await.unwrap();

    let again = create_with_key(&app, &alice, "retry-1", &body).await;
    assert_eq!(again.status(), StatusCode::CREATED);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(etag_of(&again), tag);
    assert_eq!(
        again.json::<Value>().await.unwrap(),
        first,
        "the first answer, replayed"
    );
    assert_eq!(count_named(&app.list("").await, "Once only"), 1);

    // The key with another request: refused, nothing created.
    let other = unit_test_body("Something else");
    let response = create_with_key(&app, &alice, "retry-1", &other).await;
    let refusal = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(
        refusal["detail"][0]["type"], "idempotency_key_reused",
        "{refusal}"
    );
    assert_eq!(
        refusal["detail"][0]["loc"],
        json!(["header", "idempotency-key"])
    );
    assert_eq!(count_named(&app.list("").await, "Something else"), 0);

    // A refusal that ran (409) is kept and replayed; one that did not run (422) is not.
    let response = create_with_key(&app, &alice, "retry-2", &body).await;
    assert_error(response, StatusCode::CONFLICT, "unit_test_name_taken").await;
    let response = create_with_key(&app, &alice, "retry-2", &body).await;
    assert_eq!(response.headers()["idempotent-replayed"], "true");
    assert_error(response, StatusCode::CONFLICT, "unit_test_name_taken").await;
    let response = create_with_key(&app, &alice, "retry-3", &json!({"name": "bad"})).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let response = create_with_key(&app, &alice, "retry-3", &other).await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "a 422 does not hold the key"
    );

    // Keys are per caller: bob's `retry-1` is his own.
    let bob = app.token("acme", "bob");
    let response = create_with_key(&app, &bob, "retry-1", &unit_test_body("Bob's")).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert!(response.headers().get("idempotent-replayed").is_none());

    // Malformed keys: 422, nothing created.
    for bad in ["has space", &"k".repeat(256), ""] {
        let response = create_with_key(&app, &alice, bad, &unit_test_body("Never")).await;
        assert_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        )
        .await;
    }
    assert_eq!(count_named(&app.list("").await, "Never"), 0);

    // Clones take keys too.
    let url = app.url(&format!(
        "/v1/acme/simulation/unit_test/{}/clone",
        first["simulation_unit_test_id"].as_str().unwrap()
    ));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(&url)
            .bearer_auth(&alice)
            .header("Idempotency-Key", "clone-1")
            .json(&json!({"name": "Cloned once"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        ids.push(response.json::<Value>().await.unwrap());
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(count_named(&app.list("").await, "Cloned once"), 1);
}

async fn concurrent_creates_with_one_idempotency_key_create_one_unit_test(app: TestApp) {
    const RETRIES: usize = 12;
    let app = std::sync::Arc::new(app);
    let body = unit_test_body("Raced once");
    let mut tasks = Vec::new();
    for _ in 0..RETRIES {
        let (app, body) = (app.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let response = create_with_key(&app, &app.admin_token(), "race-1", &body).await;
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut created = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created.push(body["simulation_unit_test_id"].clone()),
            StatusCode::CONFLICT => assert_eq!(body["error_code"], "idempotency_key_in_use"),
            other => panic!("{other}: {body}"),
        }
    }
    assert!(!created.is_empty());
    assert!(created.iter().all(|id| *id == created[0]), "{created:?}");
    assert_eq!(count_named(&app.list("").await, "Raced once"), 1);
}

async fn history(app: &TestApp, token: &str, id: &str, query: &str) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(&format!(
            "/v1/acme/simulation/unit_test/{id}/history/?{query}"
        )))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    status_and_json(response).await
}

async fn history_lists_every_write_newest_first_with_its_changes(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Tracked")).await;
    let bob = app.token("acme", "bob");
    let response = app
        .update_as(&bob, "acme", &id, &json!({"max_interactions": 11}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = app
        .update(&id, &json!({"tags": {"team": "qa"}, "run_count": 2}))
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // A no-op records nothing.
    let response = app.update(&id, &json!({"run_count": 2})).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&id).await.status(), StatusCode::NO_CONTENT);

    let viewer = app.token("acme", "victor");
    let (status, page) = history(&app, &viewer, &id, "").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let versions = page["versions"].as_array().unwrap();
    let actions: Vec<&str> = versions
        .iter()
        .map(|v| v["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "update", "update", "create"], "{page}");
    assert_eq!(page["has_more"], false);
    let changed = |v: &Value| -> Vec<String> {
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["field"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(changed(&versions[0]), ["is_deleted"]);
    assert_eq!(versions[0]["changes"][0]["before"], false);
    assert_eq!(versions[0]["changes"][0]["after"], true);
    let mut second = changed(&versions[1]);
    second.sort();
    assert_eq!(second, ["run_count", "tags"]);
    assert_eq!(changed(&versions[2]), ["max_interactions"]);
    assert_eq!(versions[2]["changes"][0]["before"], 10);
    assert_eq!(versions[2]["changes"][0]["after"], 11);
    assert_eq!(
        versions[2]["updated_by"],
        json!({"org_id": "acme", "user_id": "bob"})
    );
    assert!(changed(&versions[3]).contains(&"name".to_owned()));
    assert_eq!(versions[3]["changes"][0]["before"], Value::Null);
    // Each version's tag is the ETag that version had.
    let current = read(&app, &app.admin_token(), "acme", &id, None).await;
    assert_eq!(versions[0]["etag"], etag_of(&current));

    // Pages: newest first, continuing where the last one stopped.
    let (_, first) = history(&app, &viewer, &id, "limit=3").await;
    assert_eq!(first["versions"].as_array().unwrap().len(), 3);
    assert_eq!(first["has_more"], true);
    let token = first["continuation_token"].as_u64().unwrap();
    let (_, rest) = history(
        &app,
        &viewer,
        &id,
        &format!("limit=3&continuation_token={token}"),
    )
    .await;
    assert_eq!(rest["versions"].as_array().unwrap().len(), 1);
    assert_eq!(rest["versions"][0]["action"], "create");
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["continuation_token"], Value::Null);

    // Refusals.
    let (status, _) = history(&app, &viewer, "0123456789abcdef01234567", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = history(&app, &viewer, &id, "limit=101&continuation_token=-1").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["detail"].as_array().unwrap().len(), 2, "{body}");
    let gary = app.token("globex", "gary");
    let (status, _) = history(&app, &gary, &id, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn purge(app: &TestApp, token: &str, id: &str) -> Response {
    app.client
        .delete(app.url(&format!("/v1/acme/simulation/unit_test/{id}/permanently")))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

async fn hard_delete_removes_a_deleted_unlisted_unit_test_for_good(app: TestApp) {
    let alice = app.admin_token();
    let gone = app.create_ok(&unit_test_body("Mistake")).await;
    let kept = app.create_ok(&unit_test_body("Kept")).await;
    let listed = app.create_ok(&unit_test_body("In a set")).await;

    // Only deleted unit tests, only by those with the permission.
    assert_error(
        purge(&app, &alice, &gone).await,
        StatusCode::BAD_REQUEST,
        "unit_test_not_deleted",
    )
    .await;
    assert_eq!(app.delete(&gone).await.status(), StatusCode::NO_CONTENT);
    let bob = app.token("acme", "victor");
    assert_error(
        purge(&app, &bob, &gone).await,
        StatusCode::FORBIDDEN,
        "missing_permission",
    )
    .await;

    let response = purge(&app, &alice, &gone).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    // Gone everywhere: read, list, search, export, history; its name stays free.
    let read_back = read(&app, &alice, "acme", &gone, None).await;
    assert_error(read_back, StatusCode::NOT_FOUND, "unit_test_not_found").await;
    let page = app.list("").await;
    let ids: Vec<&str> = page["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(!ids.contains(&gone.as_str()));
    assert!(
        app.list(&format!("id={gone}")).await["simulation_unit_tests"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        app.search("query=mistake").await["simulation_unit_tests"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (status, _) = history(&app, &alice, &gone, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(
        purge(&app, &alice, &gone).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;
    assert_eq!(
        app.create(&unit_test_body("Mistake")).await.status(),
        StatusCode::CREATED
    );

    // A unit test a set lists, even a deleted set, stays.
    let set = app
        .client
        .post(app.url("/v1/acme/simulation/unit_test_set/"))
        .bearer_auth(&alice)
        .json(&json!({"name": "Holds it", "description": null, "unit_test_runs": [{"unit_test_id": listed, "run_count": 1}], "tags": {}}))
        .send()
        .await
        .unwrap();
    let set: Value = set.json().await.unwrap();
    let set = set["simulation_unit_test_set_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted_set = app
        .client
        .delete(app.url(&format!("/v1/acme/simulation/unit_test_set/{set}")))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted_set.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&listed).await.status(), StatusCode::NO_CONTENT);
    assert_error(
        purge(&app, &alice, &listed).await,
        StatusCode::BAD_REQUEST,
        "unit_test_in_use",
    )
    .await;
    assert_eq!(app.get(&kept).await["is_deleted"], false);
}
