//! What the fuzz targets share: the properties each parser must keep, and structured inputs that
//! reach past the first refusal more often than raw bytes do.
//!
//! Each `check_*` panics (and so makes libFuzzer report a crash) when a parser breaks its contract:
//! it must either succeed with a value that keeps the domain's invariants, or refuse with a
//! non-empty list of problems located under `body` or `query`.

use std::cmp::Ordering;

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Value, json};
use simtest::domain::json::parse_strict;
use simtest::domain::limits;
use simtest::domain::query::{
    ListQuery, MAX_LIMIT, SEARCH_LIMIT, SortField, SortKey, UnitTestFilter, compare, fold_case,
};
use simtest::domain::query_string::QueryParams;
use simtest::domain::{
    Criterion, FieldProblem, NewUnitTest, ObjectIdHex, SuccessCriterion, Tag, Timestamp, UnitTest,
    UnitTestPatch, UserInfo,
};
use simtest::service::{
    list_query_for as parse_list_query, search_query_for as parse_search_query,
};

pub const ORG: &str = "acme";

// ---------------------------------------------------------------------------------------------
// Request bodies

/// Raw bytes through the strict JSON reader, checked against serde_json: the strict reader refuses
/// what serde_json refuses plus repeated keys, and otherwise reads the same value. One exception:
/// with serde_json's `raw_value` feature (on in our build), serde_json's own `Value` takes an object
/// whose key is its private raw-value token for an embedded raw value: it fails, or, when the
/// string is itself JSON, reads that JSON instead of the object. The strict reader reads it as an
/// ordinary key (both found by this target; pinned in `domain::json`'s tests).
pub fn check_json_bytes(data: &[u8]) -> Option<Value> {
    let strict = parse_strict(data);
    let loose = serde_json::from_slice::<Value>(data);
    match (&strict, &loose) {
        (Ok(s), Ok(l)) => assert!(
            s == l || holds_key(s, RAW_VALUE_TOKEN),
            "strict and serde_json read different values: {s:?} and {l:?}"
        ),
        (Ok(s), Err(e)) => assert!(
            holds_key(s, RAW_VALUE_TOKEN),
            "strict reader accepted what serde_json refuses: {e}"
        ),
        (Err(_), _) => {}
    }
    strict.ok()
}

const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

fn holds_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(map) => map.contains_key(key) || map.values().any(|v| holds_key(v, key)),
        Value::Array(items) => items.iter().any(|v| holds_key(v, key)),
        _ => false,
    }
}

/// `problems` is a non-empty refusal whose every entry is located under `root`.
fn check_problems(problems: &[FieldProblem], root: &str) {
    assert!(!problems.is_empty(), "refused without a problem");
    for p in problems {
        let loc = serde_json::to_value(&p.loc).unwrap();
        assert_eq!(loc[0], json!(root), "problem outside {root}: {p:?}");
        assert!(!p.kind.is_empty() && !p.msg.is_empty(), "{p:?}");
    }
}

/// A string the parsers keep after trimming: trimmed, non-empty, within `max` characters, no NUL.
fn assert_stripped(s: &str, max: usize, what: &str) {
    assert_eq!(s, s.trim(), "{what} not trimmed");
    assert!(!s.is_empty(), "{what} empty");
    assert_within(s, max, what);
}

fn assert_within(s: &str, max: usize, what: &str) {
    assert!(s.chars().count() <= max, "{what} longer than {max}");
    assert!(!s.contains('\0'), "{what} holds NUL");
}

/// The body's string at `key`, trimmed (what a stripped field must equal).
fn body_trimmed<'a>(body: &'a Value, key: &str) -> &'a str {
    body[key].as_str().expect("accepted a non-string").trim()
}

fn assert_id(id: &ObjectIdHex, sent: &Value, what: &str) {
    let hex = id.to_hex();
    assert!(
        hex.len() == 24 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{what} prints as {hex:?}"
    );
    assert_eq!(
        sent.as_str(),
        Some(hex.as_str()),
        "{what} differs from the body"
    );
}

fn assert_max_interactions(n: u32, sent: &Value) {
    assert!(0 < n && n <= 100, "max_interactions {n}");
    assert_eq!(
        sent.as_f64(),
        Some(f64::from(n)),
        "max_interactions differs"
    );
}

fn assert_criteria(criteria: &[SuccessCriterion], sent: &Value) {
    let sent = sent.as_array().expect("criteria accepted from a non-list");
    assert!((1..=limits::CRITERIA).contains(&criteria.len()));
    assert_eq!(criteria.len(), sent.len());
    for (c, s) in criteria.iter().zip(sent) {
        assert_stripped(&c.name, limits::SHORT_STRING_CHARS, "criterion name");
        assert_eq!(c.name, body_trimmed(s, "name"));
        assert_id(&c.metric_id, &s["metric_id"], "metric_id");
        let kind = s["criterion"]["type"].as_str().expect("criterion type");
        assert_eq!(kind, c.criterion.value_type().to_string());
        match &c.criterion {
            Criterion::Boolean { expected_value } => {
                assert_eq!(s["criterion"]["expected_value"], json!(expected_value));
            }
            Criterion::Numerical { threshold, .. } => {
                assert!(threshold.is_finite(), "threshold {threshold}");
            }
            Criterion::Categorical { expected_values } => {
                assert!((1..=limits::EXPECTED_VALUES).contains(&expected_values.len()));
                for v in expected_values {
                    assert_stripped(v, limits::SHORT_STRING_CHARS, "expected value");
                }
            }
        }
    }
}

fn assert_tags(tags: &[Tag], sent: &Value) {
    let sent = sent.as_object().expect("tags accepted from a non-object");
    assert!(tags.len() <= limits::TAGS);
    assert_eq!(tags.len(), sent.len(), "tags lost or invented");
    assert!(
        tags.windows(2).all(|w| w[0].key < w[1].key),
        "tags not sorted by key or repeated"
    );
    for t in tags {
        assert!(!t.key.trim().is_empty(), "blank tag key");
        assert_within(&t.key, limits::SHORT_STRING_CHARS, "tag key");
        if let Some(v) = &t.value {
            assert_within(v, limits::SHORT_STRING_CHARS, "tag value");
        }
        assert_eq!(sent.get(&t.key), Some(&json!(t.value)), "tag differs");
    }
}

const CREATE_FIELDS: [&str; 9] = [
    "name",
    "description",
    "service_id",
    "service_version_set_name",
    "persona_id",
    "scenario_id",
    "max_interactions",
    "success_criterions",
    "tags",
];

/// The create parser either refuses with problems or returns a value that keeps every invariant.
/// An accepted create body, without its name, must also be an accepted update setting every field.
pub fn check_create(body: &Value) {
    let new = match NewUnitTest::parse(body) {
        Err(problems) => return check_problems(&problems, "body"),
        Ok(new) => new,
    };
    let obj = body.as_object().expect("accepted a non-object");
    assert!(obj.keys().all(|k| CREATE_FIELDS.contains(&k.as_str())));
    assert_stripped(&new.name, limits::NAME_CHARS, "name");
    assert_eq!(new.name, body_trimmed(body, "name"));
    assert_stripped(&new.description, limits::DESCRIPTION_CHARS, "description");
    assert_stripped(
        &new.service_version_set_name,
        limits::SHORT_STRING_CHARS,
        "service_version_set_name",
    );
    assert_id(&new.service_id, &body["service_id"], "service_id");
    assert_id(&new.persona_id, &body["persona_id"], "persona_id");
    assert_id(&new.scenario_id, &body["scenario_id"], "scenario_id");
    assert_max_interactions(new.max_interactions, &body["max_interactions"]);
    assert_criteria(&new.success_criterions, &body["success_criterions"]);
    assert_tags(&new.tags, &body["tags"]);

    let mut without_name = obj.clone();
    without_name.remove("name");
    let patch = UnitTestPatch::parse(&Value::Object(without_name))
        .expect("a valid create body without its name is a valid update");
    assert_eq!(patch.description.as_ref(), Some(&new.description));
    assert_eq!(patch.service_id, Some(new.service_id));
    assert_eq!(patch.persona_id, Some(new.persona_id));
    assert_eq!(patch.scenario_id, Some(new.scenario_id));
    assert_eq!(
        patch.service_version_set_name.as_ref(),
        Some(&new.service_version_set_name)
    );
    assert_eq!(patch.max_interactions, Some(new.max_interactions));
    assert_eq!(
        patch.success_criterions.as_ref(),
        Some(&new.success_criterions)
    );
    assert_eq!(patch.tags.as_ref(), Some(&new.tags));
    assert_eq!(patch.run_count, None);
}

const UPDATE_FIELDS: [&str; 9] = [
    "description",
    "service_id",
    "service_version_set_name",
    "persona_id",
    "scenario_id",
    "max_interactions",
    "success_criterions",
    "run_count",
    "tags",
];

/// The update parser either refuses with problems or returns a patch that keeps every invariant and
/// sets exactly the fields the body gives a non-null value.
pub fn check_patch(body: &Value) {
    let patch = match UnitTestPatch::parse(body) {
        Err(problems) => return check_problems(&problems, "body"),
        Ok(patch) => patch,
    };
    let obj = body.as_object().expect("accepted a non-object");
    assert!(obj.keys().all(|k| UPDATE_FIELDS.contains(&k.as_str())));
    let given = |k: &str| !obj.get(k).unwrap_or(&Value::Null).is_null();
    assert_eq!(patch.description.is_some(), given("description"));
    assert_eq!(patch.service_id.is_some(), given("service_id"));
    assert_eq!(patch.persona_id.is_some(), given("persona_id"));
    assert_eq!(patch.scenario_id.is_some(), given("scenario_id"));
    assert_eq!(
        patch.service_version_set_name.is_some(),
        given("service_version_set_name")
    );
    assert_eq!(patch.max_interactions.is_some(), given("max_interactions"));
    assert_eq!(
        patch.success_criterions.is_some(),
        given("success_criterions")
    );
    assert_eq!(patch.run_count.is_some(), given("run_count"));
    assert_eq!(patch.tags.is_some(), given("tags"));

    if let Some(d) = &patch.description {
        assert_stripped(d, limits::DESCRIPTION_CHARS, "description");
        assert_eq!(d, body_trimmed(body, "description"));
    }
    if let Some(v) = &patch.service_version_set_name {
        assert_stripped(v, limits::SHORT_STRING_CHARS, "service_version_set_name");
    }
    for (id, key) in [
        (&patch.service_id, "service_id"),
        (&patch.persona_id, "persona_id"),
        (&patch.scenario_id, "scenario_id"),
    ] {
        if let Some(id) = id {
            assert_id(id, &body[key], key);
        }
    }
    if let Some(n) = patch.max_interactions {
        assert_max_interactions(n, &body["max_interactions"]);
    }
    if let Some(n) = patch.run_count {
        assert!(0 < n && n <= i64::MAX as u64, "run_count {n}");
    }
    if let Some(c) = &patch.success_criterions {
        assert_criteria(c, &body["success_criterions"]);
    }
    if let Some(t) = &patch.tags {
        assert_tags(t, &body["tags"]);
    }
}

/// JSON shaped like a request body: known keys, ids, verbs and criterion types turn up often, so
/// the parsers get past "not an object" and "unknown field" to the interesting checks.
#[derive(Arbitrary, Debug)]
pub struct BodyInput {
    /// Start from a valid create body (else from `{}`).
    pub from_valid: bool,
    pub edits: Vec<Edit>,
}

#[derive(Arbitrary, Debug)]
pub enum Edit {
    Set(Key, Json),
    Remove(Key),
    /// Edits inside the first criterion, so its fields get varied one at a time.
    SetInCriterion(Key, Json),
}

impl BodyInput {
    pub fn to_value(&self) -> Value {
        let mut body = if self.from_valid {
            valid_body()
        } else {
            json!({})
        };
        let obj = body.as_object_mut().unwrap();
        for edit in &self.edits {
            match edit {
                Edit::Set(k, v) => {
                    obj.insert(k.text(), v.to_value(0));
                }
                Edit::Remove(k) => {
                    obj.remove(&k.text());
                }
                Edit::SetInCriterion(k, v) => {
                    if let Some(Value::Object(c)) = obj
                        .get_mut("success_criterions")
                        .and_then(|l| l.get_mut(0))
                        .and_then(|c| c.get_mut("criterion"))
                    {
                        c.insert(k.text(), v.to_value(0));
                    }
                }
            }
        }
        body
    }
}

pub fn valid_body() -> Value {
    json!({
        "name": "Signup works",
        "description": "The happy path",
        "service_id": "6618791275130b73714e8d1c",
        "service_version_set_name": "release",
        "persona_id": "6618791275130b73714e8d2a",
        "scenario_id": "6618791275130b73714e8d3b",
        "max_interactions": 10,
        "success_criterions": [
            {"name": "done", "metric_id": "6618791275130b73714e8d4c",
             "criterion": {"type": "boolean", "expected_value": true}},
            {"name": "fast", "metric_id": "6618791275130b73714e8d4d",
             "criterion": {"type": "numerical", "verb": "<=", "threshold": 5}},
        ],
        "tags": {"team": "growth", "flaky": null}
    })
}

const KEYS: [&str; 17] = [
    "name",
    "description",
    "service_id",
    "service_version_set_name",
    "persona_id",
    "scenario_id",
    "max_interactions",
    "success_criterions",
    "run_count",
    "tags",
    "metric_id",
    "criterion",
    "type",
    "expected_value",
    "verb",
    "threshold",
    "expected_values",
];

#[derive(Arbitrary, Debug)]
pub enum Key {
    Known(u8),
    Other(String),
}

impl Key {
    fn text(&self) -> String {
        match self {
            Self::Known(n) => KEYS[*n as usize % KEYS.len()].to_owned(),
            Self::Other(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Small(i8),
    Int(i64),
    Big(u64),
    Float(f64),
    Str(Text),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
    Criterion(CriterionInput),
}

impl Json {
    fn to_value(&self, depth: u8) -> Value {
        if depth > 6 {
            return Value::Null;
        }
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => json!(b),
            Self::Small(n) => json!(n),
            Self::Int(n) => json!(n),
            Self::Big(n) => json!(n),
            Self::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Self::Str(t) => Value::String(t.text()),
            Self::Array(items) => items.iter().map(|j| j.to_value(depth + 1)).collect(),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.text(), v.to_value(depth + 1)))
                    .collect::<Map<_, _>>(),
            ),
            Self::Criterion(c) => c.to_value(),
        }
    }
}

/// A success criterion that is well formed but for what the fuzzer chooses to vary.
#[derive(Arbitrary, Debug)]
pub struct CriterionInput {
    name: Text,
    metric_id: Text,
    kind: u8,
    expected_value: bool,
    verb: u8,
    threshold: f64,
    expected_values: Vec<Text>,
}

impl CriterionInput {
    fn to_value(&self) -> Value {
        let criterion = match self.kind % 4 {
            0 => json!({"type": "boolean", "expected_value": self.expected_value}),
            1 => json!({
                "type": "numerical",
                "verb": VERBS[self.verb as usize % VERBS.len()],
                "threshold": serde_json::Number::from_f64(self.threshold),
            }),
            2 => json!({
                "type": "categorical",
                "expected_values": self.expected_values.iter().map(Text::text).collect::<Vec<_>>(),
            }),
            _ => json!({"type": TYPES[self.verb as usize % TYPES.len()]}),
        };
        json!({"name": self.name.text(), "metric_id": self.metric_id.text(), "criterion": criterion})
    }
}

const VERBS: [&str; 8] = ["==", "!=", "<=", "<", ">=", ">", "=", "=~"];
const TYPES: [&str; 4] = ["boolean", "numerical", "categorical", "Boolean"];

#[derive(Arbitrary, Debug)]
pub enum Text {
    Id([u8; 12]),
    UpperId([u8; 12]),
    Word(u8),
    /// Whitespace around a string, to exercise trimming.
    Padded(u8, String, u8),
    Any(String),
    /// One character repeated, to reach the length limits.
    Repeat(char, u16),
}

const PADDING: [&str; 6] = ["", " ", "\t\n", "\u{3000}", "\u{a0}", "\u{2028} "];

impl Text {
    fn text(&self) -> String {
        match self {
            Self::Id(b) => ObjectIdHex::from_bytes(*b).to_hex(),
            Self::UpperId(b) => ObjectIdHex::from_bytes(*b).to_hex().to_uppercase(),
            Self::Word(n) => {
                let words = [VERBS.as_slice(), TYPES.as_slice(), KEYS.as_slice()].concat();
                words[*n as usize % words.len()].to_owned()
            }
            Self::Padded(l, s, r) => format!(
                "{}{s}{}",
                PADDING[*l as usize % PADDING.len()],
                PADDING[*r as usize % PADDING.len()]
            ),
            Self::Any(s) => s.clone(),
            Self::Repeat(c, n) => std::iter::repeat_n(*c, *n as usize).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Query strings

/// A query-target input: `?` + a query string + `\n` + bytes for the rest (readable seeds, raw
/// strings), or else wholly structured. `None` is a request without a query string.
pub fn split_query_input(data: &[u8]) -> (Option<String>, Unstructured<'_>) {
    if let Some(rest) = data.strip_prefix(b"?") {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let raw = String::from_utf8_lossy(&rest[..end]).into_owned();
        let tail = rest.get(end + 1..).unwrap_or(&[]);
        return (Some(raw), Unstructured::new(tail));
    }
    let mut u = Unstructured::new(data);
    let query = Option::<QueryInput>::arbitrary(&mut u).unwrap_or(None);
    (query.map(|q| q.to_query()), u)
}

/// A query string: raw text, or parameters drawn mostly from the ones list and search read.
#[derive(Arbitrary, Debug)]
pub enum QueryInput {
    Raw(String),
    Params(Vec<(QueryKey, QueryValue)>),
}

const QUERY_KEYS: [&str; 12] = [
    "id",
    "service_id",
    "persona_id",
    "scenario_id",
    "metric_id",
    "creator",
    "tag",
    "is_deleted",
    "sort_by",
    "limit",
    "continuation_token",
    "query",
];

#[derive(Arbitrary, Debug)]
pub enum QueryKey {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
pub enum QueryValue {
    /// One of a few ids, shared with the sample unit tests so filters sometimes select them.
    Id(u8),
    Int(i64),
    Bool(u8),
    Sort(u8, u8),
    Tag(String, Option<String>),
    Creator(String, String),
    Words(Vec<Text>),
    Any(String),
}

const BOOLS: [&str; 8] = ["true", "False", "1", "0", "yes", "OFF", "t", "maybe"];
const SORTS: [&str; 4] = ["updated_at", "created_at", "name", "size"];

pub fn sample_id(n: u8) -> ObjectIdHex {
    ObjectIdHex::from_bytes([n % 4; 12])
}

impl QueryInput {
    pub fn to_query(&self) -> String {
        match self {
            Self::Raw(s) => s.clone(),
            Self::Params(params) => {
                let mut out = form_urlencoded::Serializer::new(String::new());
                for (k, v) in params {
                    let key = match k {
                        QueryKey::Known(n) => QUERY_KEYS[*n as usize % QUERY_KEYS.len()],
                        QueryKey::Other(s) => s,
                    };
                    out.append_pair(key, &v.text());
                }
                out.finish()
            }
        }
    }
}

impl QueryValue {
    fn text(&self) -> String {
        match self {
            Self::Id(n) => sample_id(*n).to_hex(),
            Self::Int(n) => n.to_string(),
            Self::Bool(n) => BOOLS[*n as usize % BOOLS.len()].to_owned(),
            Self::Sort(sign, n) => format!(
                "{}{}",
                ["", "-", "+"][*sign as usize % 3],
                SORTS[*n as usize % SORTS.len()]
            ),
            Self::Tag(k, None) => format!("{k}:"),
            Self::Tag(k, Some(v)) => format!("{k}:{v}"),
            Self::Creator(o, u) => format!("{o},{u}"),
            Self::Words(words) => words.iter().map(Text::text).collect::<Vec<_>>().join(" "),
            Self::Any(s) => s.clone(),
        }
    }
}

/// A stored unit test with fields drawn from small sets, so filters and sort keys collide often.
#[derive(Arbitrary, Debug)]
pub struct SampleTest {
    id: u8,
    foreign_org: bool,
    name: String,
    description: String,
    ids: [u8; 4],
    tags: Vec<(String, Option<String>)>,
    deleted: bool,
    creator: (String, String),
    created_at: i8,
    updated_at: i8,
}

impl SampleTest {
    pub fn to_unit_test(&self) -> UnitTest {
        let creator = UserInfo {
            org_id: self.creator.0.clone().into(),
            user_id: self.creator.1.clone().into(),
        };
        let mut tags: Vec<Tag> = self
            .tags
            .iter()
            .map(|(k, v)| Tag {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        tags.sort();
        tags.dedup_by(|a, b| a.key == b.key);
        UnitTest {
            // Ids from a wider set than the filter ids, so distinct samples can still tie on sort keys.
            id: ObjectIdHex::from_bytes([self.id; 12]),
            org_id: if self.foreign_org { "other" } else { ORG }.into(),
            name: self.name.clone(),
            description: self.description.clone(),
            service_id: sample_id(self.ids[0]),
            service_version_set_name: "release".to_owned(),
            persona_id: sample_id(self.ids[1]),
            scenario_id: sample_id(self.ids[2]),
            max_interactions: 1,
            success_criterions: vec![SuccessCriterion {
                name: "c".to_owned(),
                metric_id: sample_id(self.ids[3]),
                criterion: Criterion::Boolean {
                    expected_value: true,
                },
            }],
            run_count: 0,
            tags,
            is_deleted: self.deleted,
            creator: creator.clone(),
            updated_by: creator,
            created_at: Timestamp::from_millis(self.created_at.into()),
            updated_at: Timestamp::from_millis(self.updated_at.into()),
        }
    }
}

fn assert_ids(ids: &[ObjectIdHex], what: &str) {
    for (i, id) in ids.iter().enumerate() {
        let hex = id.to_hex();
        assert!(
            hex.len() == 24 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{what} prints as {hex:?}"
        );
        assert!(!ids[..i].contains(id), "{what} repeated");
    }
    assert!(ids.len() <= limits::QUERY_VALUES, "too many {what}");
}

fn check_filter(f: &UnitTestFilter) {
    assert_eq!(f.org_id, ORG);
    assert_ids(&f.ids, "id");
    assert_ids(&f.service_ids, "service_id");
    assert_ids(&f.persona_ids, "persona_id");
    assert_ids(&f.scenario_ids, "scenario_id");
    assert_ids(&f.metric_ids, "metric_id");
    for (i, c) in f.creators.iter().enumerate() {
        assert!(!c.org_id.is_empty() && !c.user_id.is_empty(), "{c:?}");
        assert!(!f.creators[..i].contains(c), "creator repeated");
    }
    for (key, wanted) in &f.tags {
        assert!(!key.is_empty(), "empty tag key");
        assert!(!wanted.is_empty(), "tag key {key:?} without a value filter");
        for (i, w) in wanted.iter().enumerate() {
            assert!(!wanted[..i].contains(w), "tag filter repeated");
        }
    }
}

/// A filter never selects a unit test of another org, nor (when it asks for undeleted ones) a deleted one.
fn check_matches(f: &UnitTestFilter, samples: &[UnitTest]) {
    for t in samples {
        if f.matches(t) {
            assert_eq!(t.org_id, f.org_id, "matched across orgs");
            assert!(f.is_deleted.is_none_or(|d| d == t.is_deleted));
        }
    }
}

/// `compare` is a total order: reflexive, antisymmetric, transitive, and `Equal` only for one id.
pub fn check_order(sort: &[SortKey], samples: &[UnitTest]) {
    for a in samples {
        assert_eq!(compare(sort, a, a), Ordering::Equal);
        for b in samples {
            let ab = compare(sort, a, b);
            assert_eq!(ab, compare(sort, b, a).reverse(), "not antisymmetric");
            if ab == Ordering::Equal {
                assert_eq!(a.id, b.id, "distinct ids compare equal");
            }
            for c in samples {
                if ab.is_le() && compare(sort, b, c).is_le() {
                    assert!(compare(sort, a, c).is_le(), "not transitive");
                }
            }
        }
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| compare(sort, a, b));
    assert!(
        sorted
            .windows(2)
            .all(|w| compare(sort, &w[0], &w[1]).is_le())
    );
}

/// The list parser refuses with problems under `query`, or returns a bounded, well-formed query.
pub fn check_list(raw: Option<&str>, samples: &[UnitTest]) -> Option<ListQuery> {
    let params = QueryParams::parse(raw);
    let q = match parse_list_query(&ORG.into(), &params) {
        Err(problems) => {
            check_problems(&problems, "query");
            return None;
        }
        Ok(q) => q,
    };
    assert!(q.limit <= MAX_LIMIT, "limit {}", q.limit);
    assert!(q.offset <= i64::MAX as u64);
    assert_eq!(q.with_facets, q.offset == 0);
    assert!(q.filter.terms.is_empty());
    assert!(q.sort.len() <= limits::QUERY_VALUES);
    check_filter(&q.filter);
    check_matches(&q.filter, samples);
    check_order(&q.sort, samples);
    Some(q)
}

/// The search parser refuses with problems under `query`, or returns at most 100 undeleted unit
/// tests, newest first, with case-folded, distinct, bounded terms.
pub fn check_search(raw: Option<&str>, samples: &[UnitTest]) -> Option<ListQuery> {
    let params = QueryParams::parse(raw);
    let q = match parse_search_query(&ORG.into(), &params) {
        Err(problems) => {
            check_problems(&problems, "query");
            return None;
        }
        Ok(q) => q,
    };
    assert_eq!(q.limit, SEARCH_LIMIT);
    assert_eq!(q.offset, 0);
    assert!(!q.with_facets);
    assert_eq!(q.filter.is_deleted, Some(false));
    assert!(q.filter.ids.is_empty());
    assert_eq!(
        q.sort,
        [SortKey {
            field: SortField::UpdatedAt,
            descending: true
        }]
    );
    let terms = &q.filter.terms;
    assert!(!terms.is_empty() && terms.len() <= limits::SEARCH_TERMS);
    for (i, t) in terms.iter().enumerate() {
        assert!(!t.is_empty() && !t.contains(char::is_whitespace), "{t:?}");
        assert_eq!(*t, fold_case(t), "term not case-folded");
        assert!(!terms[..i].contains(t), "term repeated");
    }
    check_filter(&q.filter);
    check_matches(&q.filter, samples);
    Some(q)
}

/// The `query` parameter's text, when given exactly once.
pub fn search_text(raw: &str) -> Option<String> {
    let mut values = form_urlencoded::parse(raw.as_bytes())
        .filter(|(k, _)| k == "query")
        .map(|(_, v)| v.into_owned());
    let first = values.next();
    if values.next().is_some() { None } else { first }
}
