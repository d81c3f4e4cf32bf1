//! The simtest server under test: a child process of the release binary, on 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Where the data lives and how every `simtest` command reaches it.
#[derive(Debug, Clone)]
pub struct Target {
    pub binary: PathBuf,
    pub data_dir: PathBuf,
    /// MongoDB URI and database; the embedded store in `data_dir` when `None`.
    pub mongodb: Option<(String, String)>,
    pub jwt_secret: String,
}

impl Target {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--jwt-secret")
            .arg(&self.jwt_secret)
            .env_remove("SIMTEST_MONGODB_URI")
            .env_remove("SIMTEST_LISTEN");
        if let Some((uri, database)) = &self.mongodb {
            cmd.arg("--mongodb-uri")
                .arg(uri)
                .arg("--mongodb-database")
                .arg(database);
        }
        cmd
    }

    /// `simtest seed FILE`.
    pub fn seed(&self, file: &Path) -> anyhow::Result<()> {
        let out = self.command().arg("seed").arg(file).output()?;
        if !out.status.success() {
            bail!(
                "simtest seed failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `simtest token --org ORG --user USER`.
    pub fn token(&self, org: &str, user: &str) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(["token", "--org", org, "--user", user])
            .output()?;
        if !out.status.success() {
            bail!(
                "simtest token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// Starts `simtest serve --rate-limits-off --bench-routes` on a free port and waits until
    /// `/readyz` answers 200.
    pub async fn start(&self, log: &Path) -> anyhow::Result<Server> {
        let started = Instant::now();
        let log_file = std::fs::File::create(log)?;
        let child = self
            .command()
            .args(["serve", "--rate-limits-off", "--bench-routes"])
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("cannot start {}", self.binary.display()))?;
        let mut server = Server {
            child,
            base: String::new(),
            time_to_ready: Duration::ZERO,
        };
        let http = reqwest::Client::new();
        while started.elapsed() < Duration::from_secs(120) {
            if let Some(status) = server.child.try_wait()? {
                bail!("simtest serve exited with {status}; see {}", log.display());
            }
            if server.base.is_empty() {
                server.base = listen_address(log).unwrap_or_default();
            }
            if !server.base.is_empty() {
                let ready = http.get(format!("{}/readyz", server.base)).send().await;
                if ready.is_ok_and(|r| r.status().is_success()) {
                    server.time_to_ready = started.elapsed();
                    return Ok(server);
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        bail!("simtest serve not ready after 120 s; see {}", log.display())
    }
}

/// The `http://ADDR` of the "simtest listening" log line.
fn listen_address(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .filter(|line| line.contains("simtest listening"))
        .find_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .and_then(|v| v.get("addr")?.as_str().map(|a| format!("http://{a}")))
}

pub struct Server {
    child: Child,
    pub base: String,
    pub time_to_ready: Duration,
}

impl Server {
    /// Peak resident set size so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        status_kib(self.child.id(), "VmHWM:").map(|kib| kib as f64 / 1024.0)
    }

    /// Current resident set size (`VmRSS`), in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        status_kib(self.child.id(), "VmRSS:").map(|kib| kib as f64 / 1024.0)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then waits for the exit (the store is closed cleanly).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time process `pid` has used so far (user and system, every thread), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command, which is in parentheses and may hold spaces: state is the 3rd
    // field of `proc_pid_stat(5)`, utime the 14th and stime the 15th.
    let after_command = stat.rsplit_once(')')?.1;
    let mut fields = after_command.split_whitespace().skip(11);
    let ticks: u64 = fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?;
    // In clock ticks, which Linux reports to user space at 100 a second (USER_HZ).
    Some(ticks as f64 / 100.0)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
