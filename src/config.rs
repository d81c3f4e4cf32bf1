//! Command line and environment: every flag has a `SIMTEST_*` twin. Values are checked here, at
//! start-up, so bad configuration fails fast with one clear line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::RngCore;

use axum::http::HeaderValue;

use crate::auth::token::MIN_SECRET_BYTES;
use crate::domain::OrgId;
use crate::domain::problems::Problems;
use crate::ratelimit::{Budgets, Limited};
use crate::store::mongo::MongoWriteConcern;

#[derive(Debug, Parser)]
#[command(
    name = "simtest",
    version,
    about = "Stores simulation unit tests and serves the Amigo unit-test API"
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every subcommand shares.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Directory of the embedded store and of the generated token secret.
    #[arg(
        long,
        env = "SIMTEST_DATA_DIR",
        default_value = "./simtest-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Token signing secret (at least 32 bytes). Without it, one is generated and kept in the data dir.
    #[arg(
        long,
        env = "SIMTEST_JWT_SECRET",
        hide_env_values = true,
        global = true
    )]
    pub jwt_secret: Option<String>,
    /// `iss` claim written into and required of tokens.
    #[arg(
        long,
        env = "SIMTEST_JWT_ISSUER",
        default_value = "simtest",
        global = true
    )]
    pub jwt_issuer: String,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "SIMTEST_TOKEN_TTL_SECONDS", default_value_t = 3600, global = true,
          value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub token_ttl_seconds: i64,
    /// Longest lifetime (`exp - iat`, seconds) of any token accepted, whoever signed it; at least
    /// the TTL.
    #[arg(long, env = "SIMTEST_TOKEN_MAX_LIFETIME_SECONDS", default_value_t = DEFAULT_TOKEN_MAX_LIFETIME_SECONDS, global = true,
          value_parser = clap::value_parser!(i64).range(60..=31_536_000))]
    pub token_max_lifetime_seconds: i64,
    /// Log line format.
    #[arg(long, env = "SIMTEST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `simtest=debug,tower_http=info`.
    #[arg(long, env = "SIMTEST_LOG", default_value = "info", global = true)]
    pub log: String,
    /// MongoDB connection string; when given, MongoDB holds the data instead of the embedded store.
    #[arg(
        long,
        env = "SIMTEST_MONGODB_URI",
        hide_env_values = true,
        global = true
    )]
    pub mongodb_uri: Option<String>,
    /// MongoDB database of the unit tests and the reference collections.
    #[arg(
        long,
        env = "SIMTEST_MONGODB_DATABASE",
        default_value = "simtest",
        global = true
    )]
    pub mongodb_database: String,
    /// Write concern of every MongoDB write: `majority` or a number of nodes.
    #[arg(
        long,
        env = "SIMTEST_MONGODB_WRITE_CONCERN",
        default_value = "majority",
        global = true
    )]
    pub mongodb_write_concern: MongoWriteConcern,
    /// A named MongoDB cluster beside the default one, `NAME=URI` (repeatable; comma-separated in
    /// the environment). Orgs whose `mongo_cluster_name` is NAME live there.
    #[arg(long = "mongodb-cluster", env = "SIMTEST_MONGODB_CLUSTERS", value_delimiter = ',',
          value_parser = parse_cluster, hide_env_values = true, global = true)]
    pub mongodb_clusters: Vec<(String, String)>,
}

/// An org id given on the command line, judged like one in a request path.
fn parse_org(raw: &str) -> Result<OrgId, String> {
    let mut problems = Problems::default();
    OrgId::parse(raw, &mut problems).ok_or_else(|| {
        let why: Vec<String> = problems.into_vec().into_iter().map(|p| p.msg).collect();
        format!("{raw:?} is not an organization id: {}", why.join("; "))
    })
}

fn parse_cluster(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((name, uri)) if !name.trim().is_empty() && !uri.trim().is_empty() => {
            Ok((name.trim().to_owned(), uri.trim().to_owned()))
        }
        _ => Err(format!("{:?} is not NAME=URI", redact_uri(raw))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API.
    Serve(ServeArgs),
    /// Upsert fixtures (organizations, roles, users, API keys, services, ...) from a JSON file.
    Seed {
        /// The seed file (see examples/seed.json).
        file: PathBuf,
        /// Leave out the file's `api_keys` (e.g. the demo keys, whose secrets are public); create
        /// real keys with `simtest api-key create`.
        #[arg(long, env = "SIMTEST_SEED_WITHOUT_API_KEYS")]
        without_api_keys: bool,
    },
    /// Apply the MongoDB migrations (collections, indexes); recorded, so running it again is a no-op.
    Migrate,
    /// Print a token for a user, signed with the configured secret.
    Token {
        #[arg(long, env = "SIMTEST_TOKEN_ORG", value_parser = parse_org)]
        org: OrgId,
        #[arg(long, env = "SIMTEST_TOKEN_USER")]
        user: String,
    },
    /// Manage org API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Write an org's unit tests as NDJSON on stdout (what `GET …/unit_test/export` answers).
    Export {
        #[arg(long, env = "SIMTEST_EXPORT_ORG", value_parser = parse_org)]
        org: OrgId,
        /// The list filters as a query string, e.g. `tag=team:core&is_deleted=false`.
        #[arg(long, default_value = "")]
        filter: String,
    },
    /// Create unit tests in an org from an NDJSON file (or `-` for stdin) and print each row's
    /// outcome as JSON (what `POST …/unit_test/import` answers).
    Import {
        #[arg(long, env = "SIMTEST_IMPORT_ORG", value_parser = parse_org)]
        org: OrgId,
        /// Recorded as the creator of the new unit tests (a user of the org).
        #[arg(long, env = "SIMTEST_IMPORT_USER")]
        user: String,
        /// Validate every row, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Write every row or none.
        #[arg(long)]
        atomic: bool,
        /// The NDJSON file (a JSON array if it starts with `[`).
        file: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an org and print its id and secret (shown once, stored hashed).
    Create {
        #[arg(long, env = "SIMTEST_API_KEY_ORG", value_parser = parse_org)]
        org: OrgId,
        /// Id of the new key (default: generated).
        #[arg(long, env = "SIMTEST_API_KEY_ID")]
        key_id: Option<String>,
        /// Expiry, RFC 3339 (default: never).
        #[arg(long, env = "SIMTEST_API_KEY_EXPIRES_AT")]
        expires_at: Option<String>,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SIMTEST_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seed a demo org and print a working token and curl line.
    #[arg(long, env = "SIMTEST_DEMO")]
    pub demo: bool,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    #[arg(long, env = "SIMTEST_MAX_BODY_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub max_body_bytes: u64,
    /// Largest accepted import body (`POST …/unit_test/import`), in bytes; larger get 413.
    #[arg(long, env = "SIMTEST_IMPORT_MAX_BYTES", default_value_t = 32 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024))]
    pub import_max_bytes: u64,
    /// Requests running longer than this many seconds are abandoned with 503.
    #[arg(long, env = "SIMTEST_REQUEST_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout_seconds: u64,
    /// On SIGTERM/SIGINT, how long in-flight requests may still run before the process exits.
    #[arg(long, env = "SIMTEST_SHUTDOWN_GRACE_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_seconds: u64,
    /// Browser origins allowed to call the API (CORS), comma-separated, e.g. `https://app.example.com`.
    #[arg(long, env = "SIMTEST_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origins: Vec<HeaderValue>,
    /// While this file exists, `/v1` answers 503 (default: `maintenance` in the data dir).
    #[arg(long, env = "SIMTEST_MAINTENANCE_FILE")]
    pub maintenance_file: Option<PathBuf>,
    /// Serve the benchmark-only routes (`GET /bench/{org}/list-page`, the HTTP ceiling of
    /// BENCHMARKS.md). Off by default; never needed in production.
    #[arg(long, env = "SIMTEST_BENCH_ROUTES")]
    pub bench_routes: bool,
    /// API key verifications (Argon2, ~19 MiB and tens of ms each) running at once; default: the
    /// number of cores.
    #[arg(long, env = "SIMTEST_SIGN_IN_MAX_CONCURRENT", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub sign_in_max_concurrent: Option<u64>,
    /// How long a sign-in waits for a verification slot before it gets 503 with `Retry-After`.
    #[arg(long, env = "SIMTEST_SIGN_IN_MAX_WAIT_MS", default_value_t = 5_000,
          value_parser = clap::value_parser!(u64).range(0..=60_000))]
    pub sign_in_max_wait_ms: u64,
    /// Keep organization, user and role records this long (ms) to authenticate without a store
    /// round trip; a record deleted or changed by another process is honoured for up to this
    /// long. 0 (the default) reads them on every request.
    #[arg(long, env = "SIMTEST_AUTH_CACHE_TTL_MS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=300_000))]
    pub auth_cache_ttl_ms: u64,
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
}

/// How sign-in spends its CPU and memory: Argon2 verifications go through a bounded pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInSettings {
    pub max_concurrent_verifications: usize,
    pub max_wait: Duration,
}

impl Default for SignInSettings {
    fn default() -> Self {
        Self {
            max_concurrent_verifications: std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get),
            max_wait: Duration::from_secs(5),
        }
    }
}

/// The rate-limit settings: `--rate-limits-off`, and one `--rate-limit-…` flag (with its
/// `SIMTEST_RATE_LIMIT_…` twin) per [`Limited`] action, generated from the enum so a new action
/// needs no new field here.
#[derive(Debug, Clone, Default)]
pub struct RateLimitArgs {
    pub budgets: Budgets,
}

const RATE_LIMITS_OFF: &str = "rate-limits-off";

impl clap::Args for RateLimitArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let off = clap::Arg::new(RATE_LIMITS_OFF)
            .long(RATE_LIMITS_OFF)
            .env("SIMTEST_RATE_LIMITS_OFF")
            .action(clap::ArgAction::SetTrue)
            .help("Turn every rate limit off (benchmarks)");
        Limited::ALL.into_iter().fold(cmd.arg(off), |cmd, action| {
            cmd.arg(
                clap::Arg::new(action.flag())
                    .long(action.flag())
                    .env(action.env())
                    .value_name("PER_MINUTE")
                    .value_parser(clap::value_parser!(u32))
                    .help(format!(
                        "{} [default: {}]",
                        action.help(),
                        action.default_per_minute()
                    )),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for RateLimitArgs {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        let mut budgets = Budgets::off();
        if !matches.get_flag(RATE_LIMITS_OFF) {
            for action in Limited::ALL {
                let per_minute = matches.get_one::<u32>(action.flag()).copied();
                budgets.set(action, per_minute.unwrap_or(action.default_per_minute()));
            }
        }
        Ok(Self { budgets })
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

fn parse_origin(raw: &str) -> Result<HeaderValue, String> {
    let origin = raw.trim().trim_end_matches('/');
    let valid_scheme = origin.starts_with("http://") || origin.starts_with("https://");
    match HeaderValue::from_str(origin) {
        Ok(value) if valid_scheme && !origin.contains(' ') => Ok(value),
        _ => Err(format!(
            "{raw:?} is not an origin like https://app.example.com"
        )),
    }
}

/// Settings of the HTTP layers.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Larger bodies get 413.
    pub max_body_bytes: usize,
    /// Larger import bodies get 413.
    pub import_max_bytes: usize,
    /// Requests still running after this get 503, unless a write of theirs is committing (then
    /// they get its outcome; see `api::timeout`).
    pub request_timeout: Duration,
    /// Browser origins allowed to call the API (CORS); none by default.
    pub cors_origins: Vec<HeaderValue>,
    /// Serve the benchmark-only routes (`--bench-routes`; see `api::bench`).
    pub bench_routes: bool,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            import_max_bytes: 32 * 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            cors_origins: Vec::new(),
            bench_routes: false,
        }
    }
}

/// Resolved settings the application is built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: String,
    pub token_ttl_seconds: i64,
    /// Tokens whose `exp - iat` exceeds this (plus the leeway) are refused, whoever signed them.
    pub token_max_lifetime_seconds: i64,
    pub sign_in: SignInSettings,
    /// How long organization, user and role records are kept in memory (zero: not at all).
    pub auth_cache_ttl: Duration,
    /// Body cap, timeout and CORS of the HTTP layer.
    pub http: HttpSettings,
    pub rate_limits: Budgets,
    /// While this file exists the service is in maintenance.
    pub maintenance_file: PathBuf,
    /// MongoDB instead of the embedded store in `data_dir`.
    pub mongodb: Option<MongoConfig>,
    /// Named clusters beside the default one (name → URI; same database and write concern).
    pub mongodb_clusters: std::collections::BTreeMap<String, String>,
}

/// Where the MongoDB store lives and how it writes.
#[derive(Clone)]
pub struct MongoConfig {
    pub uri: String,
    pub database: String,
    pub write_concern: MongoWriteConcern,
}

impl MongoConfig {
    /// `uri` and `database`, writing with the default `majority` write concern.
    pub fn new(uri: impl Into<String>, database: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            database: database.into(),
            write_concern: MongoWriteConcern::Majority,
        }
    }
}

/// The URI may carry a password: `Debug` shows it without the credentials.
impl std::fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &redact_uri(&self.uri))
            .field("database", &self.database)
            .field("write_concern", &self.write_concern)
            .finish()
    }
}

/// `mongodb://user:secret@host/` → `mongodb://***@host/`.
pub fn redact_uri(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}***{}", &uri[..scheme_end + 3], &uri[at..])
        }
        _ => uri.to_owned(),
    }
}

impl Config {
    /// Takes the settings only `serve` has.
    pub fn apply_serve_args(&mut self, args: &ServeArgs) {
        self.http = HttpSettings {
            max_body_bytes: usize::try_from(args.max_body_bytes).unwrap_or(usize::MAX),
            import_max_bytes: usize::try_from(args.import_max_bytes).unwrap_or(usize::MAX),
            request_timeout: Duration::from_secs(args.request_timeout_seconds),
            cors_origins: args.cors_origins.clone(),
            bench_routes: args.bench_routes,
        };
        self.rate_limits = args.rate_limits.budgets;
        self.sign_in = SignInSettings {
            max_concurrent_verifications: args
                .sign_in_max_concurrent
                .map_or(self.sign_in.max_concurrent_verifications, |n| n as usize),
            max_wait: Duration::from_millis(args.sign_in_max_wait_ms),
        };
        self.auth_cache_ttl = Duration::from_millis(args.auth_cache_ttl_ms);
        if let Some(file) = &args.maintenance_file {
            self.maintenance_file = file.clone();
        }
    }

    pub fn new(common: &CommonArgs) -> Self {
        let mongodb = common
            .mongodb_uri
            .as_deref()
            .map(str::trim)
            .filter(|uri| !uri.is_empty())
            .map(|uri| MongoConfig {
                uri: uri.to_owned(),
                database: common.mongodb_database.clone(),
                write_concern: common.mongodb_write_concern,
            });
        Self {
            data_dir: common.data_dir.clone(),
            jwt_secret: common.jwt_secret.clone(),
            jwt_issuer: common.jwt_issuer.clone(),
            token_ttl_seconds: common.token_ttl_seconds,
            token_max_lifetime_seconds: common.token_max_lifetime_seconds,
            sign_in: SignInSettings::default(),
            auth_cache_ttl: Duration::ZERO,
            http: HttpSettings::default(),
            rate_limits: Budgets::default(),
            maintenance_file: common.data_dir.join("maintenance"),
            mongodb,
            mongodb_clusters: common.mongodb_clusters.iter().cloned().collect(),
        }
    }

    /// Which store the configuration names, for logs (no credentials).
    pub fn store_description(&self) -> String {
        match &self.mongodb {
            Some(m) => format!(
                "MongoDB database {:?} at {}",
                m.database,
                redact_uri(&m.uri)
            ),
            None => format!("embedded store in {}", self.data_dir.display()),
        }
    }

    /// Defaults for a data dir, as tests and embedding code want them.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            jwt_secret: None,
            jwt_issuer: "simtest".into(),
            token_ttl_seconds: 3600,
            token_max_lifetime_seconds: DEFAULT_TOKEN_MAX_LIFETIME_SECONDS,
            sign_in: SignInSettings::default(),
            auth_cache_ttl: Duration::ZERO,
            http: HttpSettings::default(),
            rate_limits: Budgets::default(),
            maintenance_file: data_dir.join("maintenance"),
            mongodb: None,
            mongodb_clusters: Default::default(),
        }
    }

    /// The configured secret, else the one kept in the data dir (created on first use, mode 0600).
    pub fn token_secret(&self) -> Result<Vec<u8>, SecretError> {
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(SecretError::TooShort);
            }
            refuse_placeholder(secret)?;
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir.join("jwt-secret");
        match std::fs::read_to_string(&path) {
            Ok(existing) => {
                let existing = existing.trim();
                if existing.len() < MIN_SECRET_BYTES {
                    return Err(SecretError::StoredTooShort(path));
                }
                Ok(existing.as_bytes().to_vec())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new_secret(&path),
            Err(source) => Err(SecretError::Io {
                doing: "read",
                path,
                source,
            }),
        }
    }
}

/// Why no token secret can be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("SIMTEST_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")]
    TooShort,
    #[error(
        "SIMTEST_JWT_SECRET looks like a placeholder{}; set a random one (e.g. `openssl rand -hex 32`) or leave it unset to have one generated",
        .0.map(|m| format!(" (it contains {m:?})")).unwrap_or_default()
    )]
    Placeholder(Option<&'static str>),
    #[error("{} holds a secret shorter than {MIN_SECRET_BYTES} bytes", .0.display())]
    StoredTooShort(PathBuf),
    #[error("cannot {doing} {}: {source}", .path.display())]
    Io {
        doing: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A day: tokens simtest issues live an hour by default.
pub const DEFAULT_TOKEN_MAX_LIFETIME_SECONDS: i64 = 86_400;

/// Words that mark a secret copied from an example ("change-me-to-a-long-random-secret..."): such a
/// secret is public, so anyone could sign tokens with it.
const PLACEHOLDER_MARKERS: [&str; 7] = [
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "replace-me",
    "replaceme",
    "your-secret",
];

fn refuse_placeholder(secret: &str) -> Result<(), SecretError> {
    let lower = secret.to_ascii_lowercase();
    let marker = PLACEHOLDER_MARKERS
        .iter()
        .copied()
        .find(|m| lower.contains(m));
    let one_char = secret.chars().all(|c| secret.starts_with(c));
    if marker.is_some() || one_char {
        return Err(SecretError::Placeholder(marker));
    }
    Ok(())
}

/// A fresh random token secret (32 bytes, hex).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn write_new_secret(path: &Path) -> Result<Vec<u8>, SecretError> {
    use std::io::Write;
    let io = |doing, path: &Path| {
        let path = path.to_owned();
        move |source| SecretError::Io {
            doing,
            path,
            source,
        }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("create data dir", dir))?;
    }
    let secret = new_secret();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io("write", path))?;
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)
                .map_err(io("read", path))?
                .trim()
                .as_bytes()
                .to_vec())
        }
        Err(e) => Err(io("create", path)(e)),
    }
}
