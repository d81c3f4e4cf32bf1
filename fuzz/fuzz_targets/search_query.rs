//! Search query strings (`?raw query\n` or built from the known parameters): `search_query_for`,
//! then the filter against a sample unit test, which must be found once its name holds the
//! searched text.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use simtest_fuzz::SampleTest;

fuzz_target!(|data: &[u8]| {
    let (raw, mut rest) = simtest_fuzz::split_query_input(data);
    let Ok((sample, prefix, suffix)) = <(SampleTest, String, String)>::arbitrary(&mut rest) else {
        return;
    };
    let mut named = sample.to_unit_test();
    let Some(q) = simtest_fuzz::check_search(raw.as_deref(), std::slice::from_ref(&named)) else {
        return;
    };
    // A live unit test of the org whose name holds every term is found, whatever the ASCII case
    // of either, when no other filter excludes it.
    let f = &q.filter;
    let text = simtest_fuzz::search_text(raw.as_deref().unwrap_or(""))
        .expect("search accepted without exactly one query");
    if f.service_ids.is_empty()
        && f.persona_ids.is_empty()
        && f.scenario_ids.is_empty()
        && f.metric_ids.is_empty()
        && f.creators.is_empty()
        && f.tags.is_empty()
    {
        named.org_id = simtest_fuzz::ORG.into();
        named.is_deleted = false;
        for name in [
            format!("{prefix}{text}{suffix}"),
            format!("{prefix}{}{suffix}", text.to_ascii_uppercase()),
            // Every term is still a substring when the terms run together.
            text.split_whitespace().collect(),
        ] {
            named.name = name;
            assert!(
                f.matches(&named),
                "name {:?} not found by {text:?}",
                named.name
            );
        }
    }
});
