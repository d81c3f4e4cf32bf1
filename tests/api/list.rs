//! `GET .../unit_test/`: filters (OR within, AND across), tag rules, sorts with `_id` ties, offset
//! paging that never repeats, facets over every match on the first page, 422s, org isolation.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::backend_tests;
use crate::helpers::*;

backend_tests!(
    list_filters_or_within_a_parameter_and_and_across_parameters,
    list_tag_filters_follow_key_value_star_and_null_rules,
    list_is_deleted_absent_means_no_filter,
    list_sorts_by_each_field_and_breaks_ties_on_id,
    list_pages_with_offset_tokens_and_facets_on_the_first_page_only,
    list_facets_cover_every_match_not_just_the_page,
    list_limit_zero_returns_nothing_but_says_more_exists,
    list_returns_422_listing_every_bad_parameter,
    list_without_read_permission_is_an_empty_page,
    list_never_shows_another_orgs_unit_tests,
    a_paging_walk_never_repeats_a_unit_test_while_others_are_created,
);

/// Creates unit tests with varied references, tags and creators; returns their ids by name.
async fn seed_varied(app: &TestApp) -> std::collections::HashMap<String, String> {
    let mut ids = std::collections::HashMap::new();
    let specs: Vec<(&str, &str, &str, &str, Value, &str)> = vec![
        (
            "alpha",
            SERVICE,
            PERSONA,
            SCENARIO,
            json!({"team": "growth", "tier": "1"}),
            "alice",
        ),
        (
            "beta",
            SERVICE_2,
            PERSONA,
            SCENARIO_2,
            json!({"team": "core", "flaky": null}),
            "bob",
        ),
        (
            "gamma",
            SERVICE,
            PERSONA_2,
            SCENARIO,
            json!({"team": "growth", "flaky": null}),
            "arthur",
        ),
        (
            "delta",
            SERVICE_2,
            PERSONA_2,
            SCENARIO_2,
            json!({}),
            "alice",
        ),
    ];
    for (name, service, persona, scenario, tags, user) in specs {
        let mut body = unit_test_body(name);
        body["service_id"] = json!(service);
        body["persona_id"] = json!(persona);
        body["scenario_id"] = json!(scenario);
        body["tags"] = tags;
        if name == "delta" {
            body["success_criterions"] = json!([
                {"name": "tone", "metric_id": METRIC_CAT, "criterion": {"type": "categorical", "expected_values": ["warm"]}}
            ]);
        }
        let token = app.token("acme", user);
        // Distinct creation instants keep the created_at order unambiguous.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
        let response = app.create_as(&token, "acme", &body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
        let json: Value = response.json().await.unwrap();
        ids.insert(
            name.to_owned(),
            json["simulation_unit_test_id"].as_str().unwrap().to_owned(),
        );
    }
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn list_filters_or_within_a_parameter_and_and_across_parameters(app: TestApp) {
    let ids = seed_varied(&app).await;
    let cases: Vec<(String, Vec<&str>)> = vec![
        (String::new(), vec!["alpha", "beta", "delta", "gamma"]),
        (format!("service_id={SERVICE}"), vec!["alpha", "gamma"]),
        (
            format!("service_id={SERVICE}&service_id={SERVICE_2}"),
            vec!["alpha", "beta", "delta", "gamma"],
        ),
        (
            format!("service_id={SERVICE}&persona_id={PERSONA_2}"),
            vec!["gamma"],
        ),
        (format!("scenario_id={SCENARIO_2}"), vec!["beta", "delta"]),
        (
            format!("persona_id={PERSONA}&scenario_id={SCENARIO_2}"),
            vec!["beta"],
        ),
        (
            format!("metric_id={METRIC_BOOL}"),
            vec!["alpha", "beta", "gamma"],
        ),
        (
            format!("metric_id={METRIC_CAT}"),
            vec!["alpha", "beta", "delta", "gamma"],
        ),
        ("creator=acme,alice".into(), vec!["alpha", "delta"]),
        (
            "creator=acme,alice&creator=acme,bob".into(),
            vec!["alpha", "beta", "delta"],
        ),
        ("creator=globex,alice".into(), vec![]),
        (
            format!("id={}&id={}", ids["beta"], ids["delta"]),
            vec!["beta", "delta"],
        ),
        (format!("id={}&service_id={SERVICE}", ids["beta"]), vec![]),
        (format!("id={UNKNOWN_ID}"), vec![]),
    ];
    for (query, expected) in cases {
        let page = app.list(&query).await;
        assert_eq!(sorted(names(&page)), expected, "{query}");
    }
}

async fn list_tag_filters_follow_key_value_star_and_null_rules(app: TestApp) {
    seed_varied(&app).await;
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("tag=team:growth", vec!["alpha", "gamma"]),
        (
            "tag=team:growth&tag=team:core",
            vec!["alpha", "beta", "gamma"],
        ),
        ("tag=team:*", vec!["alpha", "beta", "gamma"]),
        ("tag=flaky:", vec!["beta", "gamma"]),
        ("tag=team:growth&tag=flaky:", vec!["gamma"]),
        (
            "tag=team:growth&tag=flaky:*&tag=team:core",
            vec!["beta", "gamma"],
        ),
        ("tag=tier:1", vec!["alpha"]),
        ("tag=tier:", vec![]),
        ("tag=owner:*", vec![]),
    ];
    for (query, expected) in cases {
        assert_eq!(sorted(names(&app.list(query).await)), expected, "{query}");
    }
}

async fn list_is_deleted_absent_means_no_filter(app: TestApp) {
    let ids = seed_varied(&app).await;
    assert_eq!(
        app.delete(&ids["beta"]).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        sorted(names(&app.list("").await)),
        ["alpha", "beta", "delta", "gamma"]
    );
    assert_eq!(names(&app.list("is_deleted=true").await), ["beta"]);
    assert_eq!(
        sorted(names(&app.list("is_deleted=false").await)),
        ["alpha", "delta", "gamma"]
    );
    let beta = app.get(&ids["beta"]).await;
    assert_eq!(beta["is_deleted"], true);
}

async fn list_sorts_by_each_field_and_breaks_ties_on_id(app: TestApp) {
    let ids = seed_varied(&app).await;
    // Touch beta so it is the most recently updated.
    assert_eq!(
        app.update(&ids["beta"], &json!({"max_interactions": 7}))
            .await
            .status(),
        StatusCode::NO_CONTENT
    );

    let by_id = {
        let mut v: Vec<(&String, &String)> = ids.iter().map(|(n, i)| (i, n)).collect();
        v.sort();
        v.into_iter().map(|(_, n)| n.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&app.list("").await),
        by_id,
        "default order is _id ascending"
    );
    assert_eq!(
        names(&app.list("sort_by=name").await),
        ["alpha", "beta", "delta", "gamma"]
    );
    assert_eq!(
        names(&app.list("sort_by=%2Bname").await),
        ["alpha", "beta", "delta", "gamma"]
    );
    assert_eq!(
        names(&app.list("sort_by=-name").await),
        ["gamma", "delta", "beta", "alpha"]
    );
    assert_eq!(names(&app.list("sort_by=-updated_at").await)[0], "beta");
    assert_eq!(names(&app.list("sort_by=updated_at").await)[3], "beta");
    let by_created = names(&app.list("sort_by=created_at").await);
    assert_eq!(
        by_created,
        ["alpha", "beta", "gamma", "delta"],
        "creation order"
    );
    assert_eq!(
        names(&app.list("sort_by=-created_at").await),
        ["delta", "gamma", "beta", "alpha"]
    );

    // Equal keys fall back to _id ascending: three creators tie on `creator`-less sorts of equal names
    // are impossible (names are unique), so tie on a field shared by all: `sort_by=-name&sort_by=updated_at`
    // is total already; check the documented tie-break with deleted duplicates of one name.
    let first = app.create_ok(&unit_test_body("twin")).await;
    assert_eq!(app.delete(&first).await.status(), StatusCode::NO_CONTENT);
    let second = app.create_ok(&unit_test_body("twin")).await;
    let twins = app.list("sort_by=name&tag=team:growth&tag=flaky:").await;
    let twin_ids: Vec<&str> = twins["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "twin")
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    let mut expected = vec![first.as_str(), second.as_str()];
    expected.sort();
    assert_eq!(twin_ids, expected, "ties on name break on _id ascending");
}

async fn list_pages_with_offset_tokens_and_facets_on_the_first_page_only(app: TestApp) {
    for i in 0..7 {
        app.create_ok(&unit_test_body(&format!("page {i}"))).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<u64> = Some(0);
    let mut pages = 0;
    while let Some(offset) = token {
        let page = app
            .list(&format!("sort_by=name&limit=3&continuation_token={offset}"))
            .await;
        if offset == 0 {
            assert!(
                page["filter_values"].is_object(),
                "first page has facets: {page}"
            );
        } else {
            assert_eq!(page["filter_values"], Value::Null, "later pages have none");
        }
        seen.extend(names(&page));
        token = page["continuation_token"].as_u64();
        assert_eq!(page["has_more"], token.is_some(), "{page}");
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (0..7).map(|i| format!("page {i}")).collect::<Vec<_>>()
    );

    let default = app.list("").await;
    assert_eq!(
        default["simulation_unit_tests"].as_array().unwrap().len(),
        7,
        "default limit is 50"
    );
    assert_eq!(default["has_more"], false);
    assert_eq!(default["continuation_token"], Value::Null);

    let beyond = app.list("continuation_token=100").await;
    assert_eq!(beyond["simulation_unit_tests"], json!([]));
    assert_eq!(beyond["has_more"], false);
}

async fn list_facets_cover_every_match_not_just_the_page(app: TestApp) {
    seed_varied(&app).await;
    let page = app.list("limit=1").await;
    assert_eq!(page["simulation_unit_tests"].as_array().unwrap().len(), 1);
    let mut services = vec![SERVICE, SERVICE_2];
    services.sort();
    let mut personas = vec![PERSONA, PERSONA_2];
    personas.sort();
    let mut scenarios = vec![SCENARIO, SCENARIO_2];
    scenarios.sort();
    let mut metrics = vec![METRIC_BOOL, METRIC_NUM, METRIC_CAT];
    metrics.sort();
    assert_eq!(
        page["filter_values"],
        json!({
            "creators": [
                {"org_id": "acme", "user_id": "alice"},
                {"org_id": "acme", "user_id": "arthur"},
                {"org_id": "acme", "user_id": "bob"}
            ],
            "tags": ["flaky", "team", "tier"],
            "service_ids": services,
            "persona_ids": personas,
            "scenario_ids": scenarios,
            "metric_ids": metrics,
        })
    );
    // Facets follow the filters.
    let filtered = app.list(&format!("service_id={SERVICE_2}&limit=1")).await;
    assert_eq!(filtered["filter_values"]["tags"], json!(["flaky", "team"]));
    assert_eq!(
        filtered["filter_values"]["creators"],
        json!([{"org_id": "acme", "user_id": "alice"}, {"org_id": "acme", "user_id": "bob"}])
    );
    let none = app.list(&format!("service_id={UNKNOWN_ID}")).await;
    assert_eq!(
        none["filter_values"],
        json!({"creators": [], "tags": [], "service_ids": [], "persona_ids": [], "scenario_ids": [], "metric_ids": []})
    );
}

async fn list_limit_zero_returns_nothing_but_says_more_exists(app: TestApp) {
    app.create_ok(&unit_test_body("only")).await;
    let page = app.list("limit=0").await;
    assert_eq!(page["simulation_unit_tests"], json!([]));
    assert_eq!(page["has_more"], true);
    assert_eq!(page["continuation_token"], 0);
    assert_eq!(
        app.list("limit=500").await["simulation_unit_tests"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

async fn list_returns_422_listing_every_bad_parameter(app: TestApp) {
    let query = "limit=501&continuation_token=-1&id=ABC&service_id=nothex&tag=novalue&creator=alice&sort_by=size&is_deleted=maybe";
    let response = app.list_as(&app.admin_token(), "acme", query).await;
    let error = assert_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    let params: Vec<&str> = error["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["loc"][1].as_str().unwrap())
        .collect();
    for expected in [
        "limit",
        "continuation_token",
        "id",
        "service_id",
        "tag",
        "creator",
        "sort_by",
        "is_deleted",
    ] {
        assert!(
            params.contains(&expected),
            "no problem for {expected}: {error}"
        );
    }
    for (query, reason) in [
        ("limit=-1", "negative limit"),
        ("limit=ten", "limit not a number"),
        ("continuation_token=abc", "token not a number"),
        (
            "id=0123456789abcdef01234567&id=0123456789abcdef01234567",
            "repeated id",
        ),
        ("limit=1&limit=2", "limit given twice"),
    ] {
        let response = app.list_as(&app.admin_token(), "acme", query).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reason}"
        );
    }
}

async fn list_without_read_permission_is_an_empty_page(app: TestApp) {
    app.create_ok(&unit_test_body("secret")).await;
    let nobody = app.token("acme", "nobody");
    let (status, page) = status_and_json(app.list_as(&nobody, "acme", "").await).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["simulation_unit_tests"], json!([]));
    assert_eq!(page["has_more"], false);
    let audrey = app.token("acme", "audrey");
    let (status, page) = status_and_json(app.list_as(&audrey, "acme", "").await).await;
    assert_eq!(
        (status, names(&page)),
        (StatusCode::OK, vec!["secret".to_owned()]),
        "org role with Get"
    );
    let victor = app.token("acme", "victor");
    let (_, page) = status_and_json(app.list_as(&victor, "acme", "").await).await;
    assert_eq!(names(&page), ["secret"], "viewer reads");
}

async fn list_never_shows_another_orgs_unit_tests(app: TestApp) {
    let acme_id = app.create_ok(&unit_test_body("acme only")).await;
    let gary = app.token("globex", "gary");
    let response = app
        .create_as(&gary, "globex", &globex_unit_test_body("globex only"))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let (_, page) =
        status_and_json(app.list_as(&gary, "globex", &format!("id={acme_id}")).await).await;
    assert_eq!(
        page["simulation_unit_tests"],
        json!([]),
        "an acme id asked in globex"
    );
    let (_, page) = status_and_json(app.list_as(&gary, "globex", "").await).await;
    assert_eq!(names(&page), ["globex only"]);
    assert_eq!(names(&app.list("").await), ["acme only"]);
}

async fn a_paging_walk_never_repeats_a_unit_test_while_others_are_created(app: TestApp) {
    let mut originals = Vec::new();
    for i in 0..40 {
        originals.push(
            app.create_ok(&unit_test_body(&format!("walk {i:02}")))
                .await,
        );
    }
    // Creates landed so far; the writer starts once the walk has read its first page, and the walk
    // waits for one more create after each page, so the two interleave by construction.
    let created = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let walk_started = std::sync::Arc::new(tokio::sync::Notify::new());
    const LATE: usize = 30;
    let writer = {
        let (client, url, token) = (
            app.client.clone(),
            app.url("/v1/acme/simulation/unit_test/"),
            app.admin_token(),
        );
        let (created, walk_started) = (created.clone(), walk_started.clone());
        tokio::spawn(async move {
            walk_started.notified().await;
            for i in 0..LATE {
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&unit_test_body(&format!("late {i:02}")))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                created.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    let landed = || created.load(std::sync::atomic::Ordering::SeqCst);
    // The default order (_id ascending) puts new unit tests after every existing one.
    let mut seen: Vec<String> = Vec::new();
    let mut offset = Some(0);
    let mut landed_during_walk = 0;
    while let Some(o) = offset {
        let page = app.list(&format!("limit=7&continuation_token={o}")).await;
        seen.extend(
            page["simulation_unit_tests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        offset = page["continuation_token"].as_u64();
        if o == 0 {
            walk_started.notify_one();
        }
        if offset.is_some() {
            let before = landed();
            while landed() == before && before < LATE {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
            }
            landed_during_walk = landed();
        }
    }
    assert!(
        landed_during_walk >= 5,
        "the writer overlapped the walk: {landed_during_walk} creates landed between its pages"
    );
    writer.await.unwrap();
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a unit test came twice in one walk"
    );
    for id in &originals {
        assert!(
            seen.contains(id),
            "{id} existed before the walk and was skipped"
        );
    }
}
