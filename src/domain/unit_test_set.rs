//! The simulation unit test set: a named list of unit tests, each with how many times to run it
//! (collection `simulation_unit_test_set`), its create and update requests, and which sets a list
//! or search selects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::problems::{self as read, FieldProblem, Loc, Obj, Problems};
use super::query::TagValueFilter;
use super::requests::tags;
use super::search::search_text;
use super::{ObjectIdHex, OrgId, Tag, Timestamp, UserInfo, limits};

/// One entry of a set: a unit test and how many times a run of the set runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitTestRun {
    pub unit_test_id: ObjectIdHex,
    pub run_count: u64,
}

/// A stored simulation unit test set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitTestSet {
    pub id: ObjectIdHex,
    pub org_id: OrgId,
    pub name: String,
    pub description: Option<String>,
    pub unit_test_runs: Vec<UnitTestRun>,
    /// Runs are not simtest's business: always `null` here, kept for the wire format.
    pub last_triggered_run_id: Option<String>,
    pub tags: Vec<Tag>,
    pub is_deleted: bool,
    pub creator: UserInfo,
    pub updated_by: UserInfo,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl UnitTestSet {
    /// The distinct unit tests the set lists.
    pub fn unit_test_ids(&self) -> BTreeSet<ObjectIdHex> {
        self.unit_test_runs.iter().map(|r| r.unit_test_id).collect()
    }

    /// Whether a set that is not deleted lists `unit_test_id`.
    pub fn holds(&self, unit_test_id: ObjectIdHex) -> bool {
        !self.is_deleted
            && self
                .unit_test_runs
                .iter()
                .any(|r| r.unit_test_id == unit_test_id)
    }

    /// The folded text search terms are looked for in (name and description, as for unit tests).
    pub fn search_text(&self) -> String {
        search_text(&self.name, self.description.as_deref().unwrap_or(""))
    }

    /// The same set with its bookkeeping (`updated_*`) set aside, to tell a change from a no-op.
    pub fn same_content(&self, other: &UnitTestSet) -> bool {
        let mut a = self.clone();
        a.updated_at = other.updated_at;
        a.updated_by = other.updated_by.clone();
        a == *other
    }
}

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewUnitTestSet {
    pub name: String,
    pub description: Option<String>,
    pub unit_test_runs: Vec<UnitTestRun>,
    pub tags: Vec<Tag>,
}

/// A validated update request: `None` leaves a field as it is. `description: Some(None)` clears
/// it (`null`); absent or `{}` (the original's "not set") leaves it.
#[derive(Debug, Clone, Default)]
pub struct UnitTestSetPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub unit_test_runs: Option<Vec<UnitTestRun>>,
    pub tags: Option<Vec<Tag>>,
}

impl UnitTestSetPatch {
    /// Applies the patch to `set`'s content (bookkeeping aside).
    pub fn apply(&self, set: &mut UnitTestSet) {
        if let Some(name) = &self.name {
            set.name.clone_from(name);
        }
        if let Some(description) = &self.description {
            set.description.clone_from(description);
        }
        if let Some(runs) = &self.unit_test_runs {
            set.unit_test_runs.clone_from(runs);
        }
        if let Some(tags) = &self.tags {
            set.tags.clone_from(tags);
        }
    }
}

const FIELDS: [&str; 4] = ["name", "description", "unit_test_runs", "tags"];

impl NewUnitTestSet {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldProblem>> {
        let mut p = Problems::default();
        let Some(obj) = Obj::read(body, Loc::root("body"), &mut p) else {
            return Err(p.into_vec());
        };
        obj.reject_unknown(&FIELDS, &mut p);
        let name = obj
            .required("name", &mut p)
            .and_then(|(v, l)| read::stripped_nonempty(v, &l, limits::NAME_CHARS, &mut p));
        // Required, but `null` is a value.
        let description = obj
            .required("description", &mut p)
            .and_then(|(v, l)| nullable_description(v, &l, &mut p));
        let runs = obj
            .required("unit_test_runs", &mut p)
            .and_then(|(v, l)| unit_test_runs(v, &l, &mut p));
        let tags = obj
            .required("tags", &mut p)
            .and_then(|(v, l)| tags(v, &l, &mut p));
        let built = (|| {
            Some(NewUnitTestSet {
                name: name?,
                description: description?,
                unit_test_runs: runs?,
                tags: tags?,
            })
        })();
        match built {
            Some(new) if p.is_empty() => Ok(new),
            _ => Err(p.into_vec()),
        }
    }
}

impl UnitTestSetPatch {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldProblem>> {
        let mut p = Problems::default();
        let Some(obj) = Obj::read(body, Loc::root("body"), &mut p) else {
            return Err(p.into_vec());
        };
        obj.reject_unknown(&FIELDS, &mut p);
        let description = match obj.map.get("description") {
            None => None,
            Some(Value::Object(m)) if m.is_empty() => None,
            Some(v) => nullable_description(v, &obj.loc.key("description"), &mut p),
        };
        let patch = UnitTestSetPatch {
            name: obj
                .optional("name")
                .and_then(|(v, l)| read::stripped_nonempty(v, &l, limits::NAME_CHARS, &mut p)),
            description,
            unit_test_runs: obj
                .optional("unit_test_runs")
                .and_then(|(v, l)| unit_test_runs(v, &l, &mut p)),
            tags: obj.optional("tags").and_then(|(v, l)| tags(v, &l, &mut p)),
        };
        p.finish(|| patch)
    }
}

/// `null` or a trimmed non-empty string.
fn nullable_description(v: &Value, loc: &Loc, p: &mut Problems) -> Option<Option<String>> {
    match v {
        Value::Null => Some(None),
        v => read::stripped_nonempty(v, loc, limits::DESCRIPTION_CHARS, p).map(Some),
    }
}

/// At least one entry, each `{unit_test_id, run_count > 0}`, kept in the order given.
fn unit_test_runs(v: &Value, loc: &Loc, p: &mut Problems) -> Option<Vec<UnitTestRun>> {
    let Value::Array(items) = v else {
        p.push(loc, "list_type", "Input should be a valid list");
        return None;
    };
    if items.is_empty() {
        p.push(loc, "too_short", "List should have at least 1 item");
        return None;
    }
    if items.len() > limits::SET_UNIT_TESTS {
        p.push(
            loc,
            "too_long",
            format!("List should have at most {} items", limits::SET_UNIT_TESTS),
        );
        return None;
    }
    let mut runs = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_loc = loc.index(i);
        let Some(obj) = Obj::read(item, item_loc.clone(), p) else {
            ok = false;
            continue;
        };
        obj.reject_unknown(&["unit_test_id", "run_count"], p);
        let id = obj
            .required("unit_test_id", p)
            .and_then(|(v, l)| read::object_id(v, &l, p));
        let count = obj
            .required("run_count", p)
            .and_then(|(v, l)| read::int_between(v, &l, 0, i64::MAX, p));
        match (id, count) {
            (Some(unit_test_id), Some(n)) => runs.push(UnitTestRun {
                unit_test_id,
                run_count: n as u64,
            }),
            _ => ok = false,
        }
    }
    ok.then_some(runs)
}

/// Which sets of one org a list or search selects. Values of one field are OR-ed, fields AND-ed;
/// tag filters sharing a key are OR-ed, different keys AND-ed (as for unit tests).
#[derive(Debug, Clone)]
pub struct UnitTestSetFilter {
    pub org_id: OrgId,
    pub ids: Vec<ObjectIdHex>,
    /// Sets listing any of these unit tests.
    pub unit_test_ids: Vec<ObjectIdHex>,
    pub creators: Vec<UserInfo>,
    pub tags: BTreeMap<String, Vec<TagValueFilter>>,
    pub is_deleted: Option<bool>,
    /// Case-folded search terms; each must occur in the name or the description.
    pub terms: Vec<String>,
}

impl UnitTestSetFilter {
    pub fn for_org(org_id: &OrgId) -> Self {
        Self {
            org_id: org_id.clone(),
            ids: Vec::new(),
            unit_test_ids: Vec::new(),
            creators: Vec::new(),
            tags: BTreeMap::new(),
            is_deleted: None,
            terms: Vec::new(),
        }
    }

    /// The definition both stores answer to (the MongoDB translation and the embedded index are
    /// checked against it).
    pub fn matches(&self, s: &UnitTestSet) -> bool {
        fn any_of<T: PartialEq>(wanted: &[T], value: &T) -> bool {
            wanted.is_empty() || wanted.contains(value)
        }
        s.org_id == self.org_id
            && self.is_deleted.is_none_or(|d| d == s.is_deleted)
            && any_of(&self.ids, &s.id)
            && any_of(&self.creators, &s.creator)
            && (self.unit_test_ids.is_empty()
                || s.unit_test_runs
                    .iter()
                    .any(|r| self.unit_test_ids.contains(&r.unit_test_id)))
            && self.tags.iter().all(|(key, wanted)| {
                s.tags
                    .iter()
                    .any(|t| &t.key == key && wanted.iter().any(|w| w.accepts(t.value.as_deref())))
            })
            && (self.terms.is_empty() || {
                let text = s.search_text();
                self.terms.iter().all(|term| text.contains(term.as_str()))
            })
    }
}

/// What a caller asked of the set list endpoint, as parsed from its query string.
#[derive(Debug, Clone)]
pub struct SetListRequest {
    pub filter: UnitTestSetFilter,
    pub updated_at_descending: Option<bool>,
    pub offset: u64,
    pub limit: u32,
}

/// One page of sets: filter, order (`updated_at`, then id ascending), offset, size, and whether
/// to compute facets. The contract sorts sets by `updated_at` only; `sort` holds its directions
/// in order (a repeat adds nothing), empty for the default id order.
#[derive(Debug, Clone)]
pub struct UnitTestSetQuery {
    pub filter: UnitTestSetFilter,
    /// `Some(descending)` to sort by `updated_at`; `None` for id order.
    pub updated_at_descending: Option<bool>,
    pub offset: u64,
    pub limit: u32,
    pub with_facets: bool,
}

impl UnitTestSetQuery {
    /// The order a page is cut from: by `updated_at` if asked, ties (and the default) by id.
    pub fn compare(&self, a: &UnitTestSet, b: &UnitTestSet) -> std::cmp::Ordering {
        let by_time = match self.updated_at_descending {
            Some(true) => b.updated_at.cmp(&a.updated_at),
            Some(false) => a.updated_at.cmp(&b.updated_at),
            None => std::cmp::Ordering::Equal,
        };
        by_time.then_with(|| a.id.cmp(&b.id))
    }
}

/// The distinct values of the filterable fields over every set a filter selects.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SetFilterValues {
    pub creators: Vec<UserInfo>,
    pub unit_test_ids: Vec<ObjectIdHex>,
    pub tags: Vec<String>,
}

impl SetFilterValues {
    /// The facets of `sets`, sorted and without repeats.
    pub fn of<'a>(sets: impl IntoIterator<Item = &'a UnitTestSet>) -> Self {
        let mut creators = BTreeSet::new();
        let mut unit_test_ids = BTreeSet::new();
        let mut tags = BTreeSet::new();
        for s in sets {
            if !creators.contains(&s.creator) {
                creators.insert(s.creator.clone());
            }
            unit_test_ids.extend(s.unit_test_runs.iter().map(|r| r.unit_test_id));
            for t in &s.tags {
                if !tags.contains(&t.key) {
                    tags.insert(t.key.clone());
                }
            }
        }
        Self {
            creators: creators.into_iter().collect(),
            unit_test_ids: unit_test_ids.into_iter().collect(),
            tags: tags.into_iter().collect(),
        }
    }
}

/// A page of sets as a store returns it.
#[derive(Debug, Clone)]
pub struct SetPage {
    pub items: Vec<Arc<UnitTestSet>>,
    pub has_more: bool,
    pub filter_values: Option<SetFilterValues>,
}

impl SetPage {
    /// The page `query` cuts from `matching` (every set its filter selects, in any order): the
    /// one definition of paging, facets and order, which the embedded store answers with and the
    /// MongoDB store is tested against.
    pub fn cut(query: &UnitTestSetQuery, mut matching: Vec<Arc<UnitTestSet>>) -> Self {
        let filter_values = query
            .with_facets
            .then(|| SetFilterValues::of(matching.iter().map(|s| s.as_ref())));
        matching.sort_by(|a, b| query.compare(a, b));
        let start = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(query.limit as usize);
        let has_more = matching.len() > end;
        let items = matching
            .into_iter()
            .skip(start)
            .take(query.limit as usize)
            .collect();
        Self {
            items,
            has_more,
            filter_values,
        }
    }
}
