//! Test data shared by the stores' tests: a sample unit test, random ones and random queries over
//! them with few distinct values, so filters, ties and facets all meet.

use rand::Rng;
use rand::rngs::StdRng;

use crate::domain::query::{
    ListQuery, SortField, SortKey, TagValueFilter, UnitTestFilter, fold_case,
};
use crate::domain::{
    Criterion, ObjectIdHex, OrgId, SuccessCriterion, Tag, Timestamp, UnitTest, UserInfo,
};

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
    let mut f = UnitTestFilter::for_org(&OrgId::from(if rng.gen_bool(0.9) {
        "acme"
    } else {
        "globex"
    }));
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
    // Keyset pages: the export's walk the id order (no sort).
    let after = rng.gen_bool(0.3).then(|| *pick(rng, ids));
    ListQuery {
        filter: f,
        sort,
        offset: *pick(rng, &[0, 0, 0, 1, 3, 10, 1000]),
        limit: *pick(rng, &[0, 1, 2, 5, 50, 500]),
        with_facets: rng.gen_bool(0.5),
        after,
    }
}

/// Pieces of text that search gets wrong when it is careless: every form of sigma, letters
/// whose lower case is longer or shorter, combining marks, regex metacharacters, digits.
pub const PIECES: &[&str] = &[
    "σ", "ς", "Σ", "ΟΔΟΣ", "οδος", "a", "A", "b", "ab", "ß", "ẞ", "İ", "ﬁ", ".", "*", "(", ")",
    "[", "\\", "?", "+", "$", "^", "|", "{", "日本", "é", "É", "e\u{301}", "0", "7", "77", "-",
    "\u{a0}",
];

/// A random unit test whose name and description are often made of [`PIECES`], and whose
/// description holds one of two frequent words, never both.
pub fn random_doc(rng: &mut StdRng, n: usize) -> UnitTest {
    let mut doc = random_unit_test(rng, n);
    let text = |rng: &mut StdRng| -> String {
        (0..rng.gen_range(0..8))
            .map(|_| {
                let piece = PIECES[rng.gen_range(0..PIECES.len())];
                if rng.gen_bool(0.2) {
                    format!("{piece} ")
                } else {
                    piece.to_owned()
                }
            })
            .collect()
    };
    if rng.gen_bool(0.5) {
        doc.name = format!("{}{n}", text(rng));
    }
    if rng.gen_bool(0.6) {
        let word = if rng.gen_bool(0.5) {
            "RedPill"
        } else {
            "bluepill"
        };
        doc.description = format!("{} {word} {}", text(rng), doc.description);
    }
    doc
}

/// Search terms as the search endpoint parses them: substrings of what the unit tests hold
/// (often in another case), one or two characters, terms nothing holds, and two frequent
/// terms no unit test holds together.
pub fn random_terms(rng: &mut StdRng, docs: &[UnitTest]) -> Vec<String> {
    let one = |rng: &mut StdRng| -> String {
        match rng.gen_range(0..11) {
            0..=2 => {
                let doc = &docs[rng.gen_range(0..docs.len())];
                let text: Vec<char> = if rng.gen_bool(0.5) {
                    &doc.name
                } else {
                    &doc.description
                }
                .chars()
                .collect();
                let start = rng.gen_range(0..=text.len());
                let end = (start + rng.gen_range(1..7)).min(text.len());
                let piece: String = text[start..end].iter().collect();
                if rng.gen_bool(0.5) {
                    piece.to_uppercase()
                } else {
                    piece
                }
            }
            3..=4 => PIECES[rng.gen_range(0..PIECES.len())].to_owned(),
            5 => (0..2)
                .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
                .collect::<String>()
                .chars()
                .take(2)
                .collect(),
            // Every 3-byte gram of these is in many rows that lack the term ("σσ" holds
            // all of "σσσσ"'s), so the grams alone would answer wrongly.
            6 => ["7777", "σσσσ", "ΣΣΣ", "ababab", "aaaa", "ς7ς", "..."][rng.gen_range(0..7)]
                .to_owned(),
            7 => ["q", "zz", "zzzz", "ж", "ωω", "σς(", ".*"][rng.gen_range(0..7)].to_owned(),
            8 => "REDPILL bluePill".to_owned(),
            _ => ["redpill", "BluePill", "ΣΟΔ", "ς", "\\."][rng.gen_range(0..5)].to_owned(),
        }
    };
    let text: Vec<String> = (0..rng.gen_range(1..4)).map(|_| one(rng)).collect();
    // As `parse_search_query` does it.
    let mut terms: Vec<String> = Vec::new();
    for term in text.join(" ").split_whitespace().map(fold_case) {
        if !terms.contains(&term) {
            terms.push(term);
        }
    }
    if terms.is_empty() {
        terms.push("x".into());
    }
    terms
}
