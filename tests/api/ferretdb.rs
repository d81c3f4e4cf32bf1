//! A MongoDB server of a test's own (FerretDB 2 on PostgreSQL with DocumentDB), for tests that stop
//! MongoDB or need a second cluster. Needs `SIMTEST_TEST_DOCUMENTDB_DIR`, the folder with `start.sh`
//! and `stop.sh` (set by .ci/run; see its README); without it those tests say SKIPPED. Each server has
//! a data dir of its own, so several run at once.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;

pub struct FerretDb {
    scripts: PathBuf,
    pub port: u16,
    pg_port: u16,
    data: tempfile::TempDir,
    running: bool,
}

impl FerretDb {
    /// A new server on free loopback ports, or `None` (after one SKIPPED line) without the scripts.
    pub fn start() -> Option<Self> {
        static SAID: Once = Once::new();
        let Some(scripts) = std::env::var_os("SIMTEST_TEST_DOCUMENTDB_DIR").map(PathBuf::from)
        else {
            SAID.call_once(|| {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: tests that run their own MongoDB server (set SIMTEST_TEST_DOCUMENTDB_DIR)"
                );
            });
            return None;
        };
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let mut db = Self {
            scripts,
            port: free_port(),
            pg_port: free_port(),
            data: tempfile::tempdir().unwrap(),
            running: false,
        };
        db.resume();
        Some(db)
    }

    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}", self.port)
    }

    /// Stops the server (its data stays).
    pub fn stop(&mut self) {
        if std::mem::take(&mut self.running) {
            let _ = Command::new("bash")
                .arg(self.scripts.join("stop.sh"))
                .arg(self.data.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Starts the server again on the same ports and data; returns once it accepts connections.
    pub fn resume(&mut self) {
        let out = Command::new("bash")
            .arg(self.scripts.join("start.sh"))
            .arg(self.data.path())
            .arg(self.port.to_string())
            .arg(self.pg_port.to_string())
            .stdin(Stdio::null())
            .output()
            .expect("run start.sh");
        assert!(
            out.status.success(),
            "start.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.running = true;
    }
}

impl Drop for FerretDb {
    fn drop(&mut self) {
        self.stop();
    }
}
