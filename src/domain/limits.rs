//! Caps on what one request may carry, so no single request makes the server allocate without bound.
//! Generous for real use; documented in README.md ("Limits").

/// Characters in a unit test name.
pub const NAME_CHARS: usize = 1_000;
/// Characters in a description.
pub const DESCRIPTION_CHARS: usize = 20_000;
/// Characters in any other string: version set name, criterion name, expected value, tag key or value.
pub const SHORT_STRING_CHARS: usize = 1_000;
/// Success criteria in one unit test.
pub const CRITERIA: usize = 100;
/// Expected values in one categorical criterion.
pub const EXPECTED_VALUES: usize = 100;
/// Tags on one unit test.
pub const TAGS: usize = 100;
/// Values of one repeatable query parameter (`tag`, `service_id`, ...).
pub const QUERY_VALUES: usize = 100;
/// Terms in one search query.
pub const SEARCH_TERMS: usize = 32;
/// Characters in a search query.
pub const SEARCH_QUERY_CHARS: usize = 1_000;
/// Entries of `unit_test_runs` in one unit test set.
pub const SET_UNIT_TESTS: usize = 1_000;
