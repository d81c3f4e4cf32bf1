//! The query model shared by both stores: which unit tests a list or search selects, in which order,
//! and the facet values (`filter_values`) over them. The embedded store evaluates it directly; the
//! MongoDB store translates it. Reading it from a query string is `query_string`'s business.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use super::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserInfo};

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
#[derive(Debug, Clone, PartialEq)]
pub struct UnitTestFilter {
    pub org_id: OrgId,
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
    pub fn for_org(org_id: &OrgId) -> Self {
        Self {
            org_id: org_id.clone(),
            ids: Vec::new(),
            service_ids: Vec::new(),
            persona_ids: Vec::new(),
            scenario_ids: Vec::new(),
            metric_ids: Vec::new(),
            creators: Vec::new(),
            tags: BTreeMap::new(),
            is_deleted: None,
            terms: Vec::new(),
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

/// A field unit tests can be sorted by: its one name (in `sort_by`, and the MongoDB field it
/// becomes) and its one comparison, used by [`compare`] on unit tests and by the embedded catalog on
/// its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    UpdatedAt,
    CreatedAt,
    Name,
}

impl SortField {
    pub const ALL: [SortField; 3] = [Self::UpdatedAt, Self::CreatedAt, Self::Name];

    pub fn name(self) -> &'static str {
        match self {
            Self::UpdatedAt => "updated_at",
            Self::CreatedAt => "created_at",
            Self::Name => "name",
        }
    }

    /// The field called `name`, if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// `a` against `b` by this field alone, ascending.
    pub fn compare(self, a: &SortFields<'_>, b: &SortFields<'_>) -> Ordering {
        match self {
            Self::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            Self::CreatedAt => a.created_at.cmp(&b.created_at),
            Self::Name => a.name.cmp(b.name),
        }
    }
}

/// What a sort reads of a unit test, or of the embedded catalog's compact row of one.
pub struct SortFields<'a> {
    id: ObjectIdHex,
    updated_at: Timestamp,
    created_at: Timestamp,
    name: &'a str,
}

impl<'a> SortFields<'a> {
    pub fn new(
        id: ObjectIdHex,
        updated_at: Timestamp,
        created_at: Timestamp,
        name: &'a str,
    ) -> Self {
        Self {
            id,
            updated_at,
            created_at,
            name,
        }
    }
}

/// Whatever [`compare`] can sort.
pub trait Sortable {
    fn sort_fields(&self) -> SortFields<'_>;
}

impl Sortable for UnitTest {
    fn sort_fields(&self) -> SortFields<'_> {
        SortFields::new(self.id, self.updated_at, self.created_at, &self.name)
    }
}

impl<T: Sortable + ?Sized> Sortable for &T {
    fn sort_fields(&self) -> SortFields<'_> {
        (**self).sort_fields()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

/// Compares two unit tests (or rows) by `sort`, then by id ascending so every order is total.
pub fn compare<T: Sortable + ?Sized>(sort: &[SortKey], a: &T, b: &T) -> Ordering {
    let (a, b) = (a.sort_fields(), b.sort_fields());
    sort.iter()
        .map(|key| {
            let ord = key.field.compare(&a, &b);
            if key.descending { ord.reverse() } else { ord }
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
        .then_with(|| a.id.cmp(&b.id))
}

/// What a caller asked of the list endpoint, as parsed from its query string; the service adds its
/// rules (facets on the first page only) to make a [`ListQuery`].
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub filter: UnitTestFilter,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: u32,
}

/// What a caller asked of the search endpoint: filters and terms. Which unit tests search may show,
/// in which order and how many are the service's rules.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub filter: UnitTestFilter,
}

/// One page of a list: filter, order, offset and size, and whether to compute facets.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub filter: UnitTestFilter,
    pub sort: Vec<SortKey>,
    pub offset: u64,
    pub limit: u32,
    pub with_facets: bool,
    /// Keyset paging: only unit tests whose id is above this one. In id order (`sort` empty, as
    /// the export asks) each page starts where the last one ended, so it costs its own size on
    /// both stores (an offset is walked past on every page: quadratic over a million on
    /// MongoDB) and a unit test removed meanwhile shifts nothing. Facets still describe the
    /// whole filter.
    pub after: Option<ObjectIdHex>,
}

impl ListQuery {
    /// Whether `doc` is on the query's pages: the filter, and above `after`.
    pub fn selects(&self, doc: &UnitTest) -> bool {
        self.filter.matches(doc) && self.after.is_none_or(|after| doc.id > after)
    }
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

impl ListPage {
    /// No unit tests, nothing after them, no facets.
    pub fn empty() -> Self {
        Self {
            items: Vec::new(),
            has_more: false,
            filter_values: None,
        }
    }
}

/// Default and bounds of `limit` (the contract's 0–500, default 50).
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;
/// Search answers at most this many unit tests.
pub const SEARCH_LIMIT: u32 = 100;
