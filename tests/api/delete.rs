//! `DELETE .../unit_test/{id}/`: soft delete recording who; 403, 404 (unknown, deleted, other
//! org's) and 400 while a live unit test set lists it.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    delete_is_soft_and_records_who_deleted,
    delete_is_refused_while_a_live_unit_test_set_lists_the_unit_test,
    delete_of_unknown_deleted_or_foreign_unit_tests_is_404,
    delete_requires_the_delete_permission,
);

async fn delete_is_soft_and_records_who_deleted(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Doomed")).await;
    let before = app.get(&id).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let bob = app.token("acme", "bob");
    let response = app.delete_as(&bob, "acme", &id).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.text().await.unwrap().is_empty());

    let after = app.get(&id).await;
    assert_eq!(after["is_deleted"], true);
    assert_eq!(
        after["updated_by"],
        json!({"org_id": "acme", "user_id": "bob"})
    );
    assert!(after["updated_at"].as_str().unwrap() > before["updated_at"].as_str().unwrap());
    for kept in [
        "name",
        "description",
        "success_criterions",
        "tags",
        "creator",
        "created_at",
    ] {
        assert_eq!(after[kept], before[kept], "{kept} stays readable");
    }
    assert_error(
        app.delete(&id).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;
}

async fn delete_is_refused_while_a_live_unit_test_set_lists_the_unit_test(app: TestApp) {
    let id = app.create_ok(&unit_test_body("In a set")).await;
    let other = app.create_ok(&unit_test_body("Not in a set")).await;
    let set = |deleted: bool| {
        json!({"unit_test_sets": [{
            "_id": "6618791275130b73714e8d5a", "org_id": "acme", "name": "nightly",
            "unit_test_runs": [{"unit_test_id": id, "run_count": 2}], "is_deleted": deleted
        }]})
    };
    app.seed(&set(false)).await;
    assert_error(
        app.delete(&id).await,
        StatusCode::BAD_REQUEST,
        "unit_test_in_use",
    )
    .await;
    assert_eq!(app.get(&id).await["is_deleted"], false);
    assert_eq!(
        app.delete(&other).await.status(),
        StatusCode::NO_CONTENT,
        "only listed unit tests are held"
    );

    // A set in another org listing this id does not hold it, and a deleted set neither.
    app.seed(&json!({"unit_test_sets": [{
        "_id": "7718791275130b73714e8d5a", "org_id": "globex", "name": "theirs",
        "unit_test_runs": [{"unit_test_id": id, "run_count": 1}]
    }]}))
    .await;
    app.seed(&set(true)).await;
    assert_eq!(app.delete(&id).await.status(), StatusCode::NO_CONTENT);
}

async fn delete_of_unknown_deleted_or_foreign_unit_tests_is_404(app: TestApp) {
    assert_error(
        app.delete(UNKNOWN_ID).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;
    let error = assert_error(
        app.delete("0123").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(
        error["detail"][0]["loc"],
        json!(["path", "simulation_unit_test_id"])
    );
    let id = app.create_ok(&unit_test_body("Acme's")).await;
    let gary = app.token("globex", "gary");
    assert_error(
        app.delete_as(&gary, "globex", &id).await,
        StatusCode::NOT_FOUND,
        "unit_test_not_found",
    )
    .await;
    assert_eq!(
        app.get(&id).await["is_deleted"],
        false,
        "another org cannot delete it"
    );
}

async fn delete_requires_the_delete_permission(app: TestApp) {
    let id = app.create_ok(&unit_test_body("Guarded")).await;
    for user in ["victor", "audrey", "arthur", "nobody"] {
        let token = app.token("acme", user);
        let r = app.delete_as(&token, "acme", &id).await;
        let body = assert_error(r, StatusCode::FORBIDDEN, "missing_permission").await;
        assert!(body["detail"].is_string(), "{user}: {body}");
    }
    assert_eq!(app.get(&id).await["is_deleted"], false);
}
