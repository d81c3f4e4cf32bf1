//! The same sequence of requests gives byte-identical answers on both backends (ids and timestamps
//! aside): MongoDB is not a different product, only a different place for the data.

use serde_json::{Value, json};

use crate::helpers::*;

/// Runs the sequence and returns one line per step: method, path, status and body, with the ids of
/// created unit tests replaced by their creation rank and timestamps by `<ts>`.
async fn transcript(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    let mut lines = Vec::new();
    let token = app.admin_token();
    let bob = app.token("acme", "bob");
    let steps: Vec<(&str, String, Option<Value>, &str)> = {
        let mut s: Vec<(&str, String, Option<Value>, &str)> = Vec::new();
        for (i, (name, service, tags)) in [
            (
                "Alpha signup",
                SERVICE,
                json!({"team": "growth", "tier": "1"}),
            ),
            (
                "beta refund",
                SERVICE_2,
                json!({"team": "core", "flaky": null}),
            ),
            (
                "Gamma (regex.*) chars",
                SERVICE,
                json!({"team": "growth", "flaky": null}),
            ),
            ("delta Ünïcode", SERVICE_2, json!({})),
            ("epsilon signup", SERVICE, json!({"owner": "ann"})),
            ("Zeta ΟΔΟΣ sΣ", SERVICE_2, json!({"owner": "ann"})),
        ]
        .into_iter()
        .enumerate()
        {
            let mut body = unit_test_body(name);
            body["service_id"] = json!(service);
            body["tags"] = tags;
            if i % 2 == 1 {
                body["persona_id"] = json!(PERSONA_2);
                body["scenario_id"] = json!(SCENARIO_2);
            }
            s.push((
                "POST",
                "/v1/acme/simulation/unit_test/".into(),
                Some(body),
                if i == 1 { "bob" } else { "alice" },
            ));
        }
        s.push((
            "POST",
            "/v1/acme/simulation/unit_test/".into(),
            Some(unit_test_body("Alpha signup")),
            "alice",
        ));
        s.push((
            "POST",
            "/v1/acme/simulation/unit_test/".into(),
            Some(json!({"name": ""})),
            "alice",
        ));
        s
    };
    for (method, path, body, user) in steps {
        let token = if user == "bob" { &bob } else { &token };
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        if status == reqwest::StatusCode::CREATED {
            let v: Value = serde_json::from_str(&text).unwrap();
            ids.push(v["simulation_unit_test_id"].as_str().unwrap().to_owned());
        }
        lines.push(format!("{method} {path} {status} {text}"));
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let id = |k: usize| ids[k].clone();
    let later: Vec<(&str, String, Option<Value>)> = vec![
        (
            "POST",
            format!("/v1/acme/simulation/unit_test/{}/", id(1)),
            Some(json!({"run_count": 4, "tags": {"team": "core", "v": "2"}})),
        ),
        (
            "POST",
            format!("/v1/acme/simulation/unit_test/{}/", id(2)),
            Some(json!({"description": "touched signup"})),
        ),
        (
            "POST",
            format!("/v1/acme/simulation/unit_test/{}/", id(3)),
            Some(json!({"service_id": SERVICE, "service_version_set_name": "edge"})),
        ),
        (
            "POST",
            format!("/v1/acme/simulation/unit_test/{}/", id(3)),
            Some(json!({"service_id": UNKNOWN_ID})),
        ),
        (
            "DELETE",
            format!("/v1/acme/simulation/unit_test/{}/", id(4)),
            None,
        ),
        (
            "DELETE",
            format!("/v1/acme/simulation/unit_test/{}/", id(4)),
            None,
        ),
        ("GET", "/v1/acme/simulation/unit_test/".into(), None),
        (
            "GET",
            "/v1/acme/simulation/unit_test/?sort_by=-updated_at&limit=2".into(),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/?sort_by=name&limit=2&continuation_token=2".into(),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/?sort_by=-name&is_deleted=false".into(),
            None,
        ),
        (
            "GET",
            format!(
                "/v1/acme/simulation/unit_test/?service_id={SERVICE}&tag=team:*&sort_by=created_at"
            ),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/?tag=flaky:&tag=team:core".into(),
            None,
        ),
        (
            "GET",
            format!("/v1/acme/simulation/unit_test/?metric_id={METRIC_CAT}&creator=acme,bob"),
            None,
        ),
        ("GET", "/v1/acme/simulation/unit_test/?limit=0".into(), None),
        (
            "GET",
            "/v1/acme/simulation/unit_test/search/?query=SIGNUP".into(),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/search/?query=(regex.*)".into(),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/search/?query=%C3%BCn%C3%AFcode".into(),
            None,
        ),
        // Σ lower-cases to ς at the end of a word and to σ alone: both stores must find it either way.
        (
            "GET",
            "/v1/acme/simulation/unit_test/search/?query=%CE%BF%CE%B4%CE%BF%CF%83".into(),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/search/?query=s%20%CE%A3".into(),
            None,
        ),
        (
            "GET",
            format!("/v1/acme/simulation/unit_test/search/?query=signup&service_id={SERVICE}"),
            None,
        ),
        (
            "GET",
            "/v1/acme/simulation/unit_test/?limit=900".into(),
            None,
        ),
    ];
    for (method, path, body) in later {
        let mut request = app
            .client
            .request(method.parse().unwrap(), app.url(&path))
            .bearer_auth(&token);
        if let Some(b) = &body {
            request = request.json(b);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        lines.push(format!("{method} {path} {status} {text}"));
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    lines
        .into_iter()
        .map(|line| {
            let mut line = ids
                .iter()
                .enumerate()
                .fold(line, |l, (k, id)| l.replace(id, &format!("<id{k}>")));
            for ts in timestamps_in(&line) {
                line = line.replace(&ts, "<ts>");
            }
            line
        })
        .collect()
}

/// Finds RFC 3339 timestamps as simtest writes them (`2026-11-29T02:14:39.254+00:00`).
fn timestamps_in(text: &str) -> Vec<String> {
    let len = "2026-11-29T02:14:39.254+00:00".len();
    (0..text.len())
        .filter_map(|start| text.get(start..start + len))
        .filter(|c| {
            c.as_bytes()[10] == b'T'
                && c.ends_with("+00:00")
                && chrono::DateTime::parse_from_rfc3339(c).is_ok()
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_answer_the_same_sequence_with_identical_bytes() {
    if !mongo_available() {
        return;
    }
    let embedded = transcript(&spawn_app(Backend::Embedded).await).await;
    let mongo = transcript(&spawn_app(Backend::Mongo).await).await;
    assert_eq!(embedded.len(), mongo.len());
    for status in [
        "201 Created",
        "409 Conflict",
        "422 Unprocessable",
        "204 No Content",
        "404 Not Found",
        "200 OK",
    ] {
        assert!(
            embedded.iter().any(|l| l.contains(status)),
            "the sequence covers {status}"
        );
    }
    for query in ["query=%CE%BF%CE%B4%CE%BF%CF%83 ", "query=s%20%CE%A3 "] {
        let line = embedded.iter().find(|l| l.contains(query)).unwrap();
        assert!(
            line.contains("Zeta"),
            "a search with Σ in any form finds it: {line}"
        );
    }
    for (e, m) in embedded.iter().zip(&mongo) {
        assert_eq!(e, m, "the backends differ");
    }
}
