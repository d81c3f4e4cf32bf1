//! Metric samples do not pile up in memory between scrapes of `/metrics`: every request records
//! its duration, and the exporter keeps each sample until an upkeep folds it into the buckets.
//! Its own binary, as it counts the heap through `dhat`'s allocator.

use std::time::{Duration, Instant};

use simtest::telemetry::{HTTP_DURATION, keep_metrics_bounded, prometheus};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SAMPLES: usize = 1_000_000;
/// How long samples may be held: at 25k requests a second, about 7 MB.
const MOST_HELD: Duration = Duration::from_secs(5);

#[tokio::test]
async fn recorded_samples_are_folded_away_without_a_scrape() {
    let _profiler = dhat::Profiler::builder().testing().build();
    prometheus();
    let upkeep = keep_metrics_bounded();
    let histogram = metrics::histogram!(HTTP_DURATION, "route" => "/bench", "status" => "200");
    histogram.record(0.001);
    // The histogram's bucket and distribution exist after an upkeep.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = dhat::HeapStats::get().curr_bytes;
    for _ in 0..SAMPLES {
        histogram.record(0.001);
    }
    let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
    // Each sample is an f64 kept until the upkeep: the test sees them held before it sees them go.
    assert!(
        held >= SAMPLES * 8,
        "{held} bytes held after {SAMPLES} samples"
    );
    let waited = Instant::now();
    loop {
        // Traffic goes on, a little: drained blocks are freed once the threads recording have
        // moved on (the bucket's epoch-based reclamation), as they do on a serving process.
        for _ in 0..200 {
            histogram.record(0.001);
        }
        let held = dhat::HeapStats::get().curr_bytes.saturating_sub(before);
        if held < 256 * 1024 {
            break;
        }
        assert!(
            waited.elapsed() < MOST_HELD,
            "{held} bytes still held {:?} after the samples",
            waited.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    upkeep.abort();
}
