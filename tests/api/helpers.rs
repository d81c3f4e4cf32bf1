//! Starts the real application on a random loopback port, on a fresh store, seeded with
//! `fixtures.json`, and speaks HTTP to it.

use std::net::SocketAddr;
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use simtest::store::Store;
use simtest::store::mongo::{MongoStore, MongoWriteConcern};
use simtest::{AppState, Config, MongoConfig};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const FIXTURES: &str = include_str!("fixtures.json");
pub const TEST_TOKEN_SECRET: &str = "test-secret-test-secret-test-secret-0123";

// Fixture ids (see fixtures.json).
pub const SERVICE: &str = "6618791275130b73714e8d1c";
pub const SERVICE_2: &str = "6618791275130b73714e8d1d";
pub const SERVICE_INACTIVE: &str = "6618791275130b73714e8d1e";
pub const GLOBEX_SERVICE: &str = "7718791275130b73714e8d1c";
pub const PERSONA: &str = "6618791275130b73714e8d2a";
pub const PERSONA_2: &str = "6618791275130b73714e8d2b";
pub const PERSONA_DELETED: &str = "6618791275130b73714e8d2c";
pub const GLOBEX_PERSONA: &str = "7718791275130b73714e8d2a";
pub const SCENARIO: &str = "6618791275130b73714e8d3b";
pub const SCENARIO_2: &str = "6618791275130b73714e8d3c";
pub const SCENARIO_DELETED: &str = "6618791275130b73714e8d3d";
pub const METRIC_BOOL: &str = "6618791275130b73714e8d4c";
pub const METRIC_NUM: &str = "6618791275130b73714e8d4d";
pub const METRIC_CAT: &str = "6618791275130b73714e8d4e";
pub const METRIC_DELETED: &str = "6618791275130b73714e8d4f";
pub const GLOBEX_SCENARIO: &str = "7718791275130b73714e8d3b";
pub const GLOBEX_METRIC: &str = "7718791275130b73714e8d4c";
pub const UNKNOWN_ID: &str = "0123456789abcdef01234567";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Embedded,
    /// MongoDB (FerretDB in CI) at `SIMTEST_TEST_MONGODB_URI`, a fresh database per test.
    Mongo,
}

/// The MongoDB the tests may use, if any.
pub fn test_mongodb_uri() -> Option<String> {
    std::env::var("SIMTEST_TEST_MONGODB_URI")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// Write concern of the test databases (`SIMTEST_TEST_MONGODB_WRITE_CONCERN`, default majority).
pub fn test_write_concern() -> MongoWriteConcern {
    std::env::var("SIMTEST_TEST_MONGODB_WRITE_CONCERN")
        .ok()
        .map(|w| w.parse().expect("SIMTEST_TEST_MONGODB_WRITE_CONCERN"))
        .unwrap_or(MongoWriteConcern::Majority)
}

/// One `SKIPPED` line on the real stderr (the test harness captures `eprintln!`, not this).
pub fn say_skipped(what: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIPPED: {what}");
}

/// Says once per test run that the MongoDB half of the suite is skipped, and why.
pub fn mongo_available() -> bool {
    static SAID: Once = Once::new();
    let available = test_mongodb_uri().is_some();
    if !available {
        SAID.call_once(|| {
            say_skipped("MongoDB tests (set SIMTEST_TEST_MONGODB_URI to run them; .ci/run starts FerretDB and does)");
        });
    }
    available
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    pub state: AppState,
    pub backend: Backend,
    dir: Arc<TempDir>,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _background: simtest::BackgroundTasks,
    /// Set while restarting: the next server needs the data.
    keep_database: bool,
}

fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("debug")
                .with_test_writer()
                .init();
        }
    });
}

/// A fresh server on `backend`, seeded with the fixtures.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with the configuration adjusted first (budgets, timeouts, CORS...).
pub async fn spawn_app_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> TestApp {
    init_test_logging();
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut config = Config::for_data_dir(dir.path());
    // A known secret, so tests can forge tokens the way an attacker with the secret could.
    config.jwt_secret = Some(TEST_TOKEN_SECRET.to_owned());
    if backend == Backend::Mongo {
        let uri = test_mongodb_uri().expect("SIMTEST_TEST_MONGODB_URI");
        let database = format!("simtest_test_{}", uuid::Uuid::new_v4().simple());
        let mut mongo = MongoConfig::new(uri, database);
        mongo.write_concern = test_write_concern();
        config.mongodb = Some(mongo);
    }
    adjust(&mut config);
    let app = start(backend, dir, config).await;
    simtest::service::seed::seed(app.state.store.as_ref(), FIXTURES)
        .await
        .expect("seed fixtures");
    app
}

async fn open_store(config: &Config) -> Arc<dyn Store> {
    simtest::open_store(config)
        .await
        .expect("open the test store")
}

async fn start(backend: Backend, dir: Arc<TempDir>, config: Config) -> TestApp {
    let store = open_store(&config).await;
    let app = simtest::build_app_with_store(&config, store)
        .await
        .expect("build app");
    let background = simtest::start_background_tasks(&app.state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let router = app.router;
    let server = tokio::spawn(async move {
        simtest::serve(listener, router, async {
            let _ = stopped.await;
        })
        .await
        .expect("server");
    });
    TestApp {
        addr,
        client: Client::builder().pool_max_idle_per_host(0).build().unwrap(),
        state: app.state,
        backend,
        dir,
        config,
        stop: Some(stop),
        server: Some(server),
        _background: background,
        keep_database: false,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A token for `user` of `org`, signed with this server's secret.
    pub fn token(&self, org: &str, user: &str) -> String {
        self.state
            .auth
            .keys()
            .issue(&org.into(), user)
            .expect("token")
            .0
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Alice, admin of acme.
    pub fn admin_token(&self) -> String {
        self.token("acme", "alice")
    }

    /// Upserts more seed records (e.g. a unit test set that lists a unit test).
    pub async fn seed(&self, json: &Value) {
        simtest::service::seed::seed(self.state.store.as_ref(), &json.to_string())
            .await
            .expect("seed");
    }

    pub async fn create_as(&self, token: &str, org: &str, body: &Value) -> Response {
        self.client
            .post(self.url(&format!("/v1/{org}/simulation/unit_test/")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates as acme's admin.
    pub async fn create(&self, body: &Value) -> Response {
        self.create_as(&self.admin_token(), "acme", body).await
    }

    /// Creates as acme's admin and returns the new id; panics unless 201.
    pub async fn create_ok(&self, body: &Value) -> String {
        let response = self.create(body).await;
        let status = response.status();
        let json: Value = response.json().await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "create failed: {json}");
        json["simulation_unit_test_id"].as_str().unwrap().to_owned()
    }

    pub async fn list_as(&self, token: &str, org: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/{org}/simulation/unit_test/?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Lists in acme as admin; panics unless 200.
    pub async fn list(&self, query: &str) -> Value {
        let response = self.list_as(&self.admin_token(), "acme", query).await;
        assert_eq!(response.status(), StatusCode::OK, "list {query}");
        response.json().await.unwrap()
    }

    pub async fn search_as(&self, token: &str, org: &str, query: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/{org}/simulation/unit_test/search/?{query}")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Searches in acme as admin; panics unless 200.
    pub async fn search(&self, query: &str) -> Value {
        let response = self.search_as(&self.admin_token(), "acme", query).await;
        assert_eq!(response.status(), StatusCode::OK, "search {query}");
        response.json().await.unwrap()
    }

    pub async fn update_as(&self, token: &str, org: &str, id: &str, body: &Value) -> Response {
        self.client
            .post(self.url(&format!("/v1/{org}/simulation/unit_test/{id}/")))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn update(&self, id: &str, body: &Value) -> Response {
        self.update_as(&self.admin_token(), "acme", id, body).await
    }

    pub async fn delete_as(&self, token: &str, org: &str, id: &str) -> Response {
        self.client
            .delete(self.url(&format!("/v1/{org}/simulation/unit_test/{id}/")))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, id: &str) -> Response {
        self.delete_as(&self.admin_token(), "acme", id).await
    }

    /// The unit test `id` of acme as list shows it (deleted or not).
    pub async fn get(&self, id: &str) -> Value {
        let page = self.list(&format!("id={id}")).await;
        let items = page["simulation_unit_tests"].as_array().unwrap();
        assert_eq!(items.len(), 1, "expected exactly unit test {id}: {page}");
        items[0].clone()
    }

    /// Stops the server, closes the store, and starts a new server on the same data.
    pub async fn restart(mut self) -> TestApp {
        self.stop().await;
        let (backend, dir, config) = (self.backend, self.dir.clone(), self.config.clone());
        self.keep_database = true;
        drop(self);
        start(backend, dir, config).await
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Each MongoDB test has a database of its own: drop it (tests run on a multi-thread runtime).
        if let (Some(mongo), false) = (self.config.mongodb.clone(), self.keep_database) {
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    if let Ok(store) =
                        MongoStore::connect(&mongo.uri, &mongo.database, mongo.write_concern).await
                    {
                        let _ = store.drop_database().await;
                    }
                })
            });
        }
    }
}

/// A valid create body named `name`, referencing acme's fixtures.
/// The `/metrics` text of the server at `base` (`http://host:port`).
pub async fn metrics_text(client: &Client, base: &str) -> String {
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}

/// The value of a counter without labels in a `/metrics` text (0 when not yet counted).
pub fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

pub fn unit_test_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": format!("Checks that {name} works"),
        "service_id": SERVICE,
        "service_version_set_name": "release",
        "persona_id": PERSONA,
        "scenario_id": SCENARIO,
        "max_interactions": 10,
        "success_criterions": [
            {"name": "completed", "metric_id": METRIC_BOOL, "criterion": {"type": "boolean", "expected_value": true}},
            {"name": "quick", "metric_id": METRIC_NUM, "criterion": {"type": "numerical", "verb": "<=", "threshold": 5}},
            {"name": "tone", "metric_id": METRIC_CAT, "criterion": {"type": "categorical", "expected_values": ["warm", "neutral"]}}
        ],
        "tags": {"team": "growth", "flaky": null}
    })
}

/// The body of a response as JSON, with its status.
pub async fn status_and_json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, json)
}

/// Asserts an error answer: status, `error_code`, and the contract's body shape.
pub async fn assert_error(response: Response, status: StatusCode, error_code: &str) -> Value {
    let (actual, body) = status_and_json(response).await;
    assert_eq!(actual, status, "body: {body}");
    assert_eq!(body["error_code"], error_code, "body: {body}");
    assert!(
        body["detail"].is_string() || body["detail"].is_array(),
        "detail missing: {body}"
    );
    body
}

/// Names of the unit tests in a list or search answer, in order.
pub fn names(page: &Value) -> Vec<String> {
    page["simulation_unit_tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Emits one `#[tokio::test]` per backend for each scenario: `async fn(TestApp)` given the app
/// spawned on that backend (by `spawn_app`, or by `spawn: path;` given first, an
/// `async fn(Backend) -> TestApp` named from inside the emitted modules), or with `backend:`
/// first, `async fn(Backend)` for scenarios that configure their own server. The MongoDB ones skip
/// (with one `SKIPPED` line per run) when no test MongoDB is configured.
#[macro_export]
macro_rules! backend_tests {
    (backend: $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@emit |backend| backend; $($name),*);
    };
    (spawn: $spawn:path; $($name:ident),* $(,)?) => {
        $crate::backend_tests!(@emit |backend| $spawn(backend).await; $($name),*);
    };
    ($($name:ident),* $(,)?) => {
        $crate::backend_tests!(@emit |backend| $crate::helpers::spawn_app(backend).await; $($name),*);
    };
    (@emit |$backend:ident| $arg:expr; $($name:ident),*) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $backend = $crate::helpers::Backend::Embedded;
                    super::$name($arg).await
                }
            )*
        }
        mod mongo {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::helpers::mongo_available() {
                        let $backend = $crate::helpers::Backend::Mongo;
                        super::$name($arg).await
                    }
                }
            )*
        }
    };
}

/// A valid create body for globex, referencing globex's fixtures.
pub fn globex_unit_test_body(name: &str) -> Value {
    json!({
        "name": name,
        "description": "globex",
        "service_id": GLOBEX_SERVICE,
        "service_version_set_name": "release",
        "persona_id": GLOBEX_PERSONA,
        "scenario_id": GLOBEX_SCENARIO,
        "max_interactions": 3,
        "success_criterions": [
            {"name": "done", "metric_id": GLOBEX_METRIC, "criterion": {"type": "boolean", "expected_value": true}}
        ],
        "tags": {}
    })
}

/// Sends a request whose body arrives slowly, over a raw connection; returns the raw answer.
pub async fn slow_request(
    addr: std::net::SocketAddr,
    token: &str,
    body: &str,
    pause: Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/acme/simulation/unit_test/ HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(pause).await;
    let _ = stream.write_all(rest.as_bytes()).await;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer).await;
    answer
}
