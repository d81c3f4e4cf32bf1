//! Request bodies built like the real ones (a valid body with edits, known keys, ids, criteria),
//! through both create and update parsing, and as bytes through the strict JSON reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use simtest_fuzz::BodyInput;

fuzz_target!(|input: BodyInput| {
    let body = input.to_value();
    simtest_fuzz::check_create(&body);
    simtest_fuzz::check_patch(&body);
    let bytes = serde_json::to_vec(&body).unwrap();
    assert!(
        simtest_fuzz::check_json_bytes(&bytes).is_some(),
        "the strict reader refuses a serialized value"
    );
});
