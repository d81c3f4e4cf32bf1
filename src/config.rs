//! Command line and environment: every flag has a `SIMTEST_*` twin. Values are checked here, at
//! start-up, so bad configuration fails fast with one clear line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use rand::RngCore;

use crate::auth::token::MIN_SECRET_BYTES;

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
    /// Log line format.
    #[arg(long, env = "SIMTEST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json, global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `simtest=debug,tower_http=info`.
    #[arg(long, env = "SIMTEST_LOG", default_value = "info", global = true)]
    pub log: String,
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
    },
    /// Print a token for a user, signed with the configured secret.
    Token {
        #[arg(long, env = "SIMTEST_TOKEN_ORG")]
        org: String,
        #[arg(long, env = "SIMTEST_TOKEN_USER")]
        user: String,
    },
    /// Manage org API keys.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key for an org and print its id and secret (shown once, stored hashed).
    Create {
        #[arg(long, env = "SIMTEST_API_KEY_ORG")]
        org: String,
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
    #[arg(long, env = "SIMTEST_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

/// Resolved settings the application is built from.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub jwt_secret: Option<String>,
    pub jwt_issuer: String,
    pub token_ttl_seconds: i64,
    pub max_body_bytes: usize,
}

impl Config {
    pub fn new(common: &CommonArgs) -> Self {
        Self {
            data_dir: common.data_dir.clone(),
            jwt_secret: common.jwt_secret.clone(),
            jwt_issuer: common.jwt_issuer.clone(),
            token_ttl_seconds: common.token_ttl_seconds,
            max_body_bytes: 1024 * 1024,
        }
    }

    /// Defaults for a data dir, as tests and embedding code want them.
    pub fn for_data_dir(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            jwt_secret: None,
            jwt_issuer: "simtest".into(),
            token_ttl_seconds: 3600,
            max_body_bytes: 1024 * 1024,
        }
    }

    /// The configured secret, else the one kept in the data dir (created on first use, mode 0600).
    pub fn token_secret(&self) -> anyhow::Result<Vec<u8>> {
        if let Some(secret) = &self.jwt_secret {
            anyhow::ensure!(
                secret.len() >= MIN_SECRET_BYTES,
                "SIMTEST_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long"
            );
            return Ok(secret.as_bytes().to_vec());
        }
        let path = self.data_dir.join("jwt-secret");
        match std::fs::read_to_string(&path) {
            Ok(existing) => {
                let existing = existing.trim();
                anyhow::ensure!(
                    existing.len() >= MIN_SECRET_BYTES,
                    "{} holds a secret shorter than {MIN_SECRET_BYTES} bytes",
                    path.display()
                );
                Ok(existing.as_bytes().to_vec())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new_secret(&path),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }
}

fn write_new_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = hex::encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(secret.into_bytes())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}
