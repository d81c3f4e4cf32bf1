//! The list and search query strings, read into [`ListRequest`] and [`SearchRequest`]: every
//! problem located under `query`, all at once. What a request then means (which unit tests search
//! may show, when facets are computed) is the service's business, not the parser's.

use std::collections::BTreeMap;

use super::limits;
use super::problems::{Loc, Problems};
use super::query::{
    DEFAULT_LIMIT, ListRequest, MAX_LIMIT, SearchRequest, SortField, SortKey, TagValueFilter,
    UnitTestFilter, fold_case,
};
use super::unit_test_set::{SetListRequest, UnitTestSetFilter};
use super::{FieldProblem, ObjectIdHex, OrgId, UserInfo};

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
            org_id: org_id.into(),
            user_id: user_id.into(),
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
    let Some(field) = SortField::from_name(name) else {
        return Err((
            "sort_field",
            "Sort by `updated_at`, `created_at` or `name`, optionally prefixed by `+` or `-`"
                .to_owned(),
        ));
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
    filter.tags = read_tags(q, p);
}

/// The list endpoint's query string as a [`ListRequest`] for `org_id`.
pub fn parse_list_request(
    org_id: &OrgId,
    q: &QueryParams,
) -> Result<ListRequest, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let mut filter = UnitTestFilter::for_org(org_id);
    filter.ids = q.many("id", true, &mut p, parse_id);
    read_common_filters(q, &mut filter, &mut p);
    filter.is_deleted = read_is_deleted(q, &mut p);
    let sort = q.many("sort_by", false, &mut p, parse_sort);
    let limit = read_limit(q, DEFAULT_LIMIT, MAX_LIMIT, &mut p);
    let offset = read_offset(q, &mut p);
    p.finish(|| ListRequest {
        filter,
        sort,
        offset,
        limit,
    })
}

/// The search endpoint's query string as a [`SearchRequest`]: the filters list has (no `id`, no
/// `is_deleted`) and `query`, split into case-folded terms without repeats.
pub fn parse_search_request(
    org_id: &OrgId,
    q: &QueryParams,
) -> Result<SearchRequest, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let mut filter = UnitTestFilter::for_org(org_id);
    read_common_filters(q, &mut filter, &mut p);
    filter.terms = read_terms(q, &mut p);
    p.finish(|| SearchRequest { filter })
}

/// `is_deleted`: absent means no filter.
fn read_is_deleted(q: &QueryParams, p: &mut Problems) -> Option<bool> {
    q.single("is_deleted", p).and_then(|raw| {
        let b = parse_bool(raw);
        if b.is_none() {
            p.push(
                &Loc::root("query").key("is_deleted"),
                "bool_parsing",
                "Input should be a valid boolean",
            );
        }
        b
    })
}

/// `limit`, between 0 and `max`.
fn read_limit(q: &QueryParams, default: u32, max: u32, p: &mut Problems) -> u32 {
    match q.single("limit", p) {
        None => default,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (0..=i64::from(max)).contains(&n) => n as u32,
            Ok(_) => {
                p.push(
                    &Loc::root("query").key("limit"),
                    "range",
                    format!("Input should be between 0 and {max}"),
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
    }
}

/// `continuation_token`: the offset of the page.
fn read_offset(q: &QueryParams, p: &mut Problems) -> u64 {
    match q.single("continuation_token", p) {
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
    }
}

/// `query`, required: split on white space into case-folded terms without repeats.
fn read_terms(q: &QueryParams, p: &mut Problems) -> Vec<String> {
    let loc = Loc::root("query").key("query");
    let mut terms: Vec<String> = Vec::new();
    match q.single("query", p).map(str::trim) {
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
        }
    }
    terms
}

/// Tag filters as a map from key to the values asked of it.
fn read_tags(q: &QueryParams, p: &mut Problems) -> BTreeMap<String, Vec<TagValueFilter>> {
    let mut tags: BTreeMap<String, Vec<TagValueFilter>> = BTreeMap::new();
    for (key, value) in q.many("tag", false, p, parse_tag) {
        let wanted = tags.entry(key).or_default();
        if !wanted.contains(&value) {
            wanted.push(value);
        }
    }
    tags
}

/// Most versions one history page holds, and the default.
pub const HISTORY_MAX_LIMIT: u32 = 100;
pub const HISTORY_DEFAULT_LIMIT: u32 = 20;

/// The history operation's query string: `limit`, and `continuation_token` (the version, in
/// milliseconds, the page starts at: the previous page's answer).
pub fn parse_history_request(q: &QueryParams) -> Result<(u32, Option<u64>), Vec<FieldProblem>> {
    let mut p = Problems::default();
    let limit = read_limit(q, HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT, &mut p);
    let start = q
        .single("continuation_token", &mut p)
        .is_some()
        .then(|| read_offset(q, &mut p));
    p.finish(|| (limit, start))
}

/// The import operation's query string: `dry_run` and `atomic`, booleans, default false.
pub fn parse_import_options(q: &QueryParams) -> Result<(bool, bool), Vec<FieldProblem>> {
    let mut p = Problems::default();
    let flag = |name: &str, p: &mut Problems| {
        q.single(name, p).is_some_and(|raw| {
            let b = parse_bool(raw);
            if b.is_none() {
                p.push(
                    &Loc::root("query").key(name),
                    "bool_parsing",
                    "Input should be a valid boolean",
                );
            }
            b.unwrap_or(false)
        })
    };
    let dry_run = flag("dry_run", &mut p);
    let atomic = flag("atomic", &mut p);
    p.finish(|| (dry_run, atomic))
}

/// Most sets one list page holds, and the default (the contract's 0–20, default 20).
pub const SET_MAX_LIMIT: u32 = 20;

/// The set filters list and search share: `unit_test_id`, `creator`, `tag`.
fn read_set_filters(q: &QueryParams, filter: &mut UnitTestSetFilter, p: &mut Problems) {
    filter.unit_test_ids = q.many("unit_test_id", true, p, parse_id);
    filter.creators = q.many("creator", true, p, parse_creator);
    filter.tags = read_tags(q, p);
}

/// The set list endpoint's query string. Sets sort by `updated_at` only; the first `sort_by`
/// decides (a repeat of the same field cannot break a tie).
pub fn parse_set_list_request(
    org_id: &OrgId,
    q: &QueryParams,
) -> Result<SetListRequest, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let mut filter = UnitTestSetFilter::for_org(org_id);
    filter.ids = q.many("id", true, &mut p, parse_id);
    read_set_filters(q, &mut filter, &mut p);
    filter.is_deleted = read_is_deleted(q, &mut p);
    let sort = q.many("sort_by", false, &mut p, |raw| match parse_sort(raw) {
        Ok(SortKey {
            field: SortField::UpdatedAt,
            descending,
        }) => Ok(descending),
        _ => Err((
            "sort_field",
            "Sets sort by `updated_at`, optionally prefixed by `+` or `-`".to_owned(),
        )),
    });
    let limit = read_limit(q, SET_MAX_LIMIT, SET_MAX_LIMIT, &mut p);
    let offset = read_offset(q, &mut p);
    p.finish(|| SetListRequest {
        filter,
        updated_at_descending: sort.first().copied(),
        offset,
        limit,
    })
}

/// The set search endpoint's query string: `query` plus the filters list has (no `id`).
pub fn parse_set_search_request(
    org_id: &OrgId,
    q: &QueryParams,
) -> Result<UnitTestSetFilter, Vec<FieldProblem>> {
    let mut p = Problems::default();
    let mut filter = UnitTestSetFilter::for_org(org_id);
    read_set_filters(q, &mut filter, &mut p);
    filter.terms = read_terms(q, &mut p);
    p.finish(|| filter)
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;
    use crate::domain::query::compare;
    use crate::domain::{Criterion, SuccessCriterion, Tag, Timestamp, UnitTest};

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

    fn list(query: &str) -> ListRequest {
        parse_list_request(&"acme".into(), &QueryParams::parse(Some(query))).expect("valid query")
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
            parse_search_request(&"acme".into(), &QueryParams::parse(Some(&raw))).unwrap()
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
            parse_search_request(&"acme".into(), &QueryParams::parse(Some(&raw))).unwrap()
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
        let problems =
            parse_list_request(&"acme".into(), &QueryParams::parse(Some(raw))).unwrap_err();
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
