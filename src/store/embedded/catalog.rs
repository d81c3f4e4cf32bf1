//! The embedded store's in-memory index of unit tests: which ones a list or search selects, in
//! which order, and their facets, answered without reading a document. The documents stay in redb;
//! a page reads only its own. Without this, every list decoded the whole org (a full scan per
//! request, 100 ms at 100k unit tests); with it a page costs about the same at 10k or 1M.
//!
//! Per org it keeps a compact row per unit test (the fields a query looks at, strings interned to
//! numbers), a bitmap of rows per filterable value (posting lists: a filter is a few bitmap
//! unions and intersections) and the rows sorted by each sortable field (a page is a slice, or a
//! short walk). It is rebuilt from redb at start and changed after each committed write, so it
//! never holds anything redb does not.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;

use roaring::RoaringBitmap;

use crate::domain::query::{
    FilterValues, ListQuery, SortField, SortFields, SortKey, Sortable, TagValueFilter,
    UnitTestFilter, compare, fold_case,
};
use crate::domain::{ObjectIdHex, Timestamp, UnitTest, UserInfo};

/// A row's number in its org, in the order the unit tests were added; never reused (deletes are
/// soft, so a unit test keeps its row for good).
type Slot = u32;

/// The index of every org.
#[derive(Default)]
pub struct Catalog {
    orgs: HashMap<String, OrgIndex>,
}

/// What a list page is, before its documents are read.
#[derive(Debug, PartialEq)]
pub struct PagePlan {
    /// The page's unit tests, in order, each with the version (`updated_at`) the plan saw.
    pub ids: Vec<(ObjectIdHex, Timestamp)>,
    pub has_more: bool,
    pub filter_values: Option<FilterValues>,
}

impl Catalog {
    /// The index of `docs` (any order).
    #[cfg(test)]
    pub fn build(docs: impl IntoIterator<Item = UnitTest>) -> Self {
        let mut catalog = Self::default();
        for doc in docs {
            catalog.load(&doc);
        }
        catalog.loaded();
        catalog
    }

    /// Adds `doc` while loading: cheaper than [`Catalog::upsert`], but the orders are not kept
    /// until [`Catalog::loaded`].
    pub fn load(&mut self, doc: &UnitTest) {
        self.orgs.entry(doc.org_id.clone()).or_default().push(doc);
    }

    /// Sorts the orders once every unit test is loaded.
    pub fn loaded(&mut self) {
        for org in self.orgs.values_mut() {
            org.sort_orders();
        }
    }

    /// Records a committed insert or replace of `doc`.
    pub fn upsert(&mut self, doc: &UnitTest) {
        let org = self.orgs.entry(doc.org_id.clone()).or_default();
        match org.slots.get(&doc.id) {
            Some(&slot) => org.replace(slot, doc),
            None => org.insert(doc),
        }
    }

    /// The page `query` selects.
    pub fn plan(&self, query: &ListQuery) -> PagePlan {
        match self.orgs.get(&query.filter.org_id) {
            Some(org) => org.plan(query),
            None => PagePlan {
                ids: Vec::new(),
                has_more: false,
                filter_values: query.with_facets.then(FilterValues::default),
            },
        }
    }
}

/// Distinct values numbered in the order they were first seen.
struct Interner<T> {
    numbers: HashMap<T, u32>,
    values: Vec<T>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            numbers: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<T: Hash + Eq + Clone> Interner<T> {
    fn intern(&mut self, value: &T) -> u32 {
        if let Some(&n) = self.numbers.get(value) {
            return n;
        }
        let n = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(value.clone());
        self.numbers.insert(value.clone(), n);
        n
    }

    fn number<Q: Hash + Eq + ?Sized>(&self, value: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
    {
        self.numbers.get(value).copied()
    }

    fn value(&self, n: u32) -> &T {
        &self.values[n as usize]
    }
}

/// Rows holding each value of one field.
struct Postings<K>(HashMap<K, RoaringBitmap>);

impl<K> Default for Postings<K> {
    fn default() -> Self {
        Self(HashMap::new())
    }
}

impl<K: Hash + Eq + Copy> Postings<K> {
    fn add(&mut self, key: K, slot: Slot) {
        self.0.entry(key).or_default().insert(slot);
    }

    fn remove(&mut self, key: K, slot: Slot) {
        if let Some(rows) = self.0.get_mut(&key) {
            rows.remove(slot);
            if rows.is_empty() {
                self.0.remove(&key);
            }
        }
    }

    /// Rows holding any of `keys` (`None`: a value the org never had).
    fn any(&self, keys: impl IntoIterator<Item = Option<K>>) -> RoaringBitmap {
        let mut rows = RoaringBitmap::new();
        for key in keys.into_iter().flatten() {
            if let Some(with) = self.0.get(&key) {
                rows |= with;
            }
        }
        rows
    }

    /// The values held by at least one of `rows` (every row when `None`), among `only` when
    /// given.
    fn present(&self, rows: Option<&RoaringBitmap>, only: Option<&[K]>) -> Vec<K> {
        let held = |with: &RoaringBitmap| rows.is_none_or(|rows| !with.is_disjoint(rows));
        match only {
            Some(keys) => keys
                .iter()
                .filter(|key| self.0.get(key).is_some_and(held))
                .copied()
                .collect(),
            None => self
                .0
                .iter()
                .filter(|(_, with)| held(with))
                .map(|(key, _)| *key)
                .collect(),
        }
    }
}

/// What a query looks at in one unit test; strings other than the name are interned.
struct Row {
    id: ObjectIdHex,
    created_at: Timestamp,
    updated_at: Timestamp,
    name: Box<str>,
    /// `fold_case(name) + "\n" + fold_case(description)`. Search terms hold no whitespace, so a
    /// term occurs here exactly when it occurs in the name or in the description.
    text: Box<str>,
    service: u32,
    persona: u32,
    scenario: u32,
    metrics: Box<[u32]>,
    creator: u32,
    /// (key, value) numbers in `words`.
    tags: Box<[(u32, Option<u32>)]>,
    is_deleted: bool,
}

/// The orders kept sorted: by id (the default) and by each sortable field, each ascending with
/// ties broken by id.
const ORDERS: [Option<SortField>; 4] = [
    None,
    Some(SortField::UpdatedAt),
    Some(SortField::CreatedAt),
    Some(SortField::Name),
];

fn order_number(field: Option<SortField>) -> usize {
    match field {
        None => 0,
        Some(SortField::UpdatedAt) => 1,
        Some(SortField::CreatedAt) => 2,
        Some(SortField::Name) => 3,
    }
}

/// `a` against `b` by `field` alone (`None`: no field, all equal).
fn by_field(field: Option<SortField>, a: &Row, b: &Row) -> Ordering {
    field.map_or(Ordering::Equal, |field| {
        field.compare(&a.sort_fields(), &b.sort_fields())
    })
}

impl Sortable for Row {
    fn sort_fields(&self) -> SortFields<'_> {
        SortFields::new(self.id, self.updated_at, self.created_at, &self.name)
    }
}

#[derive(Default)]
struct OrgIndex {
    rows: Vec<Row>,
    slots: HashMap<ObjectIdHex, Slot>,
    /// Service, persona, scenario and metric ids.
    refs: Interner<ObjectIdHex>,
    creators: Interner<UserInfo>,
    /// Tag keys and values.
    words: Interner<String>,
    all: RoaringBitmap,
    deleted: RoaringBitmap,
    by_service: Postings<u32>,
    by_persona: Postings<u32>,
    by_scenario: Postings<u32>,
    by_metric: Postings<u32>,
    by_creator: Postings<u32>,
    by_tag_key: Postings<u32>,
    by_tag: Postings<(u32, Option<u32>)>,
    /// Slots sorted as [`ORDERS`] says.
    orders: [Vec<Slot>; 4],
}

impl OrgIndex {
    fn row(&mut self, doc: &UnitTest) -> Row {
        let mut text = fold_case(&doc.name);
        text.push('\n');
        text.push_str(&fold_case(&doc.description));
        let mut metrics: Vec<u32> = doc
            .success_criterions
            .iter()
            .map(|c| self.refs.intern(&c.metric_id))
            .collect();
        metrics.sort_unstable();
        metrics.dedup();
        let tags = doc
            .tags
            .iter()
            .map(|t| {
                let key = self.words.intern(&t.key);
                (key, t.value.as_ref().map(|v| self.words.intern(v)))
            })
            .collect();
        Row {
            id: doc.id,
            created_at: doc.created_at,
            updated_at: doc.updated_at,
            name: doc.name.as_str().into(),
            text: text.into(),
            service: self.refs.intern(&doc.service_id),
            persona: self.refs.intern(&doc.persona_id),
            scenario: self.refs.intern(&doc.scenario_id),
            metrics: metrics.into(),
            creator: self.creators.intern(&doc.creator),
            tags,
            is_deleted: doc.is_deleted,
        }
    }

    /// Adds the row of `slot` to the postings, or (`link: false`) takes it out.
    fn post(&mut self, slot: Slot, link: bool) {
        let row = &self.rows[slot as usize];
        let edit = |postings: &mut Postings<u32>, key: u32| {
            if link {
                postings.add(key, slot)
            } else {
                postings.remove(key, slot)
            }
        };
        edit(&mut self.by_service, row.service);
        edit(&mut self.by_persona, row.persona);
        edit(&mut self.by_scenario, row.scenario);
        edit(&mut self.by_creator, row.creator);
        for &metric in &row.metrics {
            edit(&mut self.by_metric, metric);
        }
        for &(key, value) in &row.tags {
            edit(&mut self.by_tag_key, key);
            if link {
                self.by_tag.add((key, value), slot);
            } else {
                self.by_tag.remove((key, value), slot);
            }
        }
        if link && row.is_deleted {
            self.deleted.insert(slot);
        } else {
            self.deleted.remove(slot);
        }
    }

    /// Adds `doc` as a new row, without placing it in the orders.
    fn push(&mut self, doc: &UnitTest) -> Slot {
        let slot = Slot::try_from(self.rows.len()).expect("fewer than 2^32 unit tests per org");
        let row = self.row(doc);
        self.rows.push(row);
        self.slots.insert(doc.id, slot);
        self.all.insert(slot);
        self.post(slot, true);
        for order in &mut self.orders {
            order.push(slot);
        }
        slot
    }

    fn sort_orders(&mut self) {
        let rows = &self.rows;
        for (field, order) in ORDERS.iter().zip(&mut self.orders) {
            order.sort_unstable_by(|&a, &b| {
                let (a, b) = (&rows[a as usize], &rows[b as usize]);
                by_field(*field, a, b).then_with(|| a.id.cmp(&b.id))
            });
        }
    }

    /// Where the row `like` belongs (or is) in order `k`.
    fn position(&self, k: usize, like: &Row) -> usize {
        let rows = &self.rows;
        self.orders[k].partition_point(|&s| {
            let row = &rows[s as usize];
            by_field(ORDERS[k], row, like)
                .then_with(|| row.id.cmp(&like.id))
                .is_lt()
        })
    }

    fn insert(&mut self, doc: &UnitTest) {
        let slot = self.push(doc);
        for k in 0..ORDERS.len() {
            // `push` appended the slot; ids mostly grow, so this is usually a no-op move.
            self.orders[k].pop();
            let at = self.position(k, &self.rows[slot as usize]);
            self.orders[k].insert(at, slot);
        }
    }

    fn replace(&mut self, slot: Slot, doc: &UnitTest) {
        self.post(slot, false);
        let row = self.row(doc);
        for (k, field) in ORDERS.into_iter().enumerate() {
            let old = &self.rows[slot as usize];
            if by_field(field, old, &row).is_eq() {
                continue;
            }
            let at = self.position(k, old);
            self.orders[k].remove(at);
            let at = self.position(k, &row);
            self.orders[k].insert(at, slot);
        }
        self.rows[slot as usize] = row;
        self.post(slot, true);
    }

    /// The rows `filter` selects by its fields other than the search terms; `None` is every row.
    fn candidates(&self, filter: &UnitTestFilter) -> Option<RoaringBitmap> {
        let mut selected: Option<RoaringBitmap> = None;
        let mut narrow = |rows: RoaringBitmap| match &mut selected {
            Some(s) => *s &= rows,
            None => selected = Some(rows),
        };
        if !filter.ids.is_empty() {
            narrow(
                filter
                    .ids
                    .iter()
                    .filter_map(|id| self.slots.get(id))
                    .copied()
                    .collect(),
            );
        }
        let refs = |postings: &Postings<u32>, ids: &[ObjectIdHex]| {
            postings.any(ids.iter().map(|id| self.refs.number(id)))
        };
        for (postings, ids) in [
            (&self.by_service, &filter.service_ids),
            (&self.by_persona, &filter.persona_ids),
            (&self.by_scenario, &filter.scenario_ids),
            (&self.by_metric, &filter.metric_ids),
        ] {
            if !ids.is_empty() {
                narrow(refs(postings, ids));
            }
        }
        if !filter.creators.is_empty() {
            narrow(
                self.by_creator
                    .any(filter.creators.iter().map(|c| self.creators.number(c))),
            );
        }
        for (key, wanted) in &filter.tags {
            let Some(key) = self.words.number(key.as_str()) else {
                narrow(RoaringBitmap::new());
                continue;
            };
            let mut rows = RoaringBitmap::new();
            for value in wanted {
                match value {
                    TagValueFilter::Any => rows |= self.by_tag_key.any([Some(key)]),
                    TagValueFilter::Null => rows |= self.by_tag.any([Some((key, None))]),
                    TagValueFilter::Exact(v) => {
                        let v = self.words.number(v.as_str());
                        rows |= self.by_tag.any([v.map(|v| (key, Some(v)))]);
                    }
                }
            }
            narrow(rows);
        }
        match filter.is_deleted {
            None => {}
            Some(true) => narrow(self.deleted.clone()),
            Some(false) => match &mut selected {
                Some(s) => *s -= &self.deleted,
                None => selected = Some(&self.all - &self.deleted),
            },
        }
        selected
    }

    fn plan(&self, query: &ListQuery) -> PagePlan {
        let terms = &query.filter.terms;
        let mut candidates = self.candidates(&query.filter);
        let mut terms_left = !terms.is_empty();
        if terms_left && query.with_facets {
            // Facets need the whole match, so the terms are checked on every candidate first.
            let all = candidates.unwrap_or_else(|| self.all.clone());
            candidates = Some(all.iter().filter(|&s| self.has_terms(s, terms)).collect());
            terms_left = false;
        }
        let filter_values = query
            .with_facets
            .then(|| self.facets(candidates.as_ref(), &query.filter));
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = query.limit as usize;
        let keep = |s: Slot| {
            candidates.as_ref().is_none_or(|c| c.contains(s))
                && (!terms_left || self.has_terms(s, terms))
        };
        let (slots, has_more) = match primary_sort(&query.sort) {
            Some((field, descending)) => {
                let selected = (!terms_left).then(|| {
                    candidates
                        .as_ref()
                        .map_or(self.rows.len(), |c| c.len() as usize)
                });
                match selected {
                    // Every row, in a kept order: the page is a slice.
                    Some(_) if candidates.is_none() => {
                        let page: Vec<Slot> =
                            self.walk(field, descending, offset).take(limit).collect();
                        (page, offset.saturating_add(limit) < self.rows.len())
                    }
                    // Few rows, deep page: sorting the rows is cheaper than walking the order
                    // to find them. A walk takes about N / M steps per row of the page, each a
                    // bit test in order; a sort reads every matching row, each a cache miss
                    // (~20 steps), and then sorts them.
                    Some(m)
                        if offset.saturating_add(limit).saturating_mul(self.rows.len())
                            > m.saturating_mul(m).saturating_mul(20) =>
                    {
                        self.sorted_page(candidates.iter().flatten(), &query.sort, offset, limit)
                    }
                    _ => {
                        let mut matching = self.walk(field, descending, 0).filter(|&s| keep(s));
                        // Not `skip`: with `take(0)` it would never run, and the offset would
                        // be left for `has_more` to see.
                        matching.by_ref().take(offset).for_each(drop);
                        let page: Vec<Slot> = matching.by_ref().take(limit).collect();
                        let has_more = match selected {
                            Some(m) => offset.saturating_add(limit) < m,
                            None => matching.next().is_some(),
                        };
                        (page, has_more)
                    }
                }
            }
            // Several sort fields: no kept order fits, so sort the matches.
            None => {
                let matching: Box<dyn Iterator<Item = Slot>> = match &candidates {
                    Some(c) => Box::new(c.iter()),
                    None => Box::new(0..self.rows.len() as Slot),
                };
                let matching = matching.filter(|&s| !terms_left || self.has_terms(s, terms));
                self.sorted_page(matching, &query.sort, offset, limit)
            }
        };
        PagePlan {
            ids: slots
                .into_iter()
                .map(|s| {
                    let row = &self.rows[s as usize];
                    (row.id, row.updated_at)
                })
                .collect(),
            has_more,
            filter_values,
        }
    }

    fn has_terms(&self, slot: Slot, terms: &[String]) -> bool {
        let text = &self.rows[slot as usize].text;
        terms.iter().all(|term| text.contains(term.as_str()))
    }

    /// The page of `matching` in the order of `sort`, found by sorting just what it needs.
    fn sorted_page(
        &self,
        matching: impl Iterator<Item = Slot>,
        sort: &[SortKey],
        offset: usize,
        limit: usize,
    ) -> (Vec<Slot>, bool) {
        let mut slots: Vec<Slot> = matching.collect();
        let total = slots.len();
        let end = offset.saturating_add(limit).min(total);
        let cmp =
            |a: &Slot, b: &Slot| compare(sort, &self.rows[*a as usize], &self.rows[*b as usize]);
        if end < total && end > 0 {
            slots.select_nth_unstable_by(end - 1, cmp);
            slots.truncate(end);
        }
        slots.sort_unstable_by(cmp);
        let page = slots.get(offset.min(end)..end).unwrap_or_default().to_vec();
        (page, end < total)
    }

    /// Every slot from `start` in the order of `field` (the id when `None`), descending or not;
    /// ties are broken by id ascending in both directions, as MongoDB's `{field: ±1, _id: 1}`.
    fn walk(
        &self,
        field: Option<SortField>,
        descending: bool,
        start: usize,
    ) -> Box<dyn Iterator<Item = Slot> + '_> {
        let order = &self.orders[order_number(field)];
        if !descending {
            return Box::new(order.iter().skip(start).copied());
        }
        let n = order.len();
        if start >= n {
            return Box::new(std::iter::empty());
        }
        let rows = &self.rows;
        let same = move |i: usize, j: usize| {
            by_field(field, &rows[order[i] as usize], &rows[order[j] as usize]).is_eq()
        };
        // Start of the run of equal keys that ends just before `end`.
        let group_start = move |end: usize| {
            if end < 2 || !same(end - 2, end - 1) {
                return end - 1;
            }
            order[..end].partition_point(|&s| {
                by_field(field, &rows[s as usize], &rows[order[end - 1] as usize]).is_lt()
            })
        };
        // Descending by key, each run of equal keys kept ascending by id: find the run that holds
        // the `start`-th element of that order and the element's place in it.
        let last = n - 1 - start;
        let mut end = last
            + order[last..].partition_point(|&s| {
                by_field(field, &rows[s as usize], &rows[order[last] as usize]).is_le()
            });
        let mut begin = group_start(end);
        let mut i = begin + (start - (n - end));
        Box::new(std::iter::from_fn(move || {
            if i == end {
                if begin == 0 {
                    return None;
                }
                end = begin;
                begin = group_start(end);
                i = begin;
            }
            i += 1;
            Some(order[i - 1])
        }))
    }

    /// The distinct values over `rows` (every row when `None`).
    fn facets(&self, rows: Option<&RoaringBitmap>, filter: &UnitTestFilter) -> FilterValues {
        // Asking each value's posting list whether it meets `rows` costs at most one pass over
        // `rows` (or over a container) per value, a few ns per element; reading the matching rows
        // costs a cache miss or so per row, ~64 times more. Many values, few rows: read them.
        let values = self.by_service.0.len()
            + self.by_persona.0.len()
            + self.by_scenario.0.len()
            + self.by_metric.0.len()
            + self.by_creator.0.len()
            + self.by_tag_key.0.len();
        let containers = (self.rows.len() >> 16) + 1;
        let scan = rows.is_some_and(|r| {
            let m = r.len() as usize;
            m.saturating_mul(64) < values.saturating_mul(m.min(containers * 1024))
        });
        self.facets_by(rows, scan, filter)
    }

    /// The distinct values over `rows`, found by reading the rows (`scan`) or the postings.
    fn facets_by(
        &self,
        rows: Option<&RoaringBitmap>,
        scan: bool,
        filter: &UnitTestFilter,
    ) -> FilterValues {
        // A unit test has one creator, service, persona and scenario: where the filter names
        // some, no other can be among the rows, and only those need asking.
        fn only(numbers: impl Iterator<Item = Option<u32>>, wanted: bool) -> Option<Vec<u32>> {
            wanted.then(|| {
                let mut numbers: Vec<u32> = numbers.flatten().collect();
                numbers.sort_unstable();
                numbers.dedup();
                numbers
            })
        }
        let refs =
            |ids: &[ObjectIdHex]| only(ids.iter().map(|id| self.refs.number(id)), !ids.is_empty());
        let fields = [
            (
                &self.by_creator,
                only(
                    filter.creators.iter().map(|c| self.creators.number(c)),
                    !filter.creators.is_empty(),
                ),
            ),
            (&self.by_tag_key, None),
            (&self.by_service, refs(&filter.service_ids)),
            (&self.by_persona, refs(&filter.persona_ids)),
            (&self.by_scenario, refs(&filter.scenario_ids)),
            (&self.by_metric, None),
        ];
        let [creators, tags, services, personas, scenarios, metrics] = match rows {
            Some(rows) if scan => self.values_in(rows),
            _ => fields.map(|(postings, only)| postings.present(rows, only.as_deref())),
        };
        fn values_of<T: Ord + Clone + Hash>(numbers: Vec<u32>, names: &Interner<T>) -> Vec<T> {
            let mut values: Vec<T> = numbers
                .into_iter()
                .map(|n| names.value(n).clone())
                .collect();
            values.sort_unstable();
            values
        }
        FilterValues {
            creators: values_of(creators, &self.creators),
            tags: values_of(tags, &self.words),
            service_ids: values_of(services, &self.refs),
            persona_ids: values_of(personas, &self.refs),
            scenario_ids: values_of(scenarios, &self.refs),
            metric_ids: values_of(metrics, &self.refs),
        }
    }

    /// The value numbers of `rows`, in one pass: creators, tag keys, services, personas,
    /// scenarios, metrics.
    fn values_in(&self, rows: &RoaringBitmap) -> [Vec<u32>; 6] {
        let refs = self.refs.values.len();
        let mut marks = [
            vec![false; self.creators.values.len()],
            vec![false; self.words.values.len()],
            vec![false; refs],
            vec![false; refs],
            vec![false; refs],
            vec![false; refs],
        ];
        for slot in rows {
            let row = &self.rows[slot as usize];
            marks[0][row.creator as usize] = true;
            for &(key, _) in &row.tags {
                marks[1][key as usize] = true;
            }
            marks[2][row.service as usize] = true;
            marks[3][row.persona as usize] = true;
            marks[4][row.scenario as usize] = true;
            for &metric in &row.metrics {
                marks[5][metric as usize] = true;
            }
        }
        marks.map(|marked| {
            (0..marked.len() as u32)
                .filter(|&n| marked[n as usize])
                .collect()
        })
    }
}

/// The one field a sort orders by (`None` inside: the id, the default), or `None` when several
/// fields count. A field repeated after its first use changes nothing.
fn primary_sort(sort: &[SortKey]) -> Option<(Option<SortField>, bool)> {
    let Some(first) = sort.first() else {
        return Some((None, false));
    };
    sort.iter()
        .all(|k| k.field == first.field)
        .then_some((Some(first.field), first.descending))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::domain::query::FilterValuesBuilder;
    use crate::store::tests::testgen::{random_query, random_unit_test};

    /// The page as the definition says: every matching unit test, sorted, sliced.
    fn by_definition(docs: &[UnitTest], query: &ListQuery) -> PagePlan {
        let mut matching: Vec<&UnitTest> =
            docs.iter().filter(|d| query.filter.matches(d)).collect();
        matching.sort_by(|a, b| compare(&query.sort, a, b));
        let filter_values = query.with_facets.then(|| {
            let mut facets = FilterValuesBuilder::default();
            matching.iter().for_each(|d| facets.add(d));
            facets.build()
        });
        let start = (query.offset as usize).min(matching.len());
        let end = start
            .saturating_add(query.limit as usize)
            .min(matching.len());
        PagePlan {
            ids: matching[start..end]
                .iter()
                .map(|d| (d.id, d.updated_at))
                .collect(),
            has_more: end < matching.len(),
            filter_values,
        }
    }

    #[test]
    fn plans_match_the_definition_through_inserts_updates_and_deletes() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut docs: Vec<UnitTest> = (0..300).map(|n| random_unit_test(&mut rng, n)).collect();
        let mut catalog = Catalog::build(docs[..200].to_vec());
        for doc in &docs[200..] {
            catalog.upsert(doc);
        }
        let mut non_empty = 0;
        for round in 0..3000 {
            if round % 10 == 0 {
                // Rewrite a unit test in place: new fields, later timestamps, sometimes deleted.
                let i = rng.gen_range(0..docs.len());
                let mut next = random_unit_test(&mut rng, 1000 + round);
                next.id = docs[i].id;
                next.org_id = docs[i].org_id.clone();
                next.created_at = docs[i].created_at;
                next.updated_at =
                    Timestamp::from_millis(docs[i].updated_at.millis() + rng.gen_range(0..3));
                catalog.upsert(&next);
                docs[i] = next;
            }
            let ids: Vec<ObjectIdHex> = docs.iter().map(|d| d.id).collect();
            let mut query = random_query(&mut rng, &ids);
            if rng.gen_bool(0.3) {
                query.offset = rng.gen_range(0..250);
            }
            let want = by_definition(&docs, &query);
            if let Some(org) = catalog.orgs.get(&query.filter.org_id) {
                let rows = org.candidates(&query.filter);
                assert_eq!(
                    org.facets_by(rows.as_ref(), true, &query.filter),
                    org.facets_by(rows.as_ref(), false, &query.filter),
                    "round {round}: facets by rows and by postings differ for {query:?}"
                );
            }
            assert_eq!(catalog.plan(&query), want, "round {round}: {query:?}");
            non_empty += usize::from(!want.ids.is_empty());
        }
        assert!(
            non_empty > 1000,
            "queries too selective to prove much: {non_empty}"
        );
    }

    #[test]
    fn descending_orders_keep_ties_in_id_order_from_any_offset() {
        let mut rng = StdRng::seed_from_u64(5);
        let docs: Vec<UnitTest> = (0..120)
            .map(|n| {
                let mut d = random_unit_test(&mut rng, n);
                d.org_id = "acme".into();
                d
            })
            .collect();
        let catalog = Catalog::build(docs.clone());
        for raw in [
            "sort_by=-updated_at",
            "sort_by=-created_at",
            "sort_by=-name",
            "sort_by=updated_at",
        ] {
            for offset in 0..125 {
                let q = format!("{raw}&limit=7&continuation_token={offset}");
                let query = crate::service::list_query_for(
                    "acme",
                    &crate::domain::query_string::QueryParams::parse(Some(&q)),
                )
                .unwrap();
                assert_eq!(catalog.plan(&query), by_definition(&docs, &query), "{q}");
            }
        }
    }
}
