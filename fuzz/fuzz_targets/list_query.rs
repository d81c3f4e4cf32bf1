//! List query strings (`?raw query\n` or built from the known parameters): `list_query_for`,
//! then the parsed filter and sort against a few sample unit tests.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use simtest_fuzz::SampleTest;

fuzz_target!(|data: &[u8]| {
    let (raw, mut rest) = simtest_fuzz::split_query_input(data);
    let samples = Vec::<SampleTest>::arbitrary(&mut rest).unwrap_or_default();
    let samples: Vec<_> = samples
        .iter()
        .take(8)
        .map(SampleTest::to_unit_test)
        .collect();
    simtest_fuzz::check_list(raw.as_deref(), &samples);
});
