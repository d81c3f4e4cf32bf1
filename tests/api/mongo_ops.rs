//! MongoDB in operation: an outage and its recovery, named clusters, instances sharing one database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use simtest::store::Store;
use simtest::{Config, MongoConfig};

use crate::ferretdb::FerretDb;
use crate::helpers::*;

/// README promises 503 "within about 2 s" of an outage (the driver's server selection timeout):
/// the 2 s plus 1.5 s for a loaded machine, not more.
const OUTAGE_ANSWER_WITHIN: Duration = Duration::from_millis(3500);

/// Serves `config` (with `named` clusters) on a random port; returns the address and the app state.
async fn serve(
    config: &Config,
    named: BTreeMap<String, Arc<dyn Store>>,
) -> (std::net::SocketAddr, simtest::AppState) {
    let store = simtest::open_store(config).await.expect("store");
    let app = simtest::build_app_with_clusters(config, store, named)
        .await
        .expect("app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app.router).await.unwrap() });
    (addr, app.state)
}

fn mongo_config(dir: &std::path::Path, uri: &str) -> Config {
    let mut config = Config::for_data_dir(dir);
    config.mongodb = Some(MongoConfig::new(uri, "simtest"));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mongodb_outage_gives_503_fast_and_service_resumes_by_itself() {
    let Some(mut ferret) = FerretDb::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = mongo_config(dir.path(), &ferret.uri());
    config.jwt_secret = Some(TEST_TOKEN_SECRET.into());
    let (addr, state) = serve(&config, BTreeMap::new()).await;
    simtest::service::seed::seed(state.store.as_ref(), FIXTURES)
        .await
        .unwrap();
    let token = state.auth.keys().issue(&"acme".into(), "alice").unwrap().0;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/v1/acme/simulation/unit_test/");
    let create = |name: &str| {
        client
            .post(&url)
            .bearer_auth(&token)
            .json(&unit_test_body(name))
            .send()
    };
    assert_eq!(
        create("before").await.unwrap().status(),
        StatusCode::CREATED
    );

    // Load runs through the outage: four writers creating unit tests the whole time.
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (client, url, token, stop_load) = (
            client.clone(),
            url.clone(),
            token.clone(),
            stop_load.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut statuses = Vec::new();
            let mut i = 0;
            while !stop_load.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("load {w}-{i}");
                i += 1;
                let started = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&unit_test_body(&name))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    started.elapsed() < OUTAGE_ANSWER_WITHIN,
                    "a request hung for {:?}",
                    started.elapsed()
                );
                statuses.push(r.status());
                if r.status() == StatusCode::CREATED {
                    acknowledged.push(name);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (acknowledged, statuses)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    ferret.stop();
    for name in ["during 1", "during 2"] {
        let started = Instant::now();
        let r = create(name).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "create while MongoDB is down"
        );
        assert!(
            started.elapsed() < OUTAGE_ANSWER_WITHIN,
            "no hang: {:?}",
            started.elapsed()
        );
        assert!(r.headers().contains_key("retry-after"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error_code"], "service_unavailable");
        assert!(
            !body["detail"].as_str().unwrap().contains("127.0.0.1"),
            "no driver message leaks: {body}"
        );
    }
    let list = client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_error(list, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable").await;
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let alive = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(alive.status(), StatusCode::OK);

    ferret.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = create("after").await.unwrap();
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert_eq!(
            r.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "only 503 while reconnecting"
        );
        assert!(Instant::now() < deadline, "service did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acknowledged = vec!["after".to_owned(), "before".to_owned()];
    for w in writers {
        let (names, statuses) = w.await.unwrap();
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::CREATED || *s == StatusCode::SERVICE_UNAVAILABLE),
            "only 201 or 503 under load: {statuses:?}"
        );
        assert!(
            statuses.contains(&StatusCode::SERVICE_UNAVAILABLE),
            "the load saw the outage"
        );
        acknowledged.extend(names);
    }

    let page: serde_json::Value = client
        .get(format!("{url}?limit=500"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut got = names(&page);
    got.sort();
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!(unique, got, "no duplicate documents");
    for name in &acknowledged {
        assert!(got.contains(name), "acknowledged {name} is missing");
    }
    assert!(
        !got.iter().any(|n| n.starts_with("during")),
        "a refused create was written"
    );
    assert_eq!(
        client
            .get(format!("http://{addr}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orgs_are_routed_to_their_named_cluster() {
    let (Some(main), Some(east)) = (FerretDb::start(), FerretDb::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = mongo_config(dir.path(), &main.uri());
    config.jwt_secret = Some(TEST_TOKEN_SECRET.into());
    let east_store: Arc<dyn Store> = simtest::open_mongo(&MongoConfig::new(east.uri(), "simtest"))
        .await
        .map(|s| Arc::new(s) as Arc<dyn Store>)
        .unwrap();
    let (addr, state) = serve(
        &config,
        BTreeMap::from([("east".to_owned(), east_store.clone())]),
    )
    .await;

    // The default cluster knows acme (data there) and initech (data in east); east alone knows umbrella.
    simtest::service::seed::seed(state.store.as_ref(), FIXTURES)
        .await
        .unwrap();
    let routing = json!({"organizations": [{"org_id": "initech", "mongo_cluster_name": "east"}]});
    simtest::service::seed::seed(state.store.as_ref(), &routing.to_string())
        .await
        .unwrap();
    let east_fixtures = FIXTURES
        .replace("\"acme\"", "\"initech\"")
        .replace("\"globex\"", "\"umbrella\"");
    simtest::service::seed::seed(east_store.as_ref(), &east_fixtures)
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let keys = state.auth.keys();
    let create = |org: &str, header: Option<&str>| {
        let token = keys
            .issue(
                &org.into(),
                if org == "umbrella" { "gary" } else { "alice" },
            )
            .unwrap()
            .0;
        let body = if org == "umbrella" {
            globex_unit_test_body("routed")
        } else {
            unit_test_body("routed")
        };
        let mut r = client
            .post(format!("http://{addr}/v1/{org}/simulation/unit_test/"))
            .bearer_auth(token)
            .json(&body);
        if let Some(h) = header {
            r = r.header("x-mongo-cluster-name", h);
        }
        r.send()
    };
    assert_eq!(
        create("acme", None).await.unwrap().status(),
        StatusCode::CREATED,
        "default cluster"
    );
    assert_eq!(
        create("initech", None).await.unwrap().status(),
        StatusCode::CREATED,
        "routed by its organization record"
    );
    // Without the header umbrella's users are looked up in the default cluster, which has none:
    // authentication (401) comes before the org check in the contract's order.
    let r = create("umbrella", None).await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_eq!(
        create("umbrella", Some("east")).await.unwrap().status(),
        StatusCode::CREATED,
        "the header picks the cluster"
    );
    let unknown = create("acme", Some("west")).await.unwrap();
    let body = assert_error(
        unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_error",
    )
    .await;
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["header", "x-mongo-cluster-name"])
    );

    // Each unit test landed in its org's cluster and nowhere else.
    let count = |store: Arc<dyn Store>, org: &'static str| async move {
        let query = simtest::service::list_query_for(
            &org.into(),
            &simtest::domain::query_string::QueryParams::parse(None),
        )
        .unwrap();
        store.list_unit_tests(&query).await.unwrap().items.len()
    };
    assert_eq!(count(state.store.clone(), "acme").await, 1);
    assert_eq!(count(state.store.clone(), "initech").await, 0);
    assert_eq!(count(east_store.clone(), "initech").await, 1);
    assert_eq!(count(east_store.clone(), "umbrella").await, 1);
    assert_eq!(count(state.store.clone(), "umbrella").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_database_share_the_token_secret() {
    if !mongo_available() {
        return;
    }
    let uri = std::env::var("SIMTEST_TEST_MONGODB_URI").unwrap();
    let database = format!("simtest_test_{}", uuid::Uuid::new_v4().simple());
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let config = |dir: &std::path::Path| {
        let mut c = Config::for_data_dir(dir);
        let mut mongo = MongoConfig::new(uri.clone(), database.clone());
        mongo.write_concern = test_write_concern();
        c.mongodb = Some(mongo);
        c
    };
    let (addr_a, state_a) = serve(&config(dir_a.path()), BTreeMap::new()).await;
    let (addr_b, _state_b) = serve(&config(dir_b.path()), BTreeMap::new()).await;
    simtest::service::seed::seed(state_a.store.as_ref(), FIXTURES)
        .await
        .unwrap();

    let client = reqwest::Client::new();
    let signed_in: serde_json::Value = client
        .post(format!("http://{addr_a}/v1/acme/user/signin_with_api_key"))
        .header("x-api-key", "acme-ci-secret")
        .header("x-api-key-id", "acme-ci")
        .header("x-user-id", "alice")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = signed_in["id_token"].as_str().unwrap();
    let r = client
        .get(format!("http://{addr_b}/v1/acme/simulation/unit_test/"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "a token issued by one instance is accepted by another"
    );

    let cleanup = simtest::store::mongo::MongoStore::connect(
        &uri,
        &database,
        simtest::store::mongo::MongoWriteConcern::Majority,
    )
    .await
    .unwrap();
    cleanup.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_migrating_one_database_at_once_both_succeed_and_each_migration_is_recorded_once()
 {
    if !mongo_available() {
        return;
    }
    let uri = std::env::var("SIMTEST_TEST_MONGODB_URI").unwrap();
    let database = format!("simtest_test_{}", uuid::Uuid::new_v4().simple());
    let connect =
        || simtest::store::mongo::MongoStore::connect(&uri, &database, test_write_concern());
    let (a, b) = (connect().await.unwrap(), connect().await.unwrap());
    let (applied_a, applied_b) = tokio::join!(a.migrate(), b.migrate());
    let (applied_a, applied_b) = (applied_a.unwrap(), applied_b.unwrap());
    // Each migration recorded (reported applied) by exactly one of the two: the sets are disjoint and
    // together are all.
    let both: Vec<&String> = applied_a.iter().filter(|m| applied_b.contains(m)).collect();
    assert!(both.is_empty(), "applied twice: {both:?}");
    let mut all: Vec<String> = applied_a.iter().chain(&applied_b).cloned().collect();
    all.sort();
    let mut expected: Vec<String> = simtest::store::mongo::migrate::MIGRATIONS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    expected.sort();
    assert_eq!(all, expected, "a: {applied_a:?}, b: {applied_b:?}");
    assert!(
        a.migrate().await.unwrap().is_empty(),
        "recorded: nothing left to apply"
    );
    // The unique-name index is in place: a store on this database refuses a duplicate active name.
    let app = spawn_app_with(Backend::Mongo, |c| {
        c.mongodb.as_mut().unwrap().database = database.clone()
    })
    .await;
    app.create_ok(&unit_test_body("once")).await;
    assert_eq!(
        app.create(&unit_test_body("once")).await.status(),
        StatusCode::CONFLICT
    );
    drop(app);
    let _ = a.drop_database().await;
}

/// The real configuration path of named clusters: `simtest serve --mongodb-cluster east=URI` (the
/// binary, its flag parsing, `build_app` opening and migrating the cluster), not stores handed in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mongodb_cluster_flag_routes_requests_to_that_cluster() {
    let (Some(main), Some(east)) = (FerretDb::start(), FerretDb::start()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let database = "simtest";
    // acme lives in the default cluster, umbrella only in east; each seeded by the seed command.
    let east_fixtures = dir.path().join("east.json");
    std::fs::write(
        &east_fixtures,
        FIXTURES.replace("\"globex\"", "\"umbrella\""),
    )
    .unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures.json");
    for (uri, file) in [
        (main.uri(), std::path::Path::new(fixtures)),
        (east.uri(), &east_fixtures),
    ] {
        let seeded = std::process::Command::new(env!("CARGO_BIN_EXE_simtest"))
            .arg("seed")
            .arg(file)
            .env("SIMTEST_DATA_DIR", dir.path())
            .env("SIMTEST_MONGODB_URI", &uri)
            .env("SIMTEST_MONGODB_DATABASE", database)
            .status()
            .unwrap();
        assert!(seeded.success(), "seed {uri}");
    }
    let cluster = format!("east={}", east.uri());
    let mut server = crate::crash::serve_with(
        dir.path(),
        Some((&main.uri(), database)),
        &["--mongodb-cluster", &cluster],
        &[],
    );
    let keys =
        simtest::auth::TokenKeys::new(TEST_TOKEN_SECRET.as_bytes(), "simtest", 3600).unwrap();
    let client = reqwest::Client::new();
    let create = |org: &str, user: &str, cluster: Option<&str>| {
        let body = if org == "umbrella" {
            globex_unit_test_body("flagged")
        } else {
            unit_test_body("flagged")
        };
        let mut r = client
            .post(format!("{}/v1/{org}/simulation/unit_test/", server.url))
            .bearer_auth(keys.issue(&org.into(), user).unwrap().0)
            .json(&body);
        if let Some(name) = cluster {
            r = r.header("x-mongo-cluster-name", name);
        }
        r.send()
    };
    assert_eq!(
        create("acme", "alice", None).await.unwrap().status(),
        StatusCode::CREATED
    );
    // Unknown to the default cluster: its users are not there.
    let r = create("umbrella", "gary", None).await.unwrap();
    assert_error(r, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let r = create("umbrella", "gary", Some("east")).await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // The unit test is in east, not in the default cluster.
    let east_store =
        simtest::store::mongo::MongoStore::connect(&east.uri(), database, test_write_concern())
            .await
            .unwrap();
    let query = simtest::service::list_query_for(
        &"umbrella".into(),
        &simtest::domain::query_string::QueryParams::parse(Some("")),
    )
    .unwrap();
    let page = east_store.list_unit_tests(&query).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].name, "flagged");
    server.child.kill().unwrap();
    let _ = server.child.wait();
}
