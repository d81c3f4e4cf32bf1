//! Raw bytes as an update request body: the strict JSON reader, then `UnitTestPatch::parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(body) = simtest_fuzz::check_json_bytes(data) {
        simtest_fuzz::check_patch(&body);
    }
});
