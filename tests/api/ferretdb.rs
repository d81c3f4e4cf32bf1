//! A FerretDB server of a test's own, for tests that stop MongoDB or need a second cluster.
//! Needs `SIMTEST_TEST_FERRETDB_BIN` (set by .ci/run); without it those tests say SKIPPED.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub struct FerretDb {
    bin: PathBuf,
    pub port: u16,
    state: tempfile::TempDir,
    child: Option<Child>,
}

impl FerretDb {
    /// A new FerretDB on a free loopback port, or `None` (after one SKIPPED line) without a binary.
    pub fn start() -> Option<Self> {
        static SAID: Once = Once::new();
        let Some(bin) = std::env::var_os("SIMTEST_TEST_FERRETDB_BIN").map(PathBuf::from) else {
            SAID.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: tests that run their own FerretDB (set SIMTEST_TEST_FERRETDB_BIN)"
                );
            });
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut db = Self {
            bin,
            port,
            state: tempfile::tempdir().unwrap(),
            child: None,
        };
        db.resume();
        Some(db)
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data, and waits until it accepts connections.
    pub fn resume(&mut self) {
        let dir = self.state.path().display().to_string();
        let child = Command::new(&self.bin)
            .args([
                "--handler=sqlite".to_owned(),
                format!("--sqlite-url=file:{dir}/"),
                format!("--listen-addr=127.0.0.1:{}", self.port),
                format!("--state-dir={dir}"),
                "--debug-addr=127.0.0.1:0".to_owned(),
                "--telemetry=disable".to_owned(),
                "--log-level=error".to_owned(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start FerretDB");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "FerretDB did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for FerretDb {
    fn drop(&mut self) {
        self.stop();
    }
}
