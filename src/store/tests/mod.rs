//! What holds the two stores to one definition: the test data generator (`testgen`), a live
//! MongoDB store when one is configured, and the parity test that gives both stores the same unit
//! tests and the same random queries (`parity`).

use super::mongo::{MongoStore, MongoWriteConcern};

mod parity;
pub(crate) mod testgen;

/// A MongoDB store on `SIMTEST_TEST_MONGODB_URI`, migrated, in a database of its own (the test
/// drops it); `None`, after saying SKIPPED once, without the variable.
pub(crate) async fn live_mongo() -> Option<MongoStore> {
    let Ok(uri) = std::env::var("SIMTEST_TEST_MONGODB_URI") else {
        static SAID: std::sync::Once = std::sync::Once::new();
        // A direct write: the test harness captures `eprintln!`.
        SAID.call_once(|| {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: MongoDB store tests (set SIMTEST_TEST_MONGODB_URI)"
            );
        });
        return None;
    };
    let database = format!("simtest_unit_{}", uuid::Uuid::new_v4().simple());
    let store = MongoStore::connect(&uri, &database, MongoWriteConcern::Majority)
        .await
        .expect("connect");
    store.migrate().await.expect("migrate");
    Some(store)
}
