//! The `simtest` binary itself: seed, token, api-key, serve --demo, and failing fast on bad configuration.
//! Embedded store only: the commands and configuration checks, not the store.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

const EXAMPLE_SEED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed.json");

fn simtest(data_dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_simtest"))
        .args(args)
        .env("SIMTEST_DATA_DIR", data_dir)
        .env("SIMTEST_LOG_FORMAT", "text")
        .env_remove("SIMTEST_JWT_SECRET")
        .output()
        .expect("run simtest")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn seed_token_and_api_key_commands_produce_working_credentials() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let out = simtest(dir.path(), &["seed", EXAMPLE_SEED]);
        assert!(out.status.success(), "seed round {round}: {}", stderr(&out));
        assert!(
            stdout(&out).starts_with("seeded 14 records"),
            "{}",
            stdout(&out)
        );
    }
    let out = simtest(dir.path(), &["token", "--org", "acme", "--user", "alice"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out).trim().to_owned();

    let out = simtest(
        dir.path(),
        &["api-key", "create", "--org", "acme", "--key-id", "cli-key"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let secret = printed
        .lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .unwrap()
        .trim()
        .to_owned();
    assert_eq!(secret.len(), 64);

    let again = simtest(
        dir.path(),
        &["api-key", "create", "--org", "acme", "--key-id", "cli-key"],
    );
    assert!(
        !again.status.success(),
        "an existing key id is not overwritten"
    );
    let unknown = simtest(dir.path(), &["api-key", "create", "--org", "initech"]);
    assert!(
        !unknown.status.success() && stderr(&unknown).contains("initech"),
        "{}",
        stderr(&unknown)
    );

    // A server on that data dir accepts both the printed token and the printed key.
    let config = simtest::Config::for_data_dir(dir.path());
    let app = simtest::build_app(&config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    let client = reqwest::Client::new();
    let list = client
        .get(format!("http://{addr}/v1/acme/simulation/unit_test/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let sign_in = client
        .post(format!("http://{addr}/v1/acme/user/signin_with_api_key"))
        .header("x-api-key", &secret)
        .header("x-api-key-id", "cli-key")
        .header("x-user-id", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(sign_in.status(), StatusCode::OK);
}

#[test]
fn bad_configuration_fails_fast_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad_json = dir.path().join("bad.json");
    std::fs::write(&bad_json, r#"{"organizations": [{"org_id": 5}]}"#).unwrap();
    let bad_json = bad_json.to_str().unwrap().to_owned();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["serve"],
            vec![("SIMTEST_JWT_SECRET", "too-short")],
            "at least 32 bytes",
        ),
        (
            vec!["serve", "--listen", "nowhere"],
            vec![],
            "invalid value 'nowhere'",
        ),
        (
            vec!["seed", "/no/such/file.json"],
            vec![],
            "cannot read /no/such/file.json",
        ),
        (vec!["seed", &bad_json], vec![], "invalid seed file"),
        (
            vec![
                "api-key",
                "create",
                "--org",
                "acme",
                "--expires-at",
                "tomorrow",
            ],
            vec![],
            "RFC 3339",
        ),
        (
            vec!["serve"],
            vec![("SIMTEST_TOKEN_TTL_SECONDS", "5")],
            "invalid value '5'",
        ),
    ];
    for (args, env, expected) in cases {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_simtest"));
        cmd.args(&args)
            .env("SIMTEST_DATA_DIR", dir.path())
            .env("SIMTEST_LISTEN", "127.0.0.1:0");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} {env:?} should fail");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{args:?} must fail fast"
        );
    }
}

#[test]
fn a_data_dir_in_use_is_reported_not_corrupted() {
    let dir = tempfile::tempdir().unwrap();
    let _store = simtest::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    let out = simtest(dir.path(), &["seed", EXAMPLE_SEED]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("in use by another simtest process"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn serve_demo_prints_a_working_token_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simtest"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("SIMTEST_DATA_DIR", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let line = lines.next().expect("demo output").unwrap();
        if let Some(v) = line.strip_prefix("export SIMTEST_URL=") {
            url = Some(v.to_owned());
        }
        if let Some(v) = line.strip_prefix("export SIMTEST_TOKEN=") {
            token = Some(v.to_owned());
        }
    }
    let curl_line = lines.next().unwrap().unwrap();
    assert!(curl_line.starts_with("curl "), "{curl_line}");
    let (url, token) = (url.unwrap(), token.unwrap());
    let mut status = None;
    for _ in 0..50 {
        match reqwest::Client::new()
            .get(format!("{url}/v1/acme/simulation/unit_test/"))
            .bearer_auth(&token)
            .send()
            .await
        {
            Ok(r) => {
                status = Some(r.status());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(status, Some(StatusCode::OK));

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "serve exits 0 on SIGTERM: {exit:?}");
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_every_request_logs_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simtest"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("SIMTEST_DATA_DIR", dir.path())
        .env("SIMTEST_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let line = lines.next().expect("demo output").unwrap();
        url = url.or(line
            .strip_prefix("export SIMTEST_URL=http://")
            .map(str::to_owned));
        token = token.or(line
            .strip_prefix("export SIMTEST_TOKEN=")
            .map(str::to_owned));
    }
    let addr: std::net::SocketAddr = url.unwrap().parse().unwrap();
    let token = token.unwrap();
    let stderr_pipe = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || std::io::read_to_string(stderr_pipe).unwrap());

    let body = crate::helpers::unit_test_body("In flight").to_string();
    let in_flight = tokio::spawn({
        let token = token.clone();
        async move {
            crate::helpers::slow_request(addr, &token, &body, Duration::from_millis(1500)).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());

    let answer = in_flight.await.unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request in flight at SIGTERM completes: {answer}"
    );
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");

    let logs = logs.join().unwrap();
    assert!(!logs.contains(&token), "tokens never reach the logs");
    let request_lines: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "request")
        .collect();
    let create = request_lines
        .iter()
        .find(|l| l["route"] == "/v1/{organization}/simulation/unit_test/" && l["method"] == "POST")
        .unwrap_or_else(|| panic!("no log line for the create in {logs}"));
    assert_eq!(create["status"], 201);
    assert_eq!(create["org"], "acme");
    assert_eq!(create["user"], "alice");
    assert!(create["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(!create["request_id"].as_str().unwrap().is_empty());

    // And the write survived the shutdown.
    let store = simtest::store::embedded::EmbeddedStore::open(dir.path()).unwrap();
    let query = simtest::service::list_query_for(
        &"acme".into(),
        &simtest::domain::query_string::QueryParams::parse(None),
    )
    .unwrap();
    let page = simtest::store::Store::list_unit_tests(&store, &query)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

/// `simtest import` and `simtest export`: the HTTP import's rows and the HTTP export's lines at
/// the command line; an exported file, renamed, imports back as new unit tests.
#[tokio::test]
async fn import_and_export_commands_move_unit_tests_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = simtest(dir.path(), &["seed", EXAMPLE_SEED]);
    assert!(out.status.success(), "{}", stderr(&out));
    let body = |name: &str| {
        serde_json::json!({
            "name": name, "description": "from a file",
            "service_id": "6618791275130b73714e8d1c", "service_version_set_name": "release",
            "persona_id": "6618791275130b73714e8d2a", "scenario_id": "6618791275130b73714e8d3b",
            "max_interactions": 5, "tags": {"via": "cli"},
            "success_criterions": [{"name": "done", "metric_id": "6618791275130b73714e8d4c",
                "criterion": {"type": "boolean", "expected_value": true}}]
        })
    };
    let file = dir.path().join("in.ndjson");
    std::fs::write(&file, format!("{}\n{}\n", body("One"), body("Two"))).unwrap();
    let file = file.to_str().unwrap();

    let dry = simtest(
        dir.path(),
        &[
            "import",
            "--org",
            "acme",
            "--user",
            "alice",
            "--dry-run",
            file,
        ],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    let report: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(report["created"], 0);
    let out = simtest(
        dir.path(),
        &[
            "import", "--org", "acme", "--user", "alice", "--atomic", file,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], 2, "{report}");
    let again = simtest(
        dir.path(),
        &["import", "--org", "acme", "--user", "alice", file],
    );
    assert!(!again.status.success(), "refused rows fail the command");

    let out = simtest(
        dir.path(),
        &["export", "--org", "acme", "--filter", "tag=via:cli"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let exported: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut names: Vec<&str> = exported
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["One", "Two"]);
    assert!(exported.iter().all(|t| t["creator"]["user_id"] == "alice"));

    let renamed: String = exported
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t["name"] = serde_json::json!(format!("{} again", t["name"].as_str().unwrap()));
            format!("{t}\n")
        })
        .collect();
    let file = dir.path().join("renamed.ndjson");
    std::fs::write(&file, renamed).unwrap();
    let out = simtest(
        dir.path(),
        &[
            "import",
            "--org",
            "acme",
            "--user",
            "bob",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = simtest(
        dir.path(),
        &["export", "--org", "acme", "--filter", "tag=via:cli"],
    );
    assert_eq!(stdout(&out).lines().count(), 4);
    let bad = simtest(
        dir.path(),
        &["export", "--org", "acme", "--filter", "limit=x"],
    );
    assert!(!bad.status.success());
}
