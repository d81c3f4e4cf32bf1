//! The `simtest` command: serve, migrate, seed, token, api-key.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::net::TcpListener;

use simtest::Config;
use simtest::api::render::Renderings;
use simtest::auth::CurrentUser;
use simtest::auth::api_key;
use simtest::config::{ApiKeyCommand, Cli, Command, CommonArgs, LogFormat, ServeArgs, redact_uri};
use simtest::domain::query_string::QueryParams;
use simtest::domain::{IdKey, OrgId, Timestamp};
use simtest::service::UnitTestService;
use simtest::service::bulk::{ImportOptions, rows_of};
use simtest::service::seed;
use simtest::store::mongo::MongoStore;
use simtest::store::{ApiKey, Records};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.common);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("simtest: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line, the whole cause chain.
            eprintln!("simtest: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(common: &CommonArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&common.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match common.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::new(&cli.common);
    match cli.command {
        Command::Serve(args) => {
            config.apply_serve_args(&args);
            serve(&config, &args).await
        }
        Command::Seed {
            file,
            without_api_keys,
        } => {
            let mut json = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if without_api_keys {
                json = seed::without_api_keys(&json)
                    .with_context(|| format!("invalid seed file {}", file.display()))?;
            }
            let store = simtest::open_store(&config).await?;
            let count = seed::seed(store.as_ref(), &json)
                .await
                .with_context(|| format!("seeding {}", file.display()))?;
            println!("seeded {count} records from {}", file.display());
            Ok(())
        }
        Command::Migrate => migrate(&config).await,
        Command::Export { org, filter } => export(&config, org, &filter).await,
        Command::Import {
            org,
            user,
            dry_run,
            atomic,
            file,
        } => import(&config, org, user, ImportOptions { dry_run, atomic }, &file).await,
        Command::Token { org, user } => {
            let (token, expires_at) = simtest::token_keys_for_cli(&config)
                .await?
                .issue(&org, &user)?;
            println!("{token}");
            eprintln!("token for {org}/{user}, expires at {expires_at}");
            Ok(())
        }
        Command::ApiKey(ApiKeyCommand::Create {
            org,
            key_id,
            expires_at,
        }) => create_api_key(&config, org, key_id, expires_at).await,
    }
}

async fn serve(config: &Config, args: &ServeArgs) -> anyhow::Result<()> {
    let app = simtest::build_app(config).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if args.demo {
        let count = seed::seed(app.state.store.as_ref(), seed::DEMO_SEED).await?;
        let (token, _) = app.state.auth.keys().issue(&"acme".into(), "alice")?;
        println!("Demo data loaded ({count} records): org `acme`, admin `alice`, viewer `victor`.");
        println!("export SIMTEST_URL=http://{addr}");
        println!("export SIMTEST_TOKEN={token}");
        println!(
            "curl -s -H \"Authorization: Bearer $SIMTEST_TOKEN\" $SIMTEST_URL/v1/acme/simulation/unit_test/"
        );
    }
    let _background = simtest::start_background_tasks(&app.state);
    tracing::info!(%addr, store = %config.store_description(), "simtest listening");
    let stopping = Arc::new(tokio::sync::Notify::new());
    let server = simtest::serve(listener, app.router, {
        let stopping = stopping.clone();
        async move {
            shutdown_signal().await;
            stopping.notify_one();
        }
    });
    // In-flight requests may finish, but only within the grace period.
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    tokio::select! {
        result = server => result.context("server failed")?,
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "requests still running after the grace period; exiting");
        }
    }
    // Dropping the state closes the store; every acknowledged write was already synced.
    drop(app.state);
    tracing::info!("simtest stopped");
    Ok(())
}

/// Applies the MongoDB migrations the database lacks and says which.
async fn migrate(config: &Config) -> anyhow::Result<()> {
    let Some(mongo) = &config.mongodb else {
        anyhow::bail!(
            "migrate applies to MongoDB: give --mongodb-uri or SIMTEST_MONGODB_URI (the embedded store needs no migrations)"
        );
    };
    let store = MongoStore::connect(&mongo.uri, &mongo.database, mongo.write_concern).await?;
    let applied = store.migrate().await.with_context(|| {
        format!(
            "cannot migrate MongoDB database {:?} at {}",
            mongo.database,
            redact_uri(&mongo.uri)
        )
    })?;
    let backfill = store
        .backfill_search_grams()
        .await
        .context("cannot backfill the search grams")?;
    if backfill.written > 0 || backfill.left > 0 {
        println!(
            "search grams written into {} unit tests ({} left: changed meanwhile by an older version)",
            backfill.written, backfill.left
        );
    }
    if applied.is_empty() {
        println!("MongoDB database {:?} is up to date", mongo.database);
    } else {
        for name in applied {
            println!("applied {name}");
        }
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown requested; finishing in-flight requests");
}

/// `simtest export`: the same pages and lines as the HTTP export.
async fn export(config: &Config, org: OrgId, filter: &str) -> anyhow::Result<()> {
    use futures::StreamExt;
    use std::io::Write;
    let store = simtest::open_store(config).await?;
    anyhow::ensure!(
        store.organization(&org).await?.is_some(),
        "organization {org:?} does not exist"
    );
    let operator = CurrentUser::operator(org, "simtest-cli".into(), store);
    let pages = UnitTestService
        .export(operator, &QueryParams::parse(Some(filter)))
        .map_err(|e| anyhow::anyhow!("--filter: {}", e.detail()))?;
    let renderings = Renderings::default();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut pages = std::pin::pin!(pages);
    let mut count = 0;
    while let Some(page) = pages.next().await {
        for doc in page.map_err(|e| anyhow::anyhow!("{e}"))? {
            let line = renderings
                .render(&doc, IdKey::Id)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(out, "{}", line.json().get())?;
            count += 1;
        }
    }
    out.flush()?;
    eprintln!("exported {count} unit tests");
    Ok(())
}

/// `simtest import`: the same validation and outcomes as the HTTP import, as `user` of `org`.
async fn import(
    config: &Config,
    org: OrgId,
    user: String,
    options: ImportOptions,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let bytes = if file.as_os_str() == "-" {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)?;
        bytes
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let store = simtest::open_store(config).await?;
    anyhow::ensure!(
        store.organization(&org).await?.is_some(),
        "organization {org:?} does not exist"
    );
    let json_array = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let rows = rows_of(&bytes, json_array).map_err(|e| anyhow::anyhow!("{}", e.detail()))?;
    let operator = CurrentUser::operator(org, user.into(), store);
    let report = UnitTestService
        .import(&operator, rows, options)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    anyhow::ensure!(
        report.failed == 0,
        "{} of the rows were refused",
        report.failed
    );
    Ok(())
}

async fn create_api_key(
    config: &Config,
    org: OrgId,
    key_id: Option<String>,
    expires_at: Option<String>,
) -> anyhow::Result<()> {
    let expires_at = expires_at
        .map(|raw| {
            Timestamp::parse(&raw)
                .with_context(|| format!("--expires-at {raw:?} is not an RFC 3339 timestamp"))
        })
        .transpose()?;
    let store = simtest::open_store(config).await?;
    anyhow::ensure!(
        store.organization(&org).await?.is_some(),
        "organization {org:?} does not exist (seed it first)"
    );
    let key_id = key_id.unwrap_or_else(|| format!("key-{}", &api_key::generate_secret()[..12]));
    anyhow::ensure!(
        store.api_key(&org, &key_id).await?.is_none(),
        "API key {key_id:?} already exists in {org:?}"
    );
    let secret = api_key::generate_secret();
    let key = ApiKey {
        org_id: org.clone(),
        key_id: key_id.clone(),
        secret_hash: api_key::hash_secret(&secret)?,
        expires_at,
        is_deleted: false,
    };
    store
        .upsert_records(&Records {
            api_keys: vec![key],
            ..Records::default()
        })
        .await?;
    println!("org:        {org}");
    println!("key id:     {key_id}");
    println!("secret:     {secret}");
    eprintln!("The secret is shown only now; simtest keeps only its hash.");
    Ok(())
}
