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
        "description": format!("A user walks through {w1}, then {w2}; case {i} of the benchmark set."),
        "service_id": service_id(n % SERVICES),
        "service_version_set_name": if n.is_multiple_of(4) { "edge" } else { "release" },
        "persona_id": persona_id((n / 5) % PERSONAS),
        "scenario_id": scenario_id((n / 7) % SCENARIOS),
        "max_interactions": 5 + n % 20,
        "success_criterions": criteria,
        "tags": tags,
    })
}
