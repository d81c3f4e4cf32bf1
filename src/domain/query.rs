//! The query model shared by both stores: which unit tests a list or search selects, in which order,
//! and the facet values (`filter_values`) over them. The embedded store evaluates it directly; the
//! MongoDB store translates it. Parsing from the query string lives here too.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::problems::{FieldProblem, Loc, Problems};
use super::{ObjectIdHex, UnitTest, UserInfo, limits};

/// What one `tag` filter value asks of a tag with its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagValueFilter {
    /// `key:*`
    Any,
    /// `key:` — the tag has no value.
    Null,
    /// `key:value`
    Exact(String),
}

impl TagValueFilter {
    pub fn accepts(&self, value: Option<&str>) -> bool {
        match self {
            Self::Any => true,
            Self::Null => value.is_none(),
            Self::Exact(wanted) => value == Some(wanted.as_str()),
        }
    }
}

/// Which unit tests of one org are selected. Values of one field are OR-ed, fields are AND-ed;
/// tag filters sharing a key are OR-ed, different keys AND-ed. Empty lists do not filter.
#[derive(Debug, Clone, Default)]
pub struct UnitTestFilter {
    pub org_id: String,
    pub ids: Vec<ObjectIdHex>,
    pub service_ids: Vec<ObjectIdHex>,
    pub persona_ids: Vec<ObjectIdHex>,
    pub scenario_ids: Vec<ObjectIdHex>,
    pub metric_ids: Vec<ObjectIdHex>,
    pub creators: Vec<UserInfo>,
    pub tags: BTreeMap<String, Vec<TagValueFilter>>,
    pub is_deleted: Option<bool>,
    /// Search terms, case-folded by [`fold_case`]; each must occur in the name or the description.
    pub terms: Vec<String>,
}

impl UnitTestFilter {
    pub fn for_org(org_id: &str) -> Self {
        Self {
            org_id: org_id.to_owned(),
            ..Self::default()
        }
    }

    pub fn matches(&self, t: &UnitTest) -> bool {
        fn any_of<T: PartialEq>(wanted: &[T], value: &T) -> bool {
            wanted.is_empty() || wanted.contains(value)
        }
        t.org_id == self.org_id
            && self.is_deleted.is_none_or(|d| d == t.is_deleted)
            && any_of(&self.ids, &t.id)
            && any_of(&self.service_ids, &t.service_id)
            && any_of(&self.persona_ids, &t.persona_id)
            && any_of(&self.scenario_ids, &t.scenario_id)
            && any_of(&self.creators, &t.creator)
            && (self.metric_ids.is_empty()
                || t.success_criterions
                    .iter()
                    .any(|c| self.metric_ids.contains(&c.metric_id)))
            && self.tags.iter().all(|(key, wanted)| {
                t.tags.iter().any(|tag| {
                    &tag.key == key && wanted.iter().any(|w| w.accepts(tag.value.as_deref()))
                })
            })
            && self.terms_match(t)
    }

    fn terms_match(&self, t: &UnitTest) -> bool {
        if self.terms.is_empty() {
            return true;
        }
        let name = fold_case(&t.name);
        let description = fold_case(&t.description);
        self.terms
            .iter()
            .all(|term| name.contains(term.as_str()) || description.contains(term.as_str()))
    }
}

/// Lower-cases `s` one character at a time, with `ς` as `σ`: what a case-insensitive regex (so
/// MongoDB) compares. `str::to_lowercase` writes a word-final `Σ` as `ς`, so a name "sΣ" did not
/// hold the term "Σ" (found by fuzzing `search_query`); folding without context keeps every
/// substring a substring.
pub fn fold_case(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == 'ς' { 'σ' } else { c })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    UpdatedAt,
    CreatedAt,
    Name,
}

impl SortField {
    pub fn name(self) -> &'static str {
        match self {
            Self::UpdatedAt => "updated_at",
            Self::CreatedAt => "created_at",
            Self::Name => "name",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

/// Compares two unit tests by `sort`, then by id ascending so every order is total.
pub fn compare(sort: &[SortKey], a: &UnitTest, b: &UnitTest) -> Ordering {
    sort.iter()
        .map(|key| {
            let ord = match key.field {
                SortField::UpdatedAt => a.updated_at.cmp(&b.updated_at),
                SortField::CreatedAt => a.created_at.cmp(&b.created_at),
                SortField::Name => a.name.cmp(&b.name),
            };
            if key.descending { ord.reverse() } else { ord }
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.id.cmp(&b.id))
}

/// One page of a list: filter, order, offset and size, and whether to compute facets.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: UnitTestFilter,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: u32,
    pub with_facets: bool,
}

/// The distinct values of the filterable fields over every unit test a filter selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FilterValues {
    pub creators: Vec<UserInfo>,
    pub tags: Vec<String>,
    pub service_ids: Vec<ObjectIdHex>,
    pub persona_ids: Vec<ObjectIdHex>,
    pub scenario_ids: Vec<ObjectIdHex>,
    pub metric_ids: Vec<ObjectIdHex>,
}

/// Accumulates [`FilterValues`], sorted and without repeats.
#[derive(Default)]
pub struct FilterValuesBuilder {
    creators: BTreeSet<UserInfo>,
    tags: BTreeSet<String>,
    service_ids: BTreeSet<ObjectIdHex>,
    persona_ids: BTreeSet<ObjectIdHex>,
    scenario_ids: BTreeSet<ObjectIdHex>,
    metric_ids: BTreeSet<ObjectIdHex>,
}

impl FilterValuesBuilder {
    pub fn add(&mut self, t: &UnitTest) {
        if !self.creators.contains(&t.creator) {
            self.creators.insert(t.creator.clone());
        }
        for tag in &t.tags {
            if !self.tags.contains(&tag.key) {
                self.tags.insert(tag.key.clone());
            }
        }
        self.service_ids.insert(t.service_id);
        self.persona_ids.insert(t.persona_id);
        self.scenario_ids.insert(t.scenario_id);
        self.metric_ids
            .extend(t.success_criterions.iter().map(|c| c.metric_id));
    }

    pub fn build(self) -> FilterValues {
        FilterValues {
            creators: self.creators.into_iter().collect(),
            tags: self.tags.into_iter().collect(),
            service_ids: self.service_ids.into_iter().collect(),
            persona_ids: self.persona_ids.into_iter().collect(),
            scenario_ids: self.scenario_ids.into_iter().collect(),
            metric_ids: self.metric_ids.into_iter().collect(),
        }
    }
}

/// A page of unit tests as a store returns it.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Shared: the embedded store hands out the documents it keeps decoded.
    pub items: Vec<Arc<UnitTest>>,
    pub has_more: bool,
    pub filter_values: Option<FilterValues>,
}

/// Default and bounds of `limit` (the contract's 0–500, default 50).
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
/// Search answers at most this many unit tests.
pub const SEARCH_LIMIT: u32 = 100;

/// The query string split into its parameters, each with every value it was given.
pub struct QueryParams(BTreeMap<String, Vec<String>>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(map)
    }

    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// A parameter that may be given once; a repeat is a problem.
    fn single(&self, name: &str, p: &mut Problems) -> Option<&str> {
        match self.all(name) {
            [] => None,
            [one] => Some(one),
            _ => {
                p.push(
                    &Loc::root("query").key(name),
                    "single_value",
                    "Give this parameter at most once",
                );
                None
            }
        }
    }

    /// Every value of a repeatable parameter, each read by `parse_one`; the contract's id lists are
    /// sets (`uniqueItems`), so `unique` refuses repeats.
    fn many<T>(
        &self,
        name: &str,
        unique: bool,
        p: &mut Problems,
        parse_one: impl Fn(&str) -> Result<T, (&'static str, String)>,
    ) -> Vec<T> {
        let values = self.all(name);
        let loc = Loc::root("query").key(name);
        if values.len() > limits::QUERY_VALUES {
            p.push(
                &loc,
                "too_long",
                format!("Give at most {} values", limits::QUERY_VALUES),
            );
            return Vec::new();
        }
        let mut out = Vec::with_capacity(values.len());
        for (i, raw) in values.iter().enumerate() {
            if unique && values[..i].contains(raw) {
                p.push(&loc.index(i), "list_unique", "Values should be unique");
                continue;
            }
            match parse_one(raw) {
                Ok(v) => out.push(v),
                Err((kind, msg)) => p.push(&loc.index(i), kind, msg),
            }
        }
        out
    }
}

fn parse_id(raw: &str) -> Result<ObjectIdHex, (&'static str, String)> {
    ObjectIdHex::parse(raw).ok_or((
        "string_pattern_mismatch",
        "String should match pattern '^[a-f0-9]{24}$'".to_owned(),
    ))
}

fn parse_creator(raw: &str) -> Result<UserInfo, (&'static str, String)> {
    match raw.split_once(',') {
        Some((org_id, user_id)) if !org_id.is_empty() && !user_id.is_empty() => Ok(UserInfo {
            org_id: org_id.to_owned(),
            user_id: user_id.to_owned(),
        }),
        _ => Err((
            "creator_format",
            "Creator must be of the form `org_id,user_id`".to_owned(),
        )),
    }
}

fn parse_tag(raw: &str) -> Result<(String, TagValueFilter), (&'static str, String)> {
    match raw.split_once(':') {
        Some((key, value)) if !key.is_empty() => {
            let value = match value {
                "*" => TagValueFilter::Any,
                "" => TagValueFilter::Null,
                v => TagValueFilter::Exact(v.to_owned()),
            };
            Ok((key.to_owned(), value))
        }
        _ => Err((
            "tag_format",
            "Tag must be of the form `key:value`, `key:*` or `key:`".to_owned(),
        )),
    }
}

fn parse_sort(raw: &str) -> Result<SortKey, (&'static str, String)> {
    let (descending, name) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let field = match name {
        "updated_at" => SortField::UpdatedAt,
        "created_at" => SortField::CreatedAt,
        "name" => SortField::Name,
        _ => {
            return Err((
                "sort_field",
                "Sort by `updated_at`, `created_at` or `name`, optionally prefixed by `+` or `-`"
                    .to_owned(),
            ));
        }
    };
    Ok(SortKey { field, descending })
}

/// Python-style booleans as query values, as the original accepts them.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Reads the filters list and search share into `filter`.
fn read_common_filters(q: &QueryParams, filter: &mut UnitTestFilter, p: &mut Problems) {
    filter.service_ids = q.many("service_id", true, p, parse_id);
    filter.persona_ids = q.many("persona_id", true, p, parse_id);
    filter.scenario_ids = q.many("scenario_id", true, p, parse_id);
    filter.metric_ids = q.many("metric_id", true, p, parse_id);
    filter.creators = q.many("creator", true, p, parse_creator);
    for (key, value) in q.many("tag", false, p, parse_tag) {
        let wanted = filter.tags.entry(key).or_default();
        if !wanted.contains(&value) {
            wanted.push(value);
        }
    }
}

/// The list endpoint's query string as a [`ListQuery`] for `org_id`.
pub fn parse_list_query(org_id: &str, q: &QueryParams) -> Result<ListQuery, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let mut filter = UnitTestFilter::for_org(org_id);
    filter.ids = q.many("id", true, &mut p, parse_id);
    read_common_filters(q, &mut filter, &mut p);
    filter.is_deleted = q.single("is_deleted", &mut p).and_then(|raw| {
        let b = parse_bool(raw);
        if b.is_none() {
            p.push(
                &Loc::root("query").key("is_deleted"),
                "bool_parsing",
                "Input should be a valid boolean",
            );
        }
        b
    });
    let sort = q.many("sort_by", false, &mut p, parse_sort);
    let limit = match q.single("limit", &mut p) {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (0..=MAX_LIMIT as i64).contains(&n) => n as u32,
            Ok(_) => {
                p.push(
                    &Loc::root("query").key("limit"),
                    "range",
                    format!("Input should be between 0 and {MAX_LIMIT}"),
                );
                0
            }
            Err(_) => {
                p.push(
                    &Loc::root("query").key("limit"),
                    "int_parsing",
                    "Input should be a valid integer",
                );
                0
            }
        },
    };
    let offset = match q.single("continuation_token", &mut p) {
        None => 0,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n >= 0 => n as u64,
            Ok(_) => {
                p.push(
                    &Loc::root("query").key("continuation_token"),
                    "greater_than_equal",
                    "Input should be greater than or equal to 0",
                );
                0
            }
            Err(_) => {
                p.push(
                    &Loc::root("query").key("continuation_token"),
                    "int_parsing",
                    "Input should be a valid integer",
                );
                0
            }
        },
    };
    let with_facets = offset == 0;
    p.finish(|| ListQuery {
        filter,
        sort,
        offset,
        limit,
        with_facets,
    })
}

/// The search endpoint's query string as a [`ListQuery`]: every term must match, deleted unit tests
/// never do, most recently updated first, at most [`SEARCH_LIMIT`].
pub fn parse_search_query(org_id: &str, q: &QueryParams) -> Result<ListQuery, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let mut filter = UnitTestFilter::for_org(org_id);
    read_common_filters(q, &mut filter, &mut p);
    let loc = Loc::root("query").key("query");
    match q.single("query", &mut p).map(str::trim) {
        None => p.push(&loc, "missing", "Field required"),
        Some("") => p.push(
            &loc,
            "string_too_short",
            "String should have at least 1 character after trimming white space",
        ),
        Some(text) if text.chars().count() > limits::SEARCH_QUERY_CHARS => p.push(
            &loc,
            "string_too_long",
            format!(
                "String should have at most {} characters",
                limits::SEARCH_QUERY_CHARS
            ),
        ),
        // NUL and other control characters (white space aside) are no text anyone searches for,
        // and MongoDB's `$regex` refuses some of them: a clean 422 on both stores.
        Some(text) if text.chars().any(|c| c.is_control() && !c.is_whitespace()) => p.push(
            &loc,
            "string_pattern_mismatch",
            "Search terms may not contain control characters",
        ),
        Some(text) => {
            let mut terms: Vec<String> = Vec::new();
            for term in text.split_whitespace().map(fold_case) {
                if !terms.contains(&term) {
                    terms.push(term);
                }
            }
            if terms.len() > limits::SEARCH_TERMS {
                p.push(
                    &loc,
                    "too_long",
                    format!("Give at most {} search terms", limits::SEARCH_TERMS),
                );
            }
            filter.terms = terms;
        }
    }
    filter.is_deleted = Some(false);
    let sort = vec![SortKey {
        field: SortField::UpdatedAt,
        descending: true,
    }];
    p.finish(|| ListQuery {
        filter,
        sort,
        offset: 0,
        limit: SEARCH_LIMIT,
        with_facets: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Criterion, SuccessCriterion, Tag, Timestamp};

    fn id(n: u8) -> ObjectIdHex {
        ObjectIdHex::from_bytes([n; 12])
    }

    fn unit_test(name: &str, tags: &[(&str, Option<&str>)]) -> UnitTest {
        let who = UserInfo {
            org_id: "acme".into(),
            user_id: "alice".into(),
        };
        UnitTest {
            id: id(1),
            org_id: "acme".into(),
            name: name.into(),
            description: "Checks the Sign-Up flow (v2.0)".into(),
            service_id: id(2),
            service_version_set_name: "release".into(),
            persona_id: id(3),
            scenario_id: id(4),
            max_interactions: 5,
            success_criterions: vec![SuccessCriterion {
                name: "c".into(),
                metric_id: id(5),
                criterion: Criterion::Boolean {
                    expected_value: true,
                },
            }],
            run_count: 1,
            tags: tags
                .iter()
                .map(|(k, v)| Tag {
                    key: (*k).into(),
                    value: v.map(Into::into),
                })
                .collect(),
            is_deleted: false,
            creator: who.clone(),
            updated_by: who,
            created_at: Timestamp::from_millis(1),
            updated_at: Timestamp::from_millis(2),
        }
    }

    fn list(query: &str) -> ListQuery {
        parse_list_query("acme", &QueryParams::parse(Some(query))).expect("valid query")
    }

    #[test]
    fn tag_filters_or_within_a_key_and_and_across_keys() {
        let t = unit_test("n", &[("team", Some("growth")), ("flaky", None)]);
        let cases = [
            ("tag=team:growth", true),
            ("tag=team:core", false),
            ("tag=team:core&tag=team:growth", true),
            ("tag=team:*", true),
            ("tag=flaky:", true),
            ("tag=team:", false),
            ("tag=team:growth&tag=flaky:*", true),
            ("tag=team:growth&tag=owner:*", false),
        ];
        for (query, expected) in cases {
            assert_eq!(list(query).filter.matches(&t), expected, "{query}");
        }
    }

    #[test]
    fn id_filters_or_within_and_and_across() {
        let t = unit_test("n", &[]);
        let cases = [
            (format!("service_id={}", id(2)), true),
            (format!("service_id={}&service_id={}", id(9), id(2)), true),
            (format!("service_id={}&persona_id={}", id(2), id(9)), false),
            (format!("metric_id={}", id(5)), true),
            (format!("metric_id={}", id(6)), false),
            ("creator=acme,alice".to_owned(), true),
            ("creator=acme,bob".to_owned(), false),
            ("is_deleted=true".to_owned(), false),
            ("is_deleted=false".to_owned(), true),
        ];
        for (query, expected) in cases {
            assert_eq!(list(&query).filter.matches(&t), expected, "{query}");
        }
    }

    #[test]
    fn search_terms_are_literal_case_insensitive_and_all_required() {
        let t = unit_test("Signup Happy Path", &[]);
        let search = |text: &str| {
            let raw = form_urlencoded::Serializer::new(String::new())
                .append_pair("query", text)
                .finish();
            parse_search_query("acme", &QueryParams::parse(Some(&raw))).unwrap()
        };
        assert!(search("signup").filter.matches(&t));
        assert!(
            search("HAPPY sign-up").filter.matches(&t),
            "description holds sign-up"
        );
        assert!(
            search("(v2.0)").filter.matches(&t),
            "regex characters are literal"
        );
        assert!(!search("v2.0.").filter.matches(&t));
        assert!(!search("signup sad").filter.matches(&t));
    }

    #[test]
    fn search_terms_match_whatever_the_form_of_sigma() {
        // Found by fuzzing (search_query, minimized to `query=s\x0bΣ`): the name "sΣ", lower-cased
        // whole, ends in "ς", so the term "Σ" (alone, "σ") was not found, though MongoDB finds it.
        let search = |text: &str| {
            let raw = form_urlencoded::Serializer::new(String::new())
                .append_pair("query", text)
                .finish();
            parse_search_query("acme", &QueryParams::parse(Some(&raw))).unwrap()
        };
        assert!(search("s\u{b}Σ").filter.matches(&unit_test("sΣ", &[])));
        for term in ["Σ", "σ", "ς", "ΟΔΟΣ", "οδος"] {
            assert!(
                search(term).filter.matches(&unit_test("ΟΔΟΣ", &[])),
                "{term}"
            );
            assert!(
                search(term).filter.matches(&unit_test("σοδος", &[])),
                "{term}"
            );
        }
    }

    #[test]
    fn bad_list_parameters_are_all_reported() {
        let raw = "limit=501&continuation_token=-1&id=XYZ&tag=novalue&creator=alice&sort_by=-size&is_deleted=maybe";
        let problems = parse_list_query("acme", &QueryParams::parse(Some(raw))).unwrap_err();
        assert_eq!(problems.len(), 7, "{problems:?}");
    }

    #[test]
    fn sort_orders_then_breaks_ties_on_id() {
        let mut a = unit_test("b", &[]);
        let mut b = unit_test("a", &[]);
        a.id = id(1);
        b.id = id(2);
        let by_name = list("sort_by=name").sort;
        assert_eq!(compare(&by_name, &a, &b), Ordering::Greater);
        let by_updated_desc = list("sort_by=-updated_at").sort;
        assert_eq!(
            compare(&by_updated_desc, &a, &b),
            Ordering::Less,
            "equal timestamps fall back to id"
        );
    }
}
