//! `POST .../unit_test/{id}/`: only given fields change (and `updated_at`/`updated_by`), references
//! rechecked, bad values and `name` refused with nothing changed, 403/404, concurrent updates
//! consistent.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    update_changes_only_given_fields_and_moves_updated_at_and_by,
    update_with_nothing_effective_changes_nothing,
    update_refuses_name_and_bad_values_and_changes_nothing,
    update_rechecks_changed_references,
    update_of_unknown_deleted_or_foreign_unit_tests_is_404,
    update_requires_the_modify_permission,
    concurrent_updates_all_land_and_leave_a_consistent_document,
    concurrent_updates_and_a_delete_leave_a_consistent_deleted_document,
);

async fn update_changes_only_given_fields_and_moves_updated_at_and_by(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Patch me")).await;
    let before = app.get(&id).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let bob = app.token("acme", "bob");
    let patch = json!({
        "description": "  new description ",
        "max_interactions": 42,
        "run_count": 3,
        "tags": {"team": "core"},
        "success_criterions": [
            {"name": "tone", "metric_id": METRIC_CAT, "criterion": {"type": "categorical", "expected_values": ["calm"]}}
        ],
        "persona_id": null
    });
    assert_eq!(
        app.update_as(&bob, "acme", &id, &patch).await.status(),
        StatusCode::NO_CONTENT
    );

    let after = app.get(&id).await;
    assert_eq!(after["description"], "new description");
    assert_eq!(after["max_interactions"], 42);
    assert_eq!(after["run_count"], 3);
    assert_eq!(
        after["tags"],
        json!([{"key": "team", "value": "core"}]),
        "tags are replaced whole"
    );
    assert_eq!(
        after["success_criterions"], patch["success_criterions"],
        "criteria are replaced whole"
    );
    for unchanged in [
        "name",
        "service_id",
        "service_version_set_name",
        "persona_id",
        "scenario_id",
        "creator",
        "created_at",
        "org_id",
    ] {
        assert_eq!(
            after[unchanged], before[unchanged],
            "{unchanged} must not change"
        );
    }
    assert_eq!(
        after["updated_by"],
        json!({"org_id": "acme", "user_id": "bob"})
    );
    assert!(after["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());

    // Service and version set may change together.
    let patch = json!({"service_id": SERVICE_2, "service_version_set_name": "release", "scenario_id": SCENARIO_2});
    assert_eq!(
        app.update(&id, &patch).await.status(),
        StatusCode::NO_CONTENT
    );
    let after = app.get(&id).await;
    assert_eq!(
        (after["service_id"].as_str(), after["scenario_id"].as_str()),
        (Some(SERVICE_2), Some(SCENARIO_2))
    );
}

async fn update_with_nothing_effective_changes_nothing(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Stay")).await;
    let before = app.get(&id).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let bob = app.token("acme", "bob");
    for body in [
        json!({}),
        json!({"description": null, "tags": null}),
        json!({"max_interactions": 10, "service_id": SERVICE}),
    ] {
        assert_eq!(
            app.update_as(&bob, "acme", &id, &body).await.status(),
            StatusCode::NO_CONTENT,
            "{body}"
        );
    }
    assert_eq!(
        app.get(&id).await,
        before,
        "no effective change: updated_at and updated_by stay"
    );
}

async fn update_refuses_name_and_bad_values_and_changes_nothing(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Fixed name")).await;
    let before = app.get(&id).await;
    let cases = [
        (json!({"name": "Other"}), "name cannot change"),
        (json!({"name": "Fixed name"}), "not even to itself"),
        (json!({"run_count": 0}), "run_count must be positive"),
        (json!({"run_count": -4}), "negative run_count"),
        (
            json!({"max_interactions": 101}),
            "max_interactions over 100",
        ),
        (json!({"description": ""}), "blank description"),
        (
            json!({"success_criterions": []}),
            "criteria must not be empty",
        ),
        (json!({"service_id": "XYZ"}), "bad id"),
        (json!({"tags": "team"}), "tags not an object"),
        (json!({"colour": "red"}), "unknown field"),
        (json!([1, 2]), "not an object"),
    ];
    for (body, reason) in cases {
        let (status, json) = status_and_json(app.update(&id, &body).await).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reason}: {json}");
    }
    // Path and body problems are listed together.
    let error = assert_error(
        app.update("NOT-AN-ID", &json!({"run_count": 0})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let locs: Vec<&Value> = error["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["loc"])
        .collect();
    assert_eq!(
        locs,
        [
            &json!(["path", "simulation_unit_test_id"]),
            &json!(["body", "run_count"])
        ]
    );
    assert_eq!(app.get(&id).await, before);
}

async fn update_rechecks_changed_references(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Refs")).await;
    let before = app.get(&id).await;
    let cases = [
        (
            json!({"service_id": UNKNOWN_ID}),
            StatusCode::NOT_FOUND,
            "service_not_found",
        ),
        (
            json!({"service_id": SERVICE_INACTIVE}),
            StatusCode::NOT_FOUND,
            "service_not_found",
        ),
        (
            json!({"service_version_set_name": "nightly"}),
            StatusCode::NOT_FOUND,
            "service_version_set_not_found",
        ),
        // SERVICE_2 has no `edge`: the set is checked against the new service.
        (
            json!({"service_id": SERVICE_2, "service_version_set_name": "edge"}),
            StatusCode::NOT_FOUND,
            "service_version_set_not_found",
        ),
        (
            json!({"persona_id": PERSONA_DELETED}),
            StatusCode::NOT_FOUND,
            "persona_not_found",
        ),
        (
            json!({"scenario_id": GLOBEX_PERSONA}),
            StatusCode::NOT_FOUND,
            "scenario_not_found",
        ),
        (
            json!({"success_criterions": [{"name": "c", "metric_id": METRIC_DELETED, "criterion": {"type": "boolean", "expected_value": true}}]}),
            StatusCode::NOT_FOUND,
            "metric_not_found",
        ),
        (
            json!({"success_criterions": [{"name": "c", "metric_id": METRIC_BOOL, "criterion": {"type": "numerical", "verb": ">", "threshold": 1}}]}),
            StatusCode::BAD_REQUEST,
            "metric_type_mismatch",
        ),
    ];
    for (body, status, code) in cases {
        let (actual, json) = status_and_json(app.update(&id, &body).await).await;
        assert_eq!(
            (actual, json["error_code"].as_str()),
            (status, Some(code)),
            "{body}: {json}"
        );
    }
    assert_eq!(app.get(&id).await, before, "failed updates change nothing");
    let ok = json!({"service_version_set_name": "edge"});
    assert_eq!(
        app.update(&id, &ok).await.status(),
        StatusCode::NO_CONTENT,
        "edge exists on the current service"
    );
}

async fn update_of_unknown_deleted_or_foreign_unit_tests_is_404(app: TestApp) {
    let body = json!({"run_count": 2});
    assert_error(
        app.update(UNKNOWN_ID, &body).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;
    let id = app.create_ok(&unit_test_body("Gone")).await;
    assert_eq!(app.delete(&id).await.status(), StatusCode::NO_CONTENT);
    assert_error(
        app.update(&id, &body).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;

    let live = app.create_ok(&unit_test_body("Acme's")).await;
    let gary = app.token("globex", "gary");
    assert_error(
        app.update_as(&gary, "globex", &live, &body).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;
    assert_eq!(
        app.get(&live).await["run_count"],
        1,
        "another org cannot change it"
    );
}

async fn update_requires_the_modify_permission(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Guarded")).await;
    for user in ["victor", "audrey", "arthur", "nobody"] {
        let token = app.token("acme", user);
        let response = app
            .update_as(&token, "acme", &id, &json!({"run_count": 9}))
            .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{user}");
    }
    // 403 comes before 422 and before 404.
    let victor = app.token("acme", "victor");
    assert_eq!(
        app.update_as(&victor, "acme", "bad", &json!({"name": 1}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.update_as(&victor, "acme", UNKNOWN_ID, &json!({}))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(app.get(&id).await["run_count"], 1);
}

async fn concurrent_updates_all_land_and_leave_a_consistent_document(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Busy")).await;
    let token = app.admin_token();
    let mut handles = Vec::new();
    for i in 1..=16u64 {
        let (client, url, token) = (
            app.client.clone(),
            app.url(&format!("/v1/acme/simulation/unit_test/{id}/")),
            token.clone(),
        );
        // Half change run_count, half change the description: neither may erase the other's field.
        let body = if i % 2 == 0 {
            json!({"run_count": i})
        } else {
            json!({"description": format!("d{i}")})
        };
        handles.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), StatusCode::NO_CONTENT);
    }
    let after = app.get(&id).await;
    assert!(
        after["run_count"].as_u64().unwrap() % 2 == 0 && after["run_count"].as_u64().unwrap() >= 2,
        "{after}"
    );
    assert!(
        after["description"].as_str().unwrap().starts_with('d'),
        "{after}"
    );
    assert_eq!(after["name"], "Busy");
}

async fn concurrent_updates_and_a_delete_leave_a_consistent_deleted_document(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Contested")).await;
    let before = app.get(&id).await;
    let token = app.admin_token();
    let url = app.url(&format!("/v1/acme/simulation/unit_test/{id}/"));
    let update = |i: u64| {
        let request = app
            .client
            .post(&url)
            .bearer_auth(&token)
            .json(&json!({"run_count": i + 2, "tags": {"round": i.to_string()}}));
        tokio::spawn(async move { (i, request.send().await.unwrap().status()) })
    };
    // Eleven updates race; the delete goes out once the first of them has landed, so at least one
    // update is in the final document and the check below always runs.
    let mut tasks: Vec<_> = (0..12u64).filter(|i| *i != 6).map(update).collect();
    let first = tasks.remove(0).await.unwrap();
    assert_eq!(first, (0, StatusCode::NO_CONTENT));
    let delete = app.client.delete(&url).bearer_auth(&token);
    tasks.push(tokio::spawn(async move {
        (6, delete.send().await.unwrap().status())
    }));
    let mut statuses = vec![first];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert!(
        statuses.iter().all(|(i, s)| if *i == 6 {
            *s == StatusCode::NO_CONTENT
        } else {
            *s == StatusCode::NO_CONTENT || *s == StatusCode::NOT_FOUND
        }),
        "updates land before the delete or find it deleted: {statuses:?}"
    );
    let after = app.get(&id).await;
    assert_eq!(after["is_deleted"], true);
    assert_eq!(after["name"], before["name"]);
    assert_eq!(after["success_criterions"], before["success_criterions"]);
    // The last landed update's fields travel together: run_count and its round tag agree.
    let run_count = after["run_count"].as_u64().unwrap();
    assert!(run_count >= 2, "the first update landed: {after}");
    assert_eq!(
        after["tags"],
        json!([{"key": "round", "value": (run_count - 2).to_string()}]),
        "{after}"
    );
    assert!(after["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());
}
