//! Maintenance mode, switched without a restart: while the flag file exists, every `/v1` request
//! answers 503 with `Retry-After`, `/readyz` answers 503 and `/healthz` stays 200.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How often the flag file is looked at.
const POLL: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Maintenance {
    on: Arc<AtomicBool>,
    flag_file: PathBuf,
}

impl Maintenance {
    pub fn new(flag_file: PathBuf) -> Self {
        let on = flag_file.exists();
        Self {
            on: Arc::new(AtomicBool::new(on)),
            flag_file,
        }
    }

    pub fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub fn flag_file(&self) -> &std::path::Path {
        &self.flag_file
    }

    /// Follows the flag file until the returned task is aborted.
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let on = tokio::fs::try_exists(&this.flag_file)
                    .await
                    .unwrap_or(false);
                if this.on.swap(on, Ordering::Relaxed) != on {
                    tracing::warn!(maintenance = on, flag_file = %this.flag_file.display(), "maintenance mode changed");
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }
}
