//! simtest's export and import: the filtered unit tests as NDJSON, and rows imported with each
//! validated as create validates it (per-row outcomes, dry runs, all-or-nothing imports), an
//! export importing back as new unit tests with the same content.

use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    export_writes_the_filtered_unit_tests_and_they_import_back_as_new_ones,
    export_pages_through_every_unit_test_once_with_dense_and_sparse_filters,
    import_answers_every_row_and_dry_runs_and_atomic_imports_write_accordingly,
);

async fn export(app: &TestApp, query: &str) -> (StatusCode, String) {
    let response = app
        .client
        .get(app.url(&format!("/v1/acme/simulation/unit_test/export?{query}")))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    }
    (status, response.text().await.unwrap())
}

async fn import(app: &TestApp, query: &str, content_type: &str, body: String) -> Response {
    app.client
        .post(app.url(&format!("/v1/acme/simulation/unit_test/import?{query}")))
        .bearer_auth(app.admin_token())
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

fn lines(ndjson: &str) -> Vec<Value> {
    ndjson
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

async fn export_writes_the_filtered_unit_tests_and_they_import_back_as_new_ones(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["Alpha", "Beta", "Gamma"] {
        let mut body = unit_test_body(name);
        body["tags"] = json!({"suite": "bulk", "flaky": null});
        ids.push(app.create_ok(&body).await);
    }
    assert_eq!(
        app.update(&ids[1], &json!({"run_count": 3})).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete(&ids[2]).await.status(), StatusCode::NO_CONTENT);

    let (status, all) = export(&app, "").await;
    assert_eq!(status, StatusCode::OK);
    let all = lines(&all);
    assert_eq!(all.len(), 3, "deleted ones too unless filtered");
    let (_, live) = export(&app, "is_deleted=false&tag=suite:bulk").await;
    let live = lines(&live);
    let mut want = ids[..2].to_vec();
    want.sort();
    let got: Vec<&str> = live.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(got, want, "id order");
    for line in &live {
        assert_eq!(
            *line,
            app.get(line["id"].as_str().unwrap()).await,
            "the list item's shape"
        );
    }
    let (status, body) = export(&app, "limit=abc&sort_by=nope").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // Importing the export into the same org: the names are taken (409 per row, nothing new).
    let ndjson: String = live.iter().map(|l| format!("{l}\n")).collect();
    let response = import(&app, "", "application/x-ndjson", ndjson.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["created"], 0);
    assert_eq!(report["failed"], 2);
    assert!(
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == 409)
    );

    // Renamed, they come back as new unit tests with the same content and new ids.
    let renamed: String = live
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["name"] = json!(format!("{} (imported)", l["name"].as_str().unwrap()));
            format!("{l}\n")
        })
        .collect();
    let response = import(&app, "", "application/x-ndjson", renamed).await;
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["created"], 2, "{report}");
    for (result, source) in report["results"].as_array().unwrap().iter().zip(&live) {
        assert_eq!(result["status"], 201);
        let id = result["id"].as_str().unwrap();
        assert!(!ids.contains(&id.to_owned()));
        let copy = app.get(id).await;
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
            assert_eq!(copy[same], source[same], "{same}");
        }
        assert_eq!(copy["is_deleted"], false);
    }
}

/// More unit tests than an export page holds (500): every one comes out once, in id order,
/// whether the filter keeps all of them or a few scattered over the pages; a hard-deleted one
/// leaves the export and nothing else. (Pages start above the last id sent, not at an offset:
/// the store tests hold that to the definition.)
async fn export_pages_through_every_unit_test_once_with_dense_and_sparse_filters(app: TestApp) {
    let n = 1_203;
    let rows: String = (0..n)
        .map(|i| {
            let mut body = unit_test_body(&format!("Paged {i:04}"));
            if i % 250 == 7 {
                body["tags"] = json!({"suite": "rare"});
            }
            format!("{body}\n")
        })
        .collect();
    let started = std::time::Instant::now();
    let response = import(&app, "", "application/x-ndjson", rows).await;
    let status = response.status();
    let report: Value = response.json().await.unwrap();
    eprintln!("imported {n} in {:?}", started.elapsed());
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], n, "{}", report["failed"]);

    let ids_of = |ndjson: &str| -> Vec<String> {
        lines(ndjson)
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, all) = export(&app, "").await;
    let all = ids_of(&all);
    assert_eq!(all.len(), n);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "id order, no repeats");
    let (_, rare) = export(&app, "tag=suite:rare").await;
    assert_eq!(ids_of(&rare).len(), 5, "one in 250, over three pages");

    // A hard delete of one of the first page's unit tests: the export still holds every other.
    let gone = &all[3];
    assert_eq!(app.delete(gone).await.status(), StatusCode::NO_CONTENT);
    let purged = app
        .client
        .delete(app.url(&format!("/v1/acme/simulation/unit_test/{gone}/permanently")))
        .bearer_auth(app.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), StatusCode::NO_CONTENT);
    let (_, after) = export(&app, "").await;
    let want: Vec<String> = all.iter().filter(|id| *id != gone).cloned().collect();
    assert_eq!(ids_of(&after), want);
}

async fn import_answers_every_row_and_dry_runs_and_atomic_imports_write_accordingly(app: TestApp) {
    let good = |name: &str| unit_test_body(name).to_string();
    let mut bad_reference = unit_test_body("Bad reference");
    bad_reference["persona_id"] = json!("0123456789abcdef01234567");
    let rows = [
        good("Row one"),
        json!({"name": "no other fields"}).to_string(),
        bad_reference.to_string(),
        good("Row one"),
        "{not json".to_owned(),
        String::new(),
        good("Row six"),
    ]
    .join("\n");

    // Dry run: every row judged, nothing written.
    let response = import(&app, "dry_run=true", "application/x-ndjson", rows.clone()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    let statuses: Vec<u64> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 422, 404, 409, 422, 200], "{report}");
    let rows_seen: Vec<u64> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(
        rows_seen,
        [1, 2, 3, 4, 5, 7],
        "blank lines are skipped, rows keep their line"
    );
    assert_eq!(report["created"], 0);
    assert_eq!(report["failed"], 4);
    assert!(
        report["results"][1]["problems"].as_array().unwrap().len() > 3,
        "every problem of the row"
    );
    assert_eq!(total(&app).await, 0);

    // Atomic with failures: nothing written, the good rows say so.
    let response = import(&app, "atomic=true", "application/x-ndjson", rows.clone()).await;
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["results"][0]["status"], 424);
    assert_eq!(report["results"][0]["error_code"], "not_written");
    assert_eq!(total(&app).await, 0);

    // Not atomic: the good rows are written, each failure answered.
    let response = import(&app, "", "application/x-ndjson", rows).await;
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["results"][0]["status"], 201);
    assert_eq!(report["results"][5]["status"], 201);
    assert_eq!(total(&app).await, 2);

    // Atomic, all good, as a JSON array: all written; one name taken: none written.
    let array = json!([unit_test_body("Array one"), unit_test_body("Array two")]).to_string();
    let report: Value = import(&app, "atomic=true", "application/json", array)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["created"], 2, "{report}");
    let clash = json!([unit_test_body("Array three"), unit_test_body("Array one")]).to_string();
    let report: Value = import(&app, "atomic=true", "application/json", clash)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(report["created"], 0, "{report}");
    assert_eq!(report["results"][0]["status"], 409);
    assert_eq!(total(&app).await, 4, "Array three was not written either");

    // Bodies that are neither: 422; options that are not booleans: 422.
    let response = import(&app, "", "application/json", "{}".into()).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let response = import(&app, "atomic=maybe", "application/x-ndjson", good("x")).await;
    assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let viewer = app.token("acme", "victor");
    let response = app
        .client
        .post(app.url("/v1/acme/simulation/unit_test/import"))
        .bearer_auth(viewer)
        .body(good("Viewer's"))
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "missing_permission").await;
    assert_eq!(total(&app).await, 4);
}

async fn total(app: &TestApp) -> usize {
    app.list("").await["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .len()
}
