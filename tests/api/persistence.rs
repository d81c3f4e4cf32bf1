//! Everything acknowledged survives a restart of the server on the same store.

use reqwest::StatusCode;
use serde_json::json;

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(everything_acknowledged_survives_a_restart);

async fn everything_acknowledged_survives_a_restart(app: TestApp) {
    let kept = app.create_ok(&unit_test_body("Kept")).await;
    let changed = app.create_ok(&unit_test_body("Changed")).await;
    let deleted = app.create_ok(&unit_test_body("Deleted")).await;
    assert_eq!(
        app.update(&changed, &json!({"run_count": 5, "tags": {"v": "2"}}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete(&deleted).await.status(), StatusCode::NO_CONTENT);
    let before = app.list("sort_by=name").await;

    let app = app.restart().await;
    let after = app.list("sort_by=name").await;
    assert_eq!(
        after, before,
        "every field of every unit test is read back unchanged"
    );
    assert_eq!(app.get(&changed).await["run_count"], 5);
    assert_eq!(app.get(&deleted).await["is_deleted"], true);
    // Rules still hold on the reopened store: the name index came back with the data.
    assert_eq!(
        app.create(&unit_test_body("Kept")).await.status(),
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.create(&unit_test_body("Deleted")).await.status(),
        StatusCode::CREATED
    );
    let _ = kept;
}
