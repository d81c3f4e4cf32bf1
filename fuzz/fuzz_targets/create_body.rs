//! Raw bytes as a create request body: the strict JSON reader, then `NewUnitTest::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(body) = simtest_fuzz::check_json_bytes(data) {
        simtest_fuzz::check_create(&body);
    }
});
