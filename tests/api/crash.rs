//! Crash safety: a server under create/update load is killed with SIGKILL; after a restart every
//! acknowledged write is there with its exact content, and the store opens by itself. SIGKILL leaves
//! the OS page cache intact, so that proves commit-before-acknowledge; the fsync half is proved by
//! `every_acknowledged_embedded_write_was_synced_to_disk_first` (embedded store; MongoDB's
//! durability is its write concern's).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

/// A `simtest serve` child process on the given data dir (and MongoDB database, if any).
pub struct Server {
    pub child: Child,
    pub url: String,
}

fn serve(data_dir: &std::path::Path, mongo: Option<(&str, &str)>) -> Server {
    serve_with(data_dir, mongo, &[], &[])
}

/// [`serve`] with more command-line arguments and environment variables.
pub fn serve_with(
    data_dir: &std::path::Path,
    mongo: Option<(&str, &str)>,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_simtest"));
    cmd.envs(env.iter().copied());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--rate-limits-off"])
        .args(args)
        .env("SIMTEST_DATA_DIR", data_dir)
        .env("SIMTEST_JWT_SECRET", TEST_TOKEN_SECRET)
        .env("SIMTEST_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((uri, database)) = mongo {
        cmd.env("SIMTEST_MONGODB_URI", uri)
            .env("SIMTEST_MONGODB_DATABASE", database)
            .env(
                "SIMTEST_MONGODB_WRITE_CONCERN",
                test_write_concern().to_string(),
            );
    }
    let mut child = cmd.spawn().expect("start simtest");
    // The "simtest listening" log line carries the address.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("server log").unwrap();
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "simtest listening"
        {
            break v["addr"].as_str().unwrap().to_owned();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Server {
        child,
        url: format!("http://{addr}"),
    }
}

/// The fixtures, seeded through the command an operator uses.
fn seed_fixtures(data_dir: &std::path::Path, mongo: Option<(&str, &str)>) {
    let mut seed = Command::new(env!("CARGO_BIN_EXE_simtest"));
    seed.args([
        "seed",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/fixtures.json"),
    ])
    .env("SIMTEST_DATA_DIR", data_dir);
    if let Some((uri, db)) = mongo {
        seed.env("SIMTEST_MONGODB_URI", uri)
            .env("SIMTEST_MONGODB_DATABASE", db);
    }
    assert!(seed.status().unwrap().success());
}

/// A token of alice (acme's admin in the fixtures), signed with the servers' test secret.
fn alice_token() -> String {
    simtest::auth::TokenKeys::new(TEST_TOKEN_SECRET.as_bytes(), "simtest", 3600)
        .unwrap()
        .issue(&"acme".into(), "alice")
        .unwrap()
        .0
}

/// What one worker knows about its unit tests: the last acknowledged run_count, and a value that
/// was sent but not acknowledged when the server died (it may or may not have landed).
#[derive(Default, Clone)]
struct Known {
    name: String,
    acknowledged: u64,
    in_flight: Option<u64>,
}

async fn survives_sigkill_under_load(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("simtest_test_{}", uuid::Uuid::new_v4().simple());
    let mongo_uri = test_mongodb_uri();
    let mongo = match backend {
        Backend::Embedded => None,
        Backend::Mongo => Some((mongo_uri.as_deref().unwrap(), database.as_str())),
    };
    seed_fixtures(dir.path(), mongo);

    let mut server = serve(dir.path(), mongo);
    let token = alice_token();
    let known: Arc<Mutex<HashMap<String, Known>>> = Arc::default();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let mut workers = Vec::new();
    for w in 0..6 {
        let (client, url, token, known) = (
            client.clone(),
            server.url.clone(),
            token.clone(),
            known.clone(),
        );
        workers.push(tokio::spawn(async move {
            let base = format!("{url}/v1/acme/simulation/unit_test/");
            let mut mine: Vec<String> = Vec::new();
            for i in 0.. {
                if Instant::now() > deadline {
                    break;
                }
                let name = format!("w{w}-{i}");
                let Ok(r) = client
                    .post(&base)
                    .bearer_auth(&token)
                    .json(&unit_test_body(&name))
                    .send()
                    .await
                else {
                    break;
                };
                if r.status() != StatusCode::CREATED {
                    break;
                }
                let Ok(body) = r.json::<Value>().await else {
                    break;
                };
                let id = body["simulation_unit_test_id"].as_str().unwrap().to_owned();
                known.lock().unwrap().insert(
                    id.clone(),
                    Known {
                        name,
                        acknowledged: 1,
                        in_flight: None,
                    },
                );
                mine.push(id);
                // Update one of this worker's unit tests (never shared, so the last acknowledged value is known).
                let target = mine[i % mine.len()].clone();
                let next = known.lock().unwrap()[&target].acknowledged + 1;
                known.lock().unwrap().get_mut(&target).unwrap().in_flight = Some(next);
                let sent = client
                    .post(format!("{base}{target}/"))
                    .bearer_auth(&token)
                    .json(&json!({"run_count": next}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::NO_CONTENT => {
                        let mut k = known.lock().unwrap();
                        let entry = k.get_mut(&target).unwrap();
                        entry.acknowledged = next;
                        entry.in_flight = None;
                    }
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    server.child.kill().unwrap(); // SIGKILL, mid-load
    server.child.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let known = known.lock().unwrap().clone();
    assert!(
        known.len() >= 6,
        "the load ran ({} unit tests acknowledged)",
        known.len()
    );

    let mut server = serve(dir.path(), mongo);
    let mut found: HashMap<String, Value> = HashMap::new();
    let mut offset = 0;
    loop {
        let page: Value = client
            .get(format!(
                "{}/v1/acme/simulation/unit_test/?limit=500&continuation_token={offset}",
                server.url
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for t in page["simulation_unit_tests"].as_array().unwrap() {
            found.insert(t["id"].as_str().unwrap().to_owned(), t.clone());
        }
        match page["continuation_token"].as_u64() {
            Some(next) => offset = next,
            None => break,
        }
    }
    for (id, k) in &known {
        let t = found
            .get(id)
            .unwrap_or_else(|| panic!("acknowledged unit test {id} ({}) was lost", k.name));
        assert_eq!(t["name"], k.name.as_str());
        assert_eq!(t["description"], format!("Checks that {} works", k.name));
        let run_count = t["run_count"].as_u64().unwrap();
        assert!(
            run_count == k.acknowledged || Some(run_count) == k.in_flight,
            "{id}: run_count {run_count}, acknowledged {}, in flight {:?}",
            k.acknowledged,
            k.in_flight
        );
    }
    // Nothing appeared that was never sent, and names stay unique.
    let mut names: Vec<&str> = found
        .values()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), found.len(), "no duplicate documents");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    if let (Backend::Mongo, Some(uri)) = (backend, &mongo_uri) {
        let store =
            simtest::store::mongo::MongoStore::connect(uri, &database, test_write_concern())
                .await
                .unwrap();
        let _ = store.drop_database().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_embedded() {
    survives_sigkill_under_load(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_mongo() {
    if mongo_available() {
        survives_sigkill_under_load(Backend::Mongo).await;
    }
}

/// Logs every successful `fsync`/`fdatasync` (after it returned) with the file it synced. Loaded
/// into the server with `LD_PRELOAD`: no ptrace, no root.
const FSYNC_LOG_SHIM: &str = r#"
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void note(const char *call, int fd) {
    const char *log = getenv("SIMTEST_FSYNC_LOG");
    char link[64], path[4096], line[4200];
    if (!log) return;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    path[n < 0 ? 0 : n] = 0;
    int out = open(log, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (out < 0) return;
    int len = snprintf(line, sizeof line, "%s %s\n", call, path);
    if (write(out, line, len) < 0) {}
    close(out);
}
#define WRAP(name) int name(int fd) { \
    static int (*real)(int); \
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, #name); \
    int r = real(fd); \
    if (r == 0) note(#name, fd); \
    return r; }
WRAP(fsync)
WRAP(fdatasync)
"#;

/// The store file's completed syncs logged so far.
fn store_syncs(log: &std::path::Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with("/simtest.redb"))
        .count()
}

/// Sends a write; asserts its answer and that a sync of the store file completed before it.
async fn synced(
    log: &std::path::Path,
    request: reqwest::RequestBuilder,
    status: StatusCode,
) -> Value {
    let before = store_syncs(log);
    let (actual, body) = status_and_json(request.send().await.unwrap()).await;
    assert_eq!(actual, status, "{body}");
    assert!(
        store_syncs(log) > before,
        "no sync of the store file before the {status} answer"
    );
    body
}

/// Between sending each write and receiving its 201/204, at least one sync of the store file
/// completed: the answer waited for the disk, not only for the page cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_embedded_write_was_synced_to_disk_first() {
    let dir = tempfile::tempdir().unwrap();
    let shim_c = dir.path().join("fsync_log.c");
    let shim = dir.path().join("fsync_log.so");
    std::fs::write(&shim_c, FSYNC_LOG_SHIM).unwrap();
    // `cc` is there wherever Rust links binaries.
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&shim)
        .arg(&shim_c)
        .arg("-ldl")
        .status()
        .expect("cc");
    assert!(built.success(), "the LD_PRELOAD shim builds");
    let data = dir.path().join("data");
    seed_fixtures(&data, None);
    let log = dir.path().join("fsync.log");
    let mut server = serve_with(
        &data,
        None,
        &[],
        &[
            ("LD_PRELOAD", shim.as_os_str()),
            ("SIMTEST_FSYNC_LOG", log.as_os_str()),
        ],
    );
    let token = alice_token();
    let client = reqwest::Client::new();
    let base = format!("{}/v1/acme/simulation/unit_test/", server.url);
    let mut ids = Vec::new();
    for i in 0..5 {
        let create = client
            .post(&base)
            .json(&unit_test_body(&format!("synced {i}")));
        let r = synced(&log, create.bearer_auth(&token), StatusCode::CREATED).await;
        ids.push(r["simulation_unit_test_id"].as_str().unwrap().to_owned());
    }
    for (i, id) in ids.iter().enumerate() {
        let update = client
            .post(format!("{base}{id}/"))
            .json(&json!({"run_count": i + 7}));
        synced(&log, update.bearer_auth(&token), StatusCode::NO_CONTENT).await;
        let delete = client.delete(format!("{base}{id}/"));
        synced(&log, delete.bearer_auth(&token), StatusCode::NO_CONTENT).await;
    }
    // The control: a read syncs nothing, so the counts above come from the writes.
    let before = store_syncs(&log);
    let r = client.get(&base).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(store_syncs(&log), before, "a list synced the store file");
    server.child.kill().unwrap();
    let _ = server.child.wait();
}

/// (commits, writes) of the embedded store so far, from the server's `/metrics`.
async fn commits_and_writes(client: &reqwest::Client, server: &Server) -> (u64, u64) {
    let text = metrics_text(client, &server.url).await;
    (
        counter(&text, "simtest_embedded_commits_total"),
        counter(&text, "simtest_embedded_writes_total"),
    )
}

/// Group commit, seen from outside: 64 concurrent creates (and 16 more reusing some of their
/// names) share commits; each name is created exactly once, the refused ones fail no other; every
/// acknowledged create is there after a SIGKILL and a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_embedded_creates_share_commits_and_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    seed_fixtures(dir.path(), None);
    let mut server = serve(dir.path(), None);
    let token = alice_token();
    let client = reqwest::Client::new();
    let base = format!("{}/v1/acme/simulation/unit_test/", server.url);
    let (commits_before, writes_before) = commits_and_writes(&client, &server).await;

    let names: Vec<String> = (0..64)
        .chain(0..16)
        .map(|i| format!("grouped {i}"))
        .collect();
    let creates = names.iter().map(|name| {
        let request = client
            .post(&base)
            .bearer_auth(&token)
            .json(&unit_test_body(name));
        async move { status_and_json(request.send().await.unwrap()).await }
    });
    let answers = futures::future::join_all(creates).await;
    let mut created: HashMap<&str, Vec<String>> = HashMap::new();
    for (name, (status, body)) in names.iter().zip(&answers) {
        match *status {
            StatusCode::CREATED => created
                .entry(name)
                .or_default()
                .push(body["simulation_unit_test_id"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => {
                assert_eq!(body["error_code"], "unit_test_name_taken", "{body}")
            }
            other => panic!("{name}: unexpected {other}: {body}"),
        }
    }
    assert_eq!(created.len(), 64, "every name was created");
    assert!(
        created.values().all(|ids| ids.len() == 1),
        "each name exactly once: {created:?}"
    );

    let (commits, writes) = commits_and_writes(&client, &server).await;
    let (commits, writes) = (commits - commits_before, writes - writes_before);
    assert_eq!(writes, 64, "one write per create that was answered 201");
    assert!(
        commits < writes,
        "concurrent creates share commits: {commits} commits for {writes} writes"
    );

    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    let mut server = serve(dir.path(), None);
    let base = format!("{}/v1/acme/simulation/unit_test/", server.url);
    let page: Value = client
        .get(format!("{base}?limit=500"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: HashMap<&str, &str> = page["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["id"].as_str()?, t["name"].as_str()?)))
        .filter(|(_, name)| name.starts_with("grouped "))
        .collect();
    assert_eq!(stored.len(), 64, "{stored:?}");
    for (name, ids) in &created {
        assert_eq!(stored.get(ids[0].as_str()), Some(name), "{name} lost");
    }
    server.child.kill().unwrap();
    let _ = server.child.wait();
}

/// Stops `server` with SIGTERM (a clean close saves the catalog's snapshot) and starts it again.
fn restart_cleanly(mut server: Server, data_dir: &std::path::Path) -> Server {
    let pid = server.child.id().to_string();
    let kill = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(kill.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "serve exits 0 on SIGTERM: {exit:?}");
    assert!(
        data_dir.join("catalog.snapshot").exists(),
        "a clean close saves the catalog"
    );
    serve(data_dir, None)
}

fn server_base(server: &Server) -> String {
    format!("{}/v1/acme/simulation/unit_test/", server.url)
}

/// GET `path` (under the server's URL) as alice; the JSON answer.
async fn get_json(client: &reqwest::Client, server: &Server, path: &str) -> Value {
    let r = client
        .get(format!("{}{path}", server.url))
        .bearer_auth(alice_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{path}");
    r.json().await.unwrap()
}

/// The ids a list or search answered (list items carry `id`, search items `_id`).
fn answered_ids(page: &Value) -> Vec<String> {
    page["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().or(t["_id"].as_str()).unwrap().to_owned())
        .collect()
}

/// The embedded store answers lists and searches from rows it keeps beside the documents (read at
/// start instead of the documents). A server rewriting descriptions and tags is killed with
/// SIGKILL; after the restart every list and search must agree with the documents as stored,
/// whichever writes landed: a row older than its document would answer a search for the
/// document's words with nothing, and a filter on its tag with nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_searches_agree_with_the_documents_after_sigkill_embedded() {
    let dir = tempfile::tempdir().unwrap();
    seed_fixtures(dir.path(), None);
    let mut server = serve(dir.path(), None);
    let token = alice_token();
    let client = reqwest::Client::new();
    let base = server_base(&server);
    let mut ids = Vec::new();
    for i in 0..24 {
        let r = client
            .post(&base)
            .bearer_auth(&token)
            .json(&unit_test_body(&format!("kept {i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let body: Value = r.json().await.unwrap();
        ids.push(body["simulation_unit_test_id"].as_str().unwrap().to_owned());
    }
    // Three rounds of load, SIGKILL and restart: a kill lands between two commits of a batch's
    // writes only now and then. Each round's server starts from the catalog's snapshot, which
    // the writes before the kill make stale: the restart after the kill must not use it.
    for round in 0..3 {
        server = restart_cleanly(server, dir.path());
        // Each worker rewrites its own unit tests: a description with a word no other write uses,
        // a tag with the same word; every seventh write creates a unit test named with its word
        // (but in round 1).
        let sent: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut workers = Vec::new();
        for w in 0..6 {
            let mine: Vec<String> = ids[w * 4..w * 4 + 4].to_vec();
            let (client, base, token, sent) = (
                client.clone(),
                server_base(&server),
                token.clone(),
                sent.clone(),
            );
            workers.push(tokio::spawn(async move {
                for i in 0.. {
                    let word = format!("rev{round}x{w}x{i}");
                    sent.lock().unwrap().push(word.clone());
                    // Round 1 only rewrites: the number of unit tests then stays what the
                    // snapshot holds, so only its mark can tell it is stale.
                    let request = if i % 7 == 6 && round != 1 {
                        client.post(&base).json(&unit_test_body(&word))
                    } else {
                        client.post(format!("{base}{}/", mine[i % 4])).json(&json!({
                            "description": format!("Rewritten as {word}"),
                            "tags": {"rev": word},
                        }))
                    };
                    match request.bearer_auth(&token).send().await {
                        Ok(r) if r.status().is_success() => {}
                        _ => break,
                    }
                }
            }));
        }
        // Killed once the load is well under way, however slow the machine (a fixed 800 ms saw
        // 33 writes on a busy CI machine).
        let started = std::time::Instant::now();
        while sent.lock().unwrap().len() < 100 && started.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        server.child.kill().unwrap(); // SIGKILL, mid-load
        server.child.wait().unwrap();
        for w in workers {
            w.await.unwrap();
        }
        let sent = sent.lock().unwrap().clone();
        assert!(sent.len() > 60, "the load ran ({} writes sent)", sent.len());

        server = serve(dir.path(), None);
        // The documents as stored, read one by one (not through the catalog).
        let listed = get_json(&client, &server, "/v1/acme/simulation/unit_test/?limit=500").await;
        let mut docs: HashMap<String, Value> = HashMap::new();
        for id in answered_ids(&listed).iter().chain(&ids) {
            // A page reads its documents from the store; a filter by id needs no row to be current.
            let page = get_json(
                &client,
                &server,
                &format!("/v1/acme/simulation/unit_test/?id={id}"),
            )
            .await;
            docs.insert(id.clone(), page["simulation_unit_tests"][0].clone());
        }
        let mut all: Vec<&String> = docs.keys().collect();
        all.sort();
        let mut listed_ids = answered_ids(&listed);
        listed_ids.sort();
        assert_eq!(
            listed_ids.iter().collect::<Vec<_>>(),
            all,
            "the list holds every document"
        );
        // Every word ever sent: found exactly where a stored document holds it, by search and by
        // tag filter, and nowhere else.
        for word in &sent {
            let holding = |doc: &Value| {
                doc["description"].as_str().unwrap().contains(word.as_str())
                    || doc["name"].as_str().unwrap() == word
            };
            let mut want: Vec<&String> = (docs.iter())
                .filter(|(_, d)| holding(d))
                .map(|(id, _)| id)
                .collect();
            want.sort();
            let found = get_json(
                &client,
                &server,
                &format!("/v1/acme/simulation/unit_test/search/?query={word}"),
            )
            .await;
            let mut found = answered_ids(&found);
            found.sort();
            assert_eq!(found.iter().collect::<Vec<_>>(), want, "search {word}");
            let mut want: Vec<&String> = (docs.iter())
                .filter(|(_, d)| {
                    (d["tags"].as_array().unwrap().iter())
                        .any(|t| t["key"] == "rev" && t["value"] == word.as_str())
                })
                .map(|(id, _)| id)
                .collect();
            want.sort();
            let tagged = get_json(
                &client,
                &server,
                &format!("/v1/acme/simulation/unit_test/?tag=rev:{word}"),
            )
            .await;
            let mut tagged = answered_ids(&tagged);
            tagged.sort();
            assert_eq!(tagged.iter().collect::<Vec<_>>(), want, "tag rev:{word}");
        }
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
}
