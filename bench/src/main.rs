//! `simtest-bench`: seeds a simtest server with N unit tests, drives every scenario at 1 and 32
//! clients, measures the HTTP ceiling and the store ceiling in the same run, and prints one table
//! (BENCHMARKS.md says how to read it).

mod fixtures;
mod load;
mod scenarios;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use futures::StreamExt;

use load::{Stats, drive};
use scenarios::{Direct, Http, IdPool, Scenario};
use server::Target;

#[derive(Parser)]
#[command(
    name = "simtest-bench",
    about = "Benchmarks a simtest server and its store"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Seed N unit tests, run every scenario over HTTP and against the store, print the table.
    Run(RunArgs),
    /// Only the store ceiling, on a data dir (or MongoDB database) a `run` left behind.
    StoreCeiling {
        #[command(flatten)]
        common: Common,
        /// The run's work dir (holds `data/` and `ids.txt`).
        #[arg(long)]
        work_dir: PathBuf,
        #[arg(long)]
        mongodb_database: Option<String>,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Seconds each scenario runs at each client count.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Smoke run: 2 s per scenario.
    #[arg(long)]
    quick: bool,
    /// Client counts.
    #[arg(long, value_delimiter = ',', default_value = "1,32")]
    clients: Vec<usize>,
    /// Only these scenarios (names as in the table, e.g. `list,search 1 term`); all by default.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    /// MongoDB (or FerretDB) instead of the embedded store; each run uses a fresh database.
    #[arg(long, env = "SIMTEST_BENCH_MONGODB_URI")]
    mongodb_uri: Option<String>,
}

impl Common {
    fn wanted(&self, scenario: &Scenario) -> bool {
        self.scenarios.is_empty()
            || *scenario == Scenario::Ceiling
            || self.scenarios.iter().any(|s| s == scenario.name())
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(if self.quick { 2.0 } else { self.seconds })
    }

    /// Before each measurement: a fifth of it, at most a second.
    fn warm_up(&self) -> Duration {
        (self.duration() / 5).min(Duration::from_secs(1))
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Unit tests to seed.
    #[arg(long, default_value_t = 10_000)]
    n: usize,
    /// Concurrent creates while seeding.
    #[arg(long, default_value_t = 32)]
    seed_clients: usize,
    /// The release `simtest` binary.
    #[arg(long, default_value = "target/release/simtest")]
    simtest: PathBuf,
    /// Stop once the N unit tests are seeded (to measure later with `--reuse`).
    #[arg(long)]
    seed_only: bool,
    /// Measure on the data a `--seed-only` run left in `--work-dir` (embedded store only) instead
    /// of seeding: a 1M seed takes a quarter of an hour.
    #[arg(long, requires = "work_dir", conflicts_with = "mongodb_uri")]
    reuse: bool,
    /// Before the scenarios, wait until the embedded store's search index is built (its log says
    /// `search index built`). A start from the catalog's snapshot has it at once; one that read
    /// the rows (after a crash, or data of an older version) builds it in the background, at 1M
    /// for most of a minute, during which the builder's steps hold the catalog and every list
    /// waits behind them.
    #[arg(long)]
    wait_for_index: bool,
    /// Where data, logs and the ids file go (a fresh temporary dir by default).
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        match cli.command {
            Cmd::Run(args) => run(args).await,
            Cmd::StoreCeiling {
                common,
                work_dir,
                mongodb_database,
            } => {
                let ids = read_ids(&work_dir)?;
                let n = ids.len();
                let mongo = common.mongodb_uri.clone().zip(mongodb_database);
                let rows =
                    store_ceiling(&common, &work_dir.join("data"), mongo, IdPool::new(ids), n, true)
                        .await?;
                for Row {
                    scenario,
                    clients,
                    stats,
                    ..
                } in rows
                {
                    println!(
                        "{:<16} {clients:>3} clients {:>9.0}/s p50 {:.2} ms p99 {:.2} ms, {} errors",
                        scenario.name(),
                        stats.per_second(),
                        stats.ms(0.5),
                        stats.ms(0.99),
                        stats.errors + stats.timeouts
                    );
                }
                Ok(())
            }
        }
    })
}

/// One scenario at one client count.
struct Row {
    scenario: Scenario,
    clients: usize,
    stats: Stats,
    /// MongoDB round trips per operation.
    trips: Option<f64>,
    /// The server's CPU time per request (HTTP side), in µs: what the request costs the server,
    /// which the throughput shows only through the noise of two cores shared with the clients.
    server_cpu_us: Option<f64>,
}

type Rows = Vec<Row>;

/// Where MongoDB round trips are counted: the server's `/metrics`, or this process (store ceiling).
enum Trips {
    None,
    Metrics {
        client: reqwest::Client,
        url: String,
    },
    InProcess,
}

impl Trips {
    async fn read(&self) -> Option<u64> {
        match self {
            Trips::None => None,
            Trips::InProcess => Some(simtest::store::round_trips::total()),
            Trips::Metrics { client, url } => {
                let text = client.get(url).send().await.ok()?.text().await.ok()?;
                let prefix = format!("{}{{", simtest::store::round_trips::METRIC);
                Some(
                    text.lines()
                        .filter(|l| l.starts_with(&prefix))
                        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                        .sum::<f64>() as u64,
                )
            }
        }
    }
}

/// The ids of the unit tests a run seeded into `work_dir`.
fn read_ids(work_dir: &Path) -> anyhow::Result<Vec<String>> {
    let ids = std::fs::read_to_string(work_dir.join("ids.txt"))
        .with_context(|| format!("no ids.txt in {}", work_dir.display()))?;
    Ok(ids.lines().map(str::to_owned).collect())
}

async fn run(mut args: RunArgs) -> anyhow::Result<()> {
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => {
            std::env::temp_dir().join(format!("simtest-bench-{}", uuid::Uuid::new_v4().simple()))
        }
    };
    std::fs::create_dir_all(&work_dir)?;
    // Reused data holds what was seeded then, whatever `--n` says now.
    let reused_ids = match args.reuse {
        true => Some(read_ids(&work_dir)?),
        false => None,
    };
    if let Some(ids) = &reused_ids {
        args.n = ids.len();
    }
    let common = &args.common;
    let mongodb = common
        .mongodb_uri
        .clone()
        .filter(|u| !u.is_empty())
        .map(|uri| {
            let db = format!("simtest_bench_{}", uuid::Uuid::new_v4().simple());
            (uri, db)
        });
    let target = Target {
        binary: args.simtest.clone(),
        data_dir: work_dir.join("data"),
        mongodb: mongodb.clone(),
        jwt_secret: if args.reuse {
            std::fs::read_to_string(work_dir.join("jwt-secret"))?
        } else {
            format!("bench-secret-{}", uuid::Uuid::new_v4().simple())
        },
    };
    let backend = match &mongodb {
        Some((_, db)) => format!("MongoDB database {db}"),
        None => "embedded store".into(),
    };
    eprintln!(
        "== N = {}, {backend}, work dir {}",
        args.n,
        work_dir.display()
    );
    if !args.reuse {
        std::fs::write(work_dir.join("jwt-secret"), &target.jwt_secret)?;
        let seed_file = work_dir.join("seed.json");
        std::fs::write(&seed_file, fixtures::seed_file().to_string())?;
        target.seed(&seed_file)?;
    }
    let tokens = fixtures::USERS
        .iter()
        .map(|u| target.token(fixtures::ORG, u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Past the server's own 30 s limit: a request still unanswered then counts as a timeout.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(40))
        .build()?;

    // The store ceiling runs on a copy of the seeded data, so it sees the N seeded unit tests and
    // nothing the HTTP writes add.
    let ceiling_dir = work_dir.join("store-ceiling-data");
    let (ids, seed_secs) = if let Some(ids) = reused_ids {
        (ids, f64::NAN)
    } else {
        // Seed through the API, as a client would.
        let server = target.start(&work_dir.join("seed.log")).await?;
        let seeding = Instant::now();
        let ids = seed_over_http(&client, &server.base, &tokens, args.n, args.seed_clients).await?;
        let seed_secs = seeding.elapsed().as_secs_f64();
        eprintln!(
            "seeded {} unit tests in {seed_secs:.1} s ({:.0}/s, {} clients)",
            ids.len(),
            ids.len() as f64 / seed_secs,
            args.seed_clients
        );
        std::fs::write(work_dir.join("ids.txt"), ids.join("\n"))?;
        server.stop()?;
        if mongodb.is_none() {
            copy_dir(&target.data_dir, &ceiling_dir)?;
        }
        (ids, seed_secs)
    };
    if args.seed_only {
        return Ok(());
    }

    // A fresh start on the seeded data: time to ready, memory, then the scenarios.
    let server = target.start(&work_dir.join("serve.log")).await?;
    let ready = server.time_to_ready;
    let rss_ready = server.rss_mib();
    if args.wait_for_index {
        let log = work_dir.join("serve.log");
        let waiting = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(600);
        while !std::fs::read_to_string(&log)?.contains("search index built") {
            anyhow::ensure!(
                Instant::now() < deadline,
                "no search index after 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "search index built {:.1} s after the start; RSS then {} MiB",
            (ready + waiting.elapsed()).as_secs_f64(),
            fmt_opt(server.rss_mib())
        );
    }
    let pool = IdPool::new(ids);
    let http = Arc::new(Http {
        client,
        base: server.base.clone(),
        tokens,
        ids: pool.clone(),
        n: args.n,
        run: format!("bench-{} ", uuid::Uuid::new_v4().simple()),
        created: Default::default(),
        updates: Default::default(),
        victims: Default::default(),
    });
    check_ceiling_bytes(&http).await?;
    check_fixture(&http).await?;
    let trips = match &mongodb {
        Some(_) => Trips::Metrics {
            client: http.client.clone(),
            url: format!("{}/metrics", server.base),
        },
        None => Trips::None,
    };
    let http_rows = measure(
        "http",
        &trips,
        Some(server.pid()),
        &http,
        &Scenario::ALL,
        common,
        |h, scenario, seq| async move { h.call(scenario, seq).await },
    )
    .await;
    let peak_rss = server.peak_rss_mib();
    server.stop()?;

    // On MongoDB there is no copy: the ceiling runs on the database the HTTP writes changed.
    let store_rows = store_ceiling(
        common,
        &ceiling_dir,
        mongodb.clone(),
        pool,
        args.n,
        args.wait_for_index,
    )
    .await?;

    println!();
    println!(
        "### N = {}, {backend}, {:.0} s per scenario",
        args.n,
        common.duration().as_secs_f64()
    );
    println!();
    let seeded = if args.reuse {
        "seeded earlier (--reuse)".to_owned()
    } else {
        format!(
            "seed {:.0} unit tests/s over HTTP ({} clients)",
            args.n as f64 / seed_secs,
            args.seed_clients
        )
    };
    println!(
        "{seeded} · ready {:.0} ms after start · RSS {} MiB when ready, peak {} MiB",
        ready.as_secs_f64() * 1000.0,
        fmt_opt(rss_ready),
        fmt_opt(peak_rss)
    );
    println!();
    print_table(&http_rows, &store_rows);
    Ok(())
}

/// The HTTP ceiling must answer the very bytes of the first list page.
async fn check_ceiling_bytes(http: &Http) -> anyhow::Result<()> {
    let get = |url: String| http.client.get(url).bearer_auth(&http.tokens[0]).send();
    let ceiling = get(format!("{}/bench/{}/list-page", http.base, fixtures::ORG))
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    let list = get(format!(
        "{}/v1/{}/simulation/unit_test/?limit=50",
        http.base,
        fixtures::ORG
    ))
    .await?
    .error_for_status()?
    .bytes()
    .await?;
    anyhow::ensure!(
        ceiling == list,
        "the HTTP ceiling's body ({} bytes) differs from the list page ({} bytes)",
        ceiling.len(),
        list.len()
    );
    eprintln!(
        "HTTP ceiling body = first list page body ({} bytes)",
        list.len()
    );
    Ok(())
}

/// The unit tests are the fixture's of today: the rare search finds its one unit test (data
/// seeded by an older fixture, kept with `--reuse`, would make it a search that finds nothing).
/// Smoke runs seed fewer.
async fn check_fixture(http: &Http) -> anyhow::Result<()> {
    if http.n <= fixtures::RARE_CASE {
        return Ok(());
    }
    let found: serde_json::Value = (http.client)
        .get(format!(
            "{}/v1/{}/simulation/unit_test/search/?{}",
            http.base,
            fixtures::ORG,
            scenarios::search_query_string(fixtures::SEARCH_RARE)
        ))
        .bearer_auth(&http.tokens[0])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let count = found["simulation_unit_tests"]
        .as_array()
        .map_or(0, Vec::len);
    anyhow::ensure!(
        count >= 1,
        "the search {:?} finds no unit test: the data was seeded by an older fixture; seed it again",
        fixtures::SEARCH_RARE
    );
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("?".into(), |v| format!("{v:.0}"))
}

fn report_progress(side: &str, scenario: Scenario, clients: usize, stats: &Stats) {
    eprintln!(
        "{side:<5} {:<16} {clients:>3} clients: {:>8.0}/s p50 {:>8.2} ms p99 {:>8.2} ms ({} errors, {} timeouts{})",
        scenario.name(),
        stats.per_second(),
        stats.ms(0.5),
        stats.ms(0.99),
        stats.errors,
        stats.timeouts,
        stats
            .first_error
            .as_deref()
            .map(|e| format!(", first: {e}"))
            .unwrap_or_default()
    );
}

/// Creates `n` unit tests from `clients` concurrent clients, each by one of the users in turn.
async fn seed_over_http(
    client: &reqwest::Client,
    base: &str,
    tokens: &[String],
    n: usize,
    clients: usize,
) -> anyhow::Result<Vec<String>> {
    let url = format!("{base}/v1/{}/simulation/unit_test/", fixtures::ORG);
    let results: Vec<anyhow::Result<String>> = futures::stream::iter(0..n)
        .map(|i| {
            let request = client
                .post(&url)
                .bearer_auth(&tokens[i % tokens.len()])
                .json(&fixtures::unit_test_body("seed-", i as u64));
            async move {
                let response = request.send().await?.error_for_status()?;
                let body: serde_json::Value = response.json().await?;
                body["simulation_unit_test_id"]
                    .as_str()
                    .map(str::to_owned)
                    .context("no id in the create answer")
            }
        })
        .buffered(clients)
        .collect()
        .await;
    results.into_iter().collect()
}

/// The same store operations without HTTP, on the data the server used (it must be stopped).
async fn store_ceiling(
    common: &Common,
    data_dir: &Path,
    mongodb: Option<(String, String)>,
    pool: Arc<IdPool>,
    n: usize,
    wait_for_index: bool,
) -> anyhow::Result<Rows> {
    let mut config = simtest::Config::for_data_dir(data_dir);
    let trips = if mongodb.is_some() {
        Trips::InProcess
    } else {
        Trips::None
    };
    config.mongodb = mongodb.map(|(uri, db)| simtest::MongoConfig::new(uri, db));
    // The write concern the server was given (it reads the same variable), e.g. 1 on a standalone
    // mongod, where majority needs a replica set.
    if let (Some(mongo), Ok(w)) = (
        config.mongodb.as_mut(),
        std::env::var("SIMTEST_MONGODB_WRITE_CONCERN"),
    ) {
        mongo.write_concern = w
            .parse()
            .map_err(|e| anyhow::anyhow!("SIMTEST_MONGODB_WRITE_CONCERN: {e}"))?;
    }
    let store: Arc<dyn simtest::store::Store> = match &config.mongodb {
        Some(_) => simtest::open_store(&config).await?,
        None => {
            let store = simtest::store::embedded::EmbeddedStore::open(data_dir)?;
            // As the HTTP side was measured: at 1M the index takes most of a minute, and
            // searches before then read every text.
            let waiting = Instant::now();
            while wait_for_index && !store.search_index_built() {
                anyhow::ensure!(
                    waiting.elapsed() < Duration::from_secs(600),
                    "no search index after 10 minutes"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Arc::new(store)
        }
    };
    let first = simtest::service::list_query_for(
        &fixtures::ORG.into(),
        &simtest::domain::query_string::QueryParams::parse(Some("limit=1")),
    )
    .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let template = store
        .list_unit_tests(&first)
        .await?
        .items
        .pop()
        .map(Arc::unwrap_or_clone)
        .context("the store holds no unit test")?;
    let direct = Arc::new(Direct {
        store,
        template,
        ids: pool,
        n,
        run: format!("bench-{} ", uuid::Uuid::new_v4().simple()),
        created: Default::default(),
        updates: Default::default(),
        victims: Default::default(),
    });
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| *s != Scenario::Ceiling)
        .collect();
    Ok(measure(
        "store",
        &trips,
        None,
        &direct,
        &scenarios,
        common,
        |d, scenario, seq| async move { d.call(scenario, seq).await },
    )
    .await)
}

/// Drives each scenario at each client count through `call` on `target`, reporting as it goes.
async fn measure<T, Fut>(
    side: &str,
    trips: &Trips,
    server_pid: Option<u32>,
    target: &Arc<T>,
    scenarios: &[Scenario],
    common: &Common,
    call: fn(Arc<T>, Scenario, u64) -> Fut,
) -> Rows
where
    T: Send + Sync + 'static,
    Fut: Future<Output = load::Outcome> + Send + 'static,
{
    let mut rows = Vec::new();
    for &scenario in scenarios.iter().filter(|s| common.wanted(s)) {
        for &clients in &common.clients {
            // A short warm-up, not measured: connections opened, caches and pages warm.
            let warm = target.clone();
            drive(clients, common.warm_up(), move |seq| {
                call(warm.clone(), scenario, seq)
            })
            .await;
            let target = target.clone();
            let before = trips.read().await;
            let cpu_before = server_pid.and_then(server::cpu_seconds);
            let stats = drive(clients, common.duration(), move |seq| {
                call(target.clone(), scenario, seq)
            })
            .await;
            let answered = (stats.ok + stats.errors + stats.timeouts).max(1) as f64;
            let per_op = before.zip(trips.read().await).map(|(before, after)| {
                (after - before) as f64 / (stats.ok + stats.errors).max(1) as f64
            });
            let server_cpu_us = (cpu_before.zip(server_pid.and_then(server::cpu_seconds)))
                .map(|(before, after)| (after - before) * 1e6 / answered);
            report_progress(side, scenario, clients, &stats);
            rows.push(Row {
                scenario,
                clients,
                stats,
                trips: per_op,
                server_cpu_us,
            });
        }
    }
    rows
}

/// One Markdown table: each HTTP scenario with its latencies and its throughput as a share of the
/// HTTP ceiling (same client count) and of the store ceiling (same scenario, same client count),
/// and the server's CPU time per request, also as a share of the ceiling's: the throughput a
/// server with the cores to itself would reach, steadier than the req/s of two shared cores.
fn print_table(http: &Rows, store: &Rows) {
    let ceiling = |clients: usize| {
        http.iter()
            .find(|r| r.scenario == Scenario::Ceiling && r.clients == clients)
    };
    let trips = |t: Option<f64>| t.map_or("–".into(), |t| format!("{t:.1}"));
    println!(
        "| scenario | clients | req/s | p50 ms | p99 ms | max ms | errors | timeouts | % of HTTP ceiling | server CPU µs/req | % of HTTP ceiling by server CPU | store ops/s | store errors | % of store ceiling | MongoDB round trips per request (store op) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in http {
        let (st, clients) = (&row.stats, row.clients);
        let rate = st.per_second();
        let ceiling = ceiling(clients);
        let of_http = ceiling.map_or("–".into(), |c| {
            format!("{:.0}%", 100.0 * rate / c.stats.per_second())
        });
        let cpu = row
            .server_cpu_us
            .map_or("–".into(), |us| format!("{us:.0}"));
        let of_http_cpu = (ceiling.and_then(|c| c.server_cpu_us))
            .zip(row.server_cpu_us)
            .filter(|&(_, us)| us > 0.0)
            .map_or("–".into(), |(c, us)| format!("{:.0}%", 100.0 * c / us));
        let direct = store
            .iter()
            .find(|r| r.scenario == row.scenario && r.clients == clients);
        let store_trips = trips(direct.and_then(|r| r.trips));
        let (direct_rate, direct_errors, of_store) = match direct.map(|r| &r.stats) {
            Some(d) => (
                format!("{:.0}", d.per_second()),
                (d.errors + d.timeouts).to_string(),
                format!("{:.0}%", 100.0 * rate / d.per_second()),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {} | {clients} | {rate:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {of_http} | {cpu} | {of_http_cpu} | {direct_rate} | {direct_errors} | {of_store} | {} ({store_trips}) |",
            row.scenario.name(),
            st.ms(0.5),
            st.ms(0.99),
            st.max_ms(),
            st.errors,
            st.timeouts,
            trips(row.trips),
        );
    }
}
