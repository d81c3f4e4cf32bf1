//! The benchmark org: its reference records (a seed file for `simtest seed`) and N varied unit tests.

use serde_json::{Value, json};

pub const ORG: &str = "bench";
/// Admins of the org; unit tests are created round-robin by each, so `creator` varies.
pub const USERS: [&str; 8] = ["u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"];
pub const SERVICES: usize = 5;
pub const PERSONAS: usize = 10;
pub const SCENARIOS: usize = 10;
const TEAMS: [&str; 4] = ["growth", "billing", "support", "platform"];
const WORDS: [&str; 8] = [
    "signup",
    "billing",
    "refund",
    "password",
    "onboarding",
    "upgrade",
    "cancel",
    "shipping",
];

/// The one-term and two-term search queries (each matches a share of the collection).
pub const SEARCH_ONE: &str = "refund";
pub const SEARCH_TWO: &str = "refund password";
/// Searches that make an index earn its keep (issue 14); `tests::search_terms_select_as_named`
/// counts their matches. A term found in one unit test whatever N (from 4,243 on): its number in
/// the parentheses only it has (a bare "4242" is also in 14242, 42420…, so more of them at 1M
/// than at 10k, and the rare search then answered 100 unit tests at 1M and 1 at 10k). Its
/// parentheses are regex characters, taken literally.
pub const SEARCH_RARE: &str = "(4242)";
/// The number of the unit test [`SEARCH_RARE`] finds.
pub const RARE_CASE: usize = 4242;
/// A term no unit test holds.
pub const SEARCH_NONE: &str = "zzzz";
/// Two terms each in 1 of 8 unit tests, never together: the first word of a description is
/// followed by a comma, and a description has one first word.
pub const SEARCH_DISJOINT: &str = "refund, password,";
/// A one-character term no unit test holds.
pub const SEARCH_ONE_CHAR: &str = "q";
/// A two-character term in about 1 of 30 unit tests (the numbers holding "77").
pub const SEARCH_TWO_CHARS: &str = "77";
/// The tag of the filtered list (`service_id` of service 0 and this tag: about 1 in 20).
pub const FILTER_TAG: &str = "team:growth";

fn id(kind: u8, i: usize) -> String {
    format!("{kind:02x}{:018x}{i:04x}", 0xbe)
}

pub fn service_id(i: usize) -> String {
    id(0xa1, i)
}
pub fn persona_id(i: usize) -> String {
    id(0xa2, i)
}
pub fn scenario_id(i: usize) -> String {
    id(0xa3, i)
}
fn metric_id(i: usize) -> String {
    id(0xa4, i)
}

/// The seed file: the org, its admins, services, personas, scenarios and three metrics.
pub fn seed_file() -> Value {
    let named = |ids: &dyn Fn(usize) -> String, n: usize, what: &str| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"_id": ids(i), "org_id": ORG, "name": format!("{what} {i}"), "is_deleted": false}))
            .collect()
    };
    json!({
        "organizations": [{"org_id": ORG, "mongo_cluster_name": null}],
        "roles": [],
        "users": USERS.iter().map(|u| json!({"org_id": ORG, "user_id": u, "role": "admin"})).collect::<Vec<_>>(),
        "api_keys": [],
        "services": (0..SERVICES).map(|i| json!({
            "_id": service_id(i), "org_id": ORG, "name": format!("Service {i}"),
            "version_sets": {"release": {}, "edge": {}}, "is_active": true
        })).collect::<Vec<_>>(),
        "personas": named(&persona_id, PERSONAS, "Persona"),
        "scenarios": named(&scenario_id, SCENARIOS, "Scenario"),
        "metrics": [
            {"_id": metric_id(0), "org_id": ORG, "name": "Completed", "metric_value_type": "boolean", "is_deleted": false},
            {"_id": metric_id(1), "org_id": ORG, "name": "Turns", "metric_value_type": "numerical", "is_deleted": false},
            {"_id": metric_id(2), "org_id": ORG, "name": "Tone", "metric_value_type": "categorical", "is_deleted": false}
        ],
        "unit_test_sets": []
    })
}

/// The create body of unit test `i`; `prefix` keeps names unique across seeding and the create
/// scenario.
pub fn unit_test_body(prefix: &str, i: u64) -> Value {
    let n = i as usize;
    let w1 = WORDS[n % WORDS.len()];
    let w2 = WORDS[(n / WORDS.len() + 3) % WORDS.len()];
    let mut criteria = vec![json!({"name": "completed", "metric_id": metric_id(0),
        "criterion": {"type": "boolean", "expected_value": true}})];
    if n.is_multiple_of(2) {
        criteria.push(json!({"name": "quick", "metric_id": metric_id(1),
            "criterion": {"type": "numerical", "verb": "<=", "threshold": (n % 9) + 2}}));
    }
    if n.is_multiple_of(3) {
        criteria.push(json!({"name": "tone", "metric_id": metric_id(2),
            "criterion": {"type": "categorical", "expected_values": ["warm", "neutral"]}}));
    }
    let mut tags = serde_json::Map::new();
    tags.insert("team".into(), json!(TEAMS[(n / 3) % TEAMS.len()]));
    tags.insert("priority".into(), json!(format!("p{}", n % 3)));
    if n.is_multiple_of(10) {
        tags.insert("flaky".into(), Value::Null);
    }
    json!({
        "name": format!("{prefix}{i} {w1} {w2}"),
        "description": format!("A user walks through {w1}, then {w2}; case ({i}) of the benchmark set."),
        "service_id": service_id(n % SERVICES),
        "service_version_set_name": if n.is_multiple_of(4) { "edge" } else { "release" },
        "persona_id": persona_id((n / 5) % PERSONAS),
        "scenario_id": scenario_id((n / 7) % SCENARIOS),
        "max_interactions": 5 + n % 20,
        "success_criterions": criteria,
        "tags": tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of the `n` seeded unit tests `query` finds, by the contract's definition.
    fn matches(query: &str, n: u64) -> usize {
        let fold = simtest::domain::query::fold_case;
        let terms: Vec<String> = query.split_whitespace().map(fold).collect();
        (0..n)
            .filter(|&i| {
                let body = unit_test_body("seed-", i);
                let name = fold(body["name"].as_str().unwrap());
                let description = fold(body["description"].as_str().unwrap());
                terms
                    .iter()
                    .all(|t| name.contains(t.as_str()) || description.contains(t.as_str()))
            })
            .count()
    }

    #[test]
    fn search_terms_select_as_named() {
        for n in [10_000, 100_000] {
            let share = |query: &str| matches(query, n) as f64 / n as f64;
            assert_eq!(SEARCH_RARE, format!("({RARE_CASE})"));
            assert_eq!(matches(SEARCH_RARE, n), 1, "{SEARCH_RARE} in {n}");
            assert_eq!(matches(SEARCH_NONE, n), 0);
            assert_eq!(matches(SEARCH_ONE_CHAR, n), 0);
            assert_eq!(matches(SEARCH_DISJOINT, n), 0);
            for term in SEARCH_DISJOINT.split_whitespace() {
                assert!((0.12..0.13).contains(&share(term)), "{term} in {n}");
            }
            let two = share(SEARCH_TWO_CHARS);
            assert!(
                (0.02..0.05).contains(&two),
                "{SEARCH_TWO_CHARS}: {two} of {n}"
            );
            eprintln!(
                "N = {n}: {SEARCH_TWO_CHARS:?} {:.1}%, {SEARCH_ONE:?} {:.1}%, {SEARCH_TWO:?} {:.1}%",
                two * 100.0,
                share(SEARCH_ONE) * 100.0,
                share(SEARCH_TWO) * 100.0
            );
        }
    }
}
