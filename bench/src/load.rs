//! Drives one operation from C concurrent clients for a fixed time and gathers its latencies.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// What one scenario at one client count measured.
#[derive(Debug, Clone)]
pub struct Stats {
    pub ok: u64,
    /// Failed operations other than timeouts.
    pub errors: u64,
    /// Operations that timed out (503 `request_timeout`, or no answer within the client's limit).
    pub timeouts: u64,
    pub elapsed: Duration,
    /// Latencies of every answered operation, failed ones included, in microseconds.
    pub latency: Histogram<u64>,
    /// The first error seen, to say what went wrong.
    pub first_error: Option<String>,
}

impl Stats {
    /// Every operation that got an answer, failed ones included (their count is shown beside).
    pub fn per_second(&self) -> f64 {
        (self.ok + self.errors + self.timeouts) as f64 / self.elapsed.as_secs_f64()
    }

    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

/// Runs `op(sequence)` in a loop from `clients` tasks until `duration` has passed (or an operation
/// answers `Stop`). `sequence` is unique across the clients, so operations can pick distinct ids.
pub async fn drive<F, Fut>(clients: usize, duration: Duration, op: F) -> Stats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send,
{
    let op = Arc::new(op);
    let sequence = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let op = op.clone();
            let sequence = sequence.clone();
            tokio::spawn(async move {
                let mut latency = new_histogram();
                let mut counts = [0u64; 3];
                let mut first_error = None;
                while Instant::now() < deadline {
                    let n = sequence.fetch_add(1, Ordering::Relaxed);
                    let began = Instant::now();
                    let outcome = op(n).await;
                    let slot = match outcome {
                        Outcome::Ok => 0,
                        Outcome::Error(e) => {
                            first_error.get_or_insert(e);
                            1
                        }
                        Outcome::Timeout(e) => {
                            first_error.get_or_insert(e);
                            2
                        }
                        Outcome::Stop => break,
                    };
                    counts[slot] += 1;
                    let micros = began.elapsed().as_micros() as u64;
                    latency.saturating_record(micros.max(1));
                }
                (counts, first_error, latency)
            })
        })
        .collect();
    let mut stats = Stats {
        ok: 0,
        errors: 0,
        timeouts: 0,
        elapsed: Duration::ZERO,
        latency: new_histogram(),
        first_error: None,
    };
    for task in tasks {
        let ([ok, errors, timeouts], first_error, latency) =
            task.await.expect("client task panicked");
        stats.ok += ok;
        stats.errors += errors;
        stats.timeouts += timeouts;
        stats.first_error = stats.first_error.take().or(first_error);
        stats.latency.add(&latency).expect("same histogram bounds");
    }
    stats.elapsed = start.elapsed();
    stats
}

/// How one operation went.
pub enum Outcome {
    Ok,
    Error(String),
    /// No answer in time: the server's 503 `request_timeout`, or the client gave up.
    Timeout(String),
    /// Nothing left to do (e.g. no more unit tests to delete).
    Stop,
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}
