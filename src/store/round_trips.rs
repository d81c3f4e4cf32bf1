//! Round trips to MongoDB, counted where they happen: the driver reports every command it sends
//! (find, getMore, aggregate, insert, ...) to [`handler`], which adds one to the process total and
//! to the store operation it runs in (a task-local set by [`counted`]). Connection handshakes and
//! server monitoring are not commands, so they are not counted.
//!
//! Exposed as `simtest_mongodb_round_trips_total{operation}` on `/metrics`; divided by the number of
//! store operations (or HTTP requests) it gives round trips per operation (or request).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;

/// Counter of MongoDB commands sent, labelled by the store operation that sent them.
pub const METRIC: &str = "simtest_mongodb_round_trips_total";

static TOTAL: AtomicU64 = AtomicU64::new(0);

tokio::task_local! {
    static CURRENT: Arc<AtomicU32>;
}

/// Every command this process sent to any MongoDB so far.
pub fn total() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// The driver's command listener: counts each command as it is sent.
pub(super) fn handler() -> EventHandler<CommandEvent> {
    EventHandler::callback(|event| {
        if let CommandEvent::Started(_) = event {
            TOTAL.fetch_add(1, Ordering::Relaxed);
            let _ = CURRENT.try_with(|n| n.fetch_add(1, Ordering::Relaxed));
        }
    })
}

/// Runs `work`, counting the commands it sends; records them under `operation` and returns them
/// with its output.
pub(super) async fn counted<T>(operation: &'static str, work: impl Future<Output = T>) -> (T, u32) {
    let trips = Arc::new(AtomicU32::new(0));
    let out = CURRENT.scope(trips.clone(), work).await;
    let trips = trips.load(Ordering::Relaxed);
    metrics::counter!(METRIC, "operation" => operation).increment(u64::from(trips));
    (out, trips)
}
