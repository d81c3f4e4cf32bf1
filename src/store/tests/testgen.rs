//! Test data shared by the stores' tests: a sample unit test, random ones and random queries over
//! them with few distinct values, so filters, ties and facets all meet.

use rand::Rng;
use rand::rngs::StdRng;

use crate::domain::query::{ListQuery, SortField, SortKey, TagValueFilter, UnitTestFilter};
use crate::domain::{Criterion, ObjectIdHex, SuccessCriterion, Tag, Timestamp, UnitTest, UserInfo};

pub fn id(n: u8) -> ObjectIdHex {
    ObjectIdHex::from_bytes([n; 12])
}

pub fn sample() -> UnitTest {
    UnitTest {
        id: id(1),
        org_id: "acme".into(),
        name: "Signup".into(),
        description: "happy path".into(),
        service_id: id(2),
        service_version_set_name: "release".into(),
        persona_id: id(3),
        scenario_id: id(4),
        max_interactions: 10,
        success_criterions: vec![
            SuccessCriterion {
                name: "done".into(),
                metric_id: id(5),
                criterion: Criterion::Numerical {
                    verb: crate::domain::Verb::Le,
                    threshold: 2.5,
                },
            },
            SuccessCriterion {
                name: "tone".into(),
                metric_id: id(6),
                criterion: Criterion::Categorical {
                    expected_values: vec!["calm".into()],
                },
            },
        ],
        run_count: 3,
        tags: vec![
            Tag {
                key: "flaky".into(),
                value: None,
            },
            Tag {
                key: "team".into(),
                value: Some("growth".into()),
            },
        ],
        is_deleted: false,
        creator: UserInfo {
            org_id: "acme".into(),
            user_id: "alice".into(),
        },
        updated_by: UserInfo {
            org_id: "globex".into(),
            user_id: "gary".into(),
        },
        created_at: Timestamp::from_millis(1_700_000_000_123),
        updated_at: Timestamp::from_millis(1_700_000_000_456),
    }
}

pub const NAMES: &[&str] = &[
    "Signup",
    "signup",
    "SIGNUP flow",
    "Login (v2.0)",
    "login v2x0",
    "a.b*c",
    "Über café",
    "zeta",
    "Alpha",
    "alpha",
    "_under",
    "[brackets]",
    "naïve",
    "",
];
pub const WORDS: &[&str] = &[
    "happy", "path", "sad", "(v2.0)", "Regex.*", "ÉTÉ", "été", "x",
];
pub const USERS: &[(&str, &str)] = &[
    ("acme", "alice"),
    ("acme", "bob"),
    ("globex", "alice"),
    ("acme", "al"),
];
pub const TAG_KEYS: &[&str] = &["team", "flaky", "owner", "Team"];
pub const TAG_VALUES: &[Option<&str>] = &[None, Some("growth"), Some("core"), Some("")];

pub fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.gen_range(0..xs.len())]
}

pub fn random_unit_test(rng: &mut StdRng, n: usize) -> UnitTest {
    let mut t = sample();
    t.id = ObjectIdHex::from_bytes({
        let mut b = [0u8; 12];
        rng.fill(&mut b[..]);
        b
    });
    t.org_id = if rng.gen_bool(0.9) { "acme" } else { "globex" }.into();
    // Unique per active unit test; deleted ones may repeat a name.
    t.name = format!("{} {n}", pick(rng, NAMES));
    t.is_deleted = rng.gen_bool(0.25);
    if t.is_deleted && rng.gen_bool(0.5) {
        t.name = pick(rng, NAMES).to_string();
    }
    t.description = (0..rng.gen_range(0..4))
        .map(|_| *pick(rng, WORDS))
        .collect::<Vec<_>>()
        .join(" ");
    t.service_id = id(rng.gen_range(1..4));
    t.persona_id = id(rng.gen_range(10..13));
    t.scenario_id = id(rng.gen_range(20..23));
    t.success_criterions.truncate(rng.gen_range(1..3));
    t.success_criterions[0].metric_id = id(rng.gen_range(30..34));
    let mut tags: std::collections::BTreeMap<String, Option<String>> = Default::default();
    for _ in 0..rng.gen_range(0..4) {
        tags.insert(
            pick(rng, TAG_KEYS).to_string(),
            pick(rng, TAG_VALUES).map(str::to_owned),
        );
    }
    t.tags = tags
        .into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect();
    let (o, u) = *pick(rng, USERS);
    t.creator = UserInfo {
        org_id: o.into(),
        user_id: u.into(),
    };
    // Few distinct instants, so sorts meet ties and fall back to the id.
    t.created_at = Timestamp::from_millis(1_700_000_000_000 + rng.gen_range(0..5));
    t.updated_at = Timestamp::from_millis(t.created_at.millis() + rng.gen_range(0..3));
    t
}

pub fn random_query(rng: &mut StdRng, ids: &[ObjectIdHex]) -> ListQuery {
    let mut f = UnitTestFilter::for_org(if rng.gen_bool(0.9) { "acme" } else { "globex" });
    if rng.gen_bool(0.1) {
        f.ids = (0..rng.gen_range(1..4)).map(|_| *pick(rng, ids)).collect();
    }
    if rng.gen_bool(0.2) {
        f.service_ids = (0..rng.gen_range(1..3))
            .map(|_| id(rng.gen_range(1..5)))
            .collect();
    }
    if rng.gen_bool(0.15) {
        f.persona_ids = vec![id(rng.gen_range(10..13))];
    }
    if rng.gen_bool(0.15) {
        f.scenario_ids = vec![id(rng.gen_range(20..23))];
    }
    if rng.gen_bool(0.2) {
        f.metric_ids = (0..rng.gen_range(1..3))
            .map(|_| id(rng.gen_range(5..34)))
            .collect();
    }
    if rng.gen_bool(0.2) {
        f.creators = (0..rng.gen_range(1..3))
            .map(|_| {
                let (o, u) = *pick(rng, USERS);
                UserInfo {
                    org_id: o.into(),
                    user_id: u.into(),
                }
            })
            .collect();
    }
    if rng.gen_bool(0.3) {
        for _ in 0..rng.gen_range(1..3) {
            let wanted = match rng.gen_range(0..3) {
                0 => TagValueFilter::Any,
                1 => TagValueFilter::Null,
                _ => TagValueFilter::Exact(pick(rng, TAG_VALUES).unwrap_or("growth").to_owned()),
            };
            f.tags
                .entry(pick(rng, TAG_KEYS).to_string())
                .or_default()
                .push(wanted);
        }
    }
    if rng.gen_bool(0.3) {
        f.is_deleted = Some(rng.gen_bool(0.5));
    }
    if rng.gen_bool(0.3) {
        let pool = [
            "sign",
            "UP",
            "(v2.0)",
            "v2.0.",
            "é",
            "été",
            "É",
            "regex.*",
            "a.b",
            "_",
            "[",
            "x",
            "path happy",
        ];
        f.terms = pick(rng, &pool)
            .split_whitespace()
            .map(str::to_lowercase)
            .collect();
    }
    let sort = (0..rng.gen_range(0..3))
        .map(|_| SortKey {
            field: *pick(
                rng,
                &[SortField::UpdatedAt, SortField::CreatedAt, SortField::Name],
            ),
            descending: rng.gen_bool(0.5),
        })
        .collect();
    ListQuery {
        filter: f,
        sort,
        offset: *pick(rng, &[0, 0, 0, 1, 3, 10, 1000]),
        limit: *pick(rng, &[0, 1, 2, 5, 50, 500]),
        with_facets: rng.gen_bool(0.5),
    }
}
