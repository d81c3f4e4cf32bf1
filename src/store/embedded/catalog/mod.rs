//! The embedded store's in-memory index of unit tests: which ones a list or search selects, in
//! which order, and their facets, answered without reading a document. The documents stay in redb;
//! a page reads only its own. Without this, every list decoded the whole org (a full scan per
//! request, 100 ms at 100k unit tests); with it a page costs about the same at 10k or 1M.
//!
//! Per org it keeps a compact row per unit test (the fields a query looks at, strings interned to
//! numbers), a bitmap of rows per filterable value (posting lists: a filter is a few bitmap
//! unions and intersections) and the rows sorted by each sortable field (a page is a slice, or a
//! short walk). Search terms are looked up in the postings of the grams of the folded text
//! ([`GramIndex`]), so a search reads only rows that may match. At start it is read back from its
//! snapshot ([`dump`]) or rebuilt from redb, and it is changed after each committed write, so it
//! never holds anything redb does not.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::VecDeque;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use super::grams::{GramIndex, TermRows};
use super::rows::RowRecord;
use crate::domain::query::{
    FilterValues, ListQuery, SortField, SortFields, SortKey, Sortable, TagValueFilter,
    UnitTestFilter, compare,
};
use crate::domain::search::search_text;
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserInfo};

mod dump;

/// A row's number in its org, in the order the unit tests were added; never reused (deletes are
/// soft, so a unit test keeps its row for good).
type Slot = u32;

/// The index of every org.
#[derive(Default)]
pub struct Catalog {
    orgs: HashMap<OrgId, OrgIndex>,
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
        while catalog.index_grams(usize::MAX) > 0 {}
        catalog
    }

    /// Adds `doc` while loading: cheaper than [`Catalog::upsert`], but the orders are not kept
    /// until [`Catalog::loaded`].
    #[cfg(test)]
    pub fn load(&mut self, doc: &UnitTest) {
        let text = search_text(&doc.name, &doc.description);
        self.load_row(&doc.org_id, doc.id, &RowRecord::of(doc, &text));
    }

    /// Adds the stored row of unit test `id` of `org_id` while loading, as [`Catalog::load`].
    pub fn load_row(&mut self, org_id: &str, id: ObjectIdHex, row: &RowRecord<'_>) {
        if !self.orgs.contains_key(org_id) {
            self.orgs.insert(org_id.into(), OrgIndex::default());
        }
        if let Some(org) = self.orgs.get_mut(org_id) {
            org.push(id, row);
        }
    }

    /// Sorts the orders once every unit test is loaded.
    pub fn loaded(&mut self) {
        for org in self.orgs.values_mut() {
            org.sort_orders();
        }
    }

    /// Indexes the search grams of up to `most` rows that are not indexed yet (those loaded at
    /// start; see [`GramIndex`]). Returns how many it indexed: 0 once every row is.
    pub fn index_grams(&mut self, most: usize) -> usize {
        let mut count = 0;
        for org in self.orgs.values_mut() {
            let texts = &org.texts;
            let pending = org.rows[org.grams.indexed() as usize..]
                .iter()
                .map(|row| row.text(texts));
            count += org.grams.catch_up(pending, most - count);
            if count == most {
                break;
            }
        }
        count
    }

    /// Whether every row's search grams are indexed.
    pub fn grams_built(&self) -> bool {
        (self.orgs.values()).all(|org| org.grams.indexed() as usize == org.rows.len())
    }

    /// Records a committed insert or replace of `doc`.
    pub fn upsert(&mut self, doc: &UnitTest) {
        let org = self.orgs.entry(doc.org_id.clone()).or_default();
        let text = search_text(&doc.name, &doc.description);
        let row = RowRecord::of(doc, &text);
        match org.slot_of(doc.id) {
            Some(slot) => org.replace(slot, doc.id, &row),
            None => org.insert(doc.id, &row),
        }
    }

    /// Forgets unit test `id` of `org_id` (a hard delete): no list or search finds it again. Its
    /// slot stays, empty, so other rows keep theirs.
    pub fn remove(&mut self, org_id: &OrgId, id: ObjectIdHex) {
        if let Some(org) = self.orgs.get_mut(org_id) {
            org.remove(id);
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

/// Distinct values numbered in the order they were first seen. Strings users choose keep the
/// standard (keyed) hash; ids and our own numbers take a faster one (`FastInterner`).
struct Interner<T, S = std::hash::RandomState> {
    numbers: HashMap<T, u32, S>,
    values: Vec<T>,
}

type FastInterner<T> = Interner<T, rustc_hash::FxBuildHasher>;

impl<T, S: Default> Default for Interner<T, S> {
    fn default() -> Self {
        Self {
            numbers: HashMap::default(),
            values: Vec::new(),
        }
    }
}

impl<T: Hash + Eq + Clone, S: std::hash::BuildHasher> Interner<T, S> {
    fn intern(&mut self, value: &T) -> u32 {
        if let Some(&n) = self.numbers.get(value) {
            return n;
        }
        let n = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct values");
        self.values.push(value.clone());
        self.numbers.insert(value.clone(), n);
        n
    }

    fn value(&self, n: u32) -> &T {
        &self.values[n as usize]
    }

    fn number<Q: Hash + Eq + ?Sized>(&self, value: &Q) -> Option<u32>
    where
        T: Borrow<Q>,
    {
        self.numbers.get(value).copied()
    }
}

impl Interner<String> {
    fn intern_str(&mut self, value: &str) -> u32 {
        match self.number(value) {
            Some(n) => n,
            None => self.intern(&value.to_owned()),
        }
    }
}

/// Rows holding each value of one field (keys are numbers we give, so a fast hash is safe).
struct Postings<K>(FxHashMap<K, RoaringBitmap>);

impl<K> Default for Postings<K> {
    fn default() -> Self {
        Self(FxHashMap::default())
    }
}

impl<K: Hash + Eq + Copy> Postings<K> {
    fn add(&mut self, key: K, slot: Slot) {
        // Not `try_push`: by `perf`, roaring's push into a bitmap container costs far more than
        // an insert (a third of the start-up at 1M).
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

/// What a query looks at in one unit test, in 64 bytes: its values are numbers of interned ones
/// and its strings live in the org's one `texts` buffer (at 1M unit tests, a `Box` per string
/// and per list cost about 150 MiB more, by measurement).
struct Row {
    id: ObjectIdHex,
    created_at: Timestamp,
    updated_at: Timestamp,
    service: u32,
    persona: u32,
    scenario: u32,
    creator: u32,
    /// The number of the row's metrics and tags in `OrgIndex::extras`.
    extras: u32,
    /// Where the name starts in `OrgIndex::texts`; the search text follows it.
    strings: u32,
    name_len: u32,
    text_len: u32,
    is_deleted: bool,
}

impl Row {
    fn name<'a>(&self, texts: &'a str) -> &'a str {
        let start = self.strings as usize;
        &texts[start..start + self.name_len as usize]
    }

    /// `fold_case(name) + "\n" + fold_case(description)`. Search terms hold no whitespace, so a
    /// term occurs here exactly when it occurs in the name or in the description.
    fn text<'a>(&self, texts: &'a str) -> &'a str {
        let start = self.strings as usize + self.name_len as usize;
        &texts[start..start + self.text_len as usize]
    }
}

/// A row's metrics (sorted, distinct) and tags ((key, value) numbers in `words`). Unit tests
/// share a few combinations of them, so each is kept once.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Extras {
    metrics: Box<[u32]>,
    tags: Box<[(u32, Option<u32>)]>,
}

/// A row with its strings, as sorts read it.
#[derive(Clone, Copy)]
struct View<'a> {
    row: &'a Row,
    texts: &'a str,
}

/// The rows a filter selects and their facets.
struct Matched {
    /// Every row when `None`.
    rows: Option<RoaringBitmap>,
    /// Some of `rows` may lack a search term (never when `facets` are there).
    terms_left: bool,
    /// `rows` were narrowed by every gram of the terms (see [`Terms::Grams`]).
    every_gram: bool,
    facets: Option<FilterValues>,
}

/// How a search's terms are looked up.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Terms {
    /// In the grams, leaving out a long term's wider grams when the page is found by a short walk
    /// over the rows left; if that walk turns out long, the page is planned again with
    /// [`Terms::EveryGram`].
    Grams,
    EveryGram,
    /// Reading the rows' texts (the way before there were grams, kept to measure against).
    Texts,
}

/// Steps a walk over the candidates is expected to take at most before a search stops narrowing
/// them by further grams ([`Terms::Grams`]); it may take twice that before the search narrows
/// them after all. 4096 steps cost about 40 µs, what two grams held by 1 row in 4 cost at 1M.
const SHORT_WALK: usize = 4096;

/// How many filters' first pages are kept per org.
const FIRST_PAGES: usize = 32;

/// The [`Matched`] of recent first pages by filter. A first page's facets cover every match, so
/// they cost a pass over the matches (or over each value's posting list) each time: at 1M unit
/// tests a filter matching 50k took 170 µs, 9x its cost at 10k. Kept, the same first page costs
/// the walk to its rows alone until the org's next write empties this.
#[derive(Default)]
struct FirstPages(Mutex<VecDeque<(UnitTestFilter, Arc<Matched>)>>);

impl FirstPages {
    fn get(&self, filter: &UnitTestFilter) -> Option<Arc<Matched>> {
        let kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter()
            .find(|(f, _)| f == filter)
            .map(|(_, m)| m.clone())
    }

    fn put(&self, filter: &UnitTestFilter, matched: &Arc<Matched>) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.iter().any(|(f, _)| f == filter) {
            return;
        }
        if kept.len() == FIRST_PAGES {
            kept.pop_back();
        }
        kept.push_front((filter.clone(), matched.clone()));
    }

    fn clear(&mut self) {
        self.0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Which rows an order holds.
#[derive(Clone, Copy, PartialEq)]
enum Holds {
    /// Every row (hard-deleted rows are in no order).
    Every,
    /// Only rows not deleted.
    NotDeleted,
}

/// The orders kept sorted: by id (the default) and by each sortable field, each ascending with
/// ties broken by id; then the rows not deleted by `updated_at` once more. A delete moves a row's
/// `updated_at` forward, so after many deletes the full `updated_at` order starts, newest first,
/// with rows that every search (never deleted rows, newest first) and every list of rows not
/// deleted would step over one by one: at 1M with half deleted, ~500k steps a search.
const ORDERS: [(Option<SortField>, Holds); 5] = [
    (None, Holds::Every),
    (Some(SortField::UpdatedAt), Holds::Every),
    (Some(SortField::CreatedAt), Holds::Every),
    (Some(SortField::Name), Holds::Every),
    (Some(SortField::UpdatedAt), Holds::NotDeleted),
];

const BY_ID: usize = 0;
const NOT_DELETED_BY_UPDATED: usize = 4;

/// The kept order to walk for rows that `filter` selects, sorted by `field`.
fn order_number(field: Option<SortField>, filter: &UnitTestFilter) -> usize {
    match field {
        None => BY_ID,
        Some(SortField::UpdatedAt) if filter.is_deleted == Some(false) => NOT_DELETED_BY_UPDATED,
        Some(SortField::UpdatedAt) => 1,
        Some(SortField::CreatedAt) => 2,
        Some(SortField::Name) => 3,
    }
}

/// Whether order `k` holds `row`.
fn holds(k: usize, row: &Row) -> bool {
    match ORDERS[k].1 {
        Holds::Every => true,
        Holds::NotDeleted => !row.is_deleted,
    }
}

/// The candidates a walk asks about one slot at a time. A roaring lookup takes two binary searches
/// (~25 ns; 19 % of the server's CPU on `search 2 terms` at 100k); a bit per slot answers in one
/// load, but reading a candidate out of the bitmap and setting its bit costs ~1.5 ns, and clearing
/// 64 slots' bits ~0.3 ns. So each block of 65,536 slots (one roaring container) gets bits only once
/// the walk has asked about it about as often as that costs: a lookup saved pays for 15 candidates'
/// bits. Whatever the order walked, a walk then costs at most about twice the cheaper of the two;
/// a walk that stays among the newest rows sets the bits of the blocks it stays in, not of all (at
/// 1M, setting every candidate's bit up front was 13 % of the server's CPU on `search 2 terms`:
/// 31k bits for a walk of 3.2k steps within one block).
struct Candidates<'a> {
    slots: &'a RoaringBitmap,
    blocks: Vec<Block>,
}

#[derive(Default)]
struct Block {
    /// Lookups so far, while the block has no bits.
    asked: u32,
    bits: Option<Box<[u64]>>,
}

/// Slots per [`Block`].
const BLOCK: u32 = 1 << 16;

impl<'a> Candidates<'a> {
    /// The candidates `slots`, among `len` slots.
    fn new(slots: &'a RoaringBitmap, len: usize) -> Self {
        let blocks = len.div_ceil(BLOCK as usize);
        Self {
            slots,
            blocks: (0..blocks).map(|_| Block::default()).collect(),
        }
    }

    fn has(&mut self, s: Slot) -> bool {
        let Some(block) = self.blocks.get_mut((s / BLOCK) as usize) else {
            return self.slots.contains(s);
        };
        let low = (s % BLOCK) as usize;
        if let Some(bits) = &block.bits {
            return bits[low / 64] >> (low % 64) & 1 == 1;
        }
        block.asked += 1;
        // Checked every 32 lookups: the count costs a binary search too.
        if block.asked.is_multiple_of(32) {
            let range = s - low as u32..=s | (BLOCK - 1);
            let candidates = self.slots.range_cardinality(range.clone());
            // Clearing the block's bits costs what setting 200 candidates' bits does.
            if u64::from(block.asked) * 15 > candidates + 200 {
                block.bits = Some(Self::bits(self.slots, range));
                return self.has(s);
            }
        }
        self.slots.contains(s)
    }

    /// A bit per slot of `range` (one block), set for those of `slots`.
    fn bits(slots: &RoaringBitmap, range: std::ops::RangeInclusive<Slot>) -> Box<[u64]> {
        let mut words = vec![0u64; BLOCK as usize / 64].into_boxed_slice();
        // Read in batches: roaring's `next` goes through three levels per slot, where `next_many`
        // copies a container's slots at a time.
        let (mut slots, mut batch) = (slots.range(range), [0u32; 256]);
        loop {
            let read = slots.next_many(&mut batch);
            if read.is_empty() {
                break;
            }
            for &s in &*read {
                let low = (s % BLOCK) as usize;
                words[low / 64] |= 1 << (low % 64);
            }
        }
        words
    }
}

/// `a` against `b` by `field` alone (`None`: no field, all equal).
fn by_field(field: Option<SortField>, a: View<'_>, b: View<'_>) -> Ordering {
    field.map_or(Ordering::Equal, |field| {
        field.compare(&a.sort_fields(), &b.sort_fields())
    })
}

impl Sortable for View<'_> {
    fn sort_fields(&self) -> SortFields<'_> {
        let row = self.row;
        SortFields::new(row.id, row.updated_at, row.created_at, row.name(self.texts))
    }
}

#[derive(Default)]
struct OrgIndex {
    rows: Vec<Row>,
    /// Every row's name and search text, one after the other.
    texts: String,
    /// Bytes of `texts` no row points at any more (left by updates), reclaimed now and then.
    garbage: usize,
    /// Service, persona, scenario and metric ids.
    refs: FastInterner<ObjectIdHex>,
    creators: Interner<UserInfo>,
    /// Tag keys and values.
    words: Interner<String>,
    extras: FastInterner<Extras>,
    all: RoaringBitmap,
    deleted: RoaringBitmap,
    by_service: Postings<u32>,
    by_persona: Postings<u32>,
    by_scenario: Postings<u32>,
    by_metric: Postings<u32>,
    by_creator: Postings<u32>,
    by_tag_key: Postings<u32>,
    by_tag: Postings<(u32, Option<u32>)>,
    /// The grams of each row's `text`, deleted rows included.
    grams: GramIndex,
    /// What first pages (lists with facets) matched, by filter, until the org's next write.
    first_pages: FirstPages,
    /// Slots sorted as [`ORDERS`] says.
    orders: [Vec<Slot>; ORDERS.len()],
    /// Rows whose text a search has read, so tests can tell how much a search visits.
    #[cfg(test)]
    texts_read: std::sync::atomic::AtomicUsize,
    /// Slots a walk for matching rows has stepped over, for the same reason.
    #[cfg(test)]
    stepped: std::sync::atomic::AtomicUsize,
}

impl OrgIndex {
    fn view(&self, slot: Slot) -> View<'_> {
        View {
            row: &self.rows[slot as usize],
            texts: &self.texts,
        }
    }

    /// How many unit tests the org has: rows, less the slots a hard delete left empty.
    fn live(&self) -> usize {
        self.all.len() as usize
    }

    /// The row of unit test `id`: the default order is by id.
    fn slot_of(&self, id: ObjectIdHex) -> Option<Slot> {
        let rows = &self.rows;
        let by_id = &self.orders[BY_ID];
        by_id
            .binary_search_by(|&s| rows[s as usize].id.cmp(&id))
            .ok()
            .map(|at| by_id[at])
    }

    /// The row of `record`, its strings added at the end of `texts`.
    fn row(&mut self, id: ObjectIdHex, record: &RowRecord<'_>) -> Row {
        let mut metrics: Vec<u32> = (record.metrics.iter())
            .map(|id| self.refs.intern(id))
            .collect();
        metrics.sort_unstable();
        metrics.dedup();
        let tags = (record.tags.iter())
            .map(|&(key, value)| {
                let key = self.words.intern_str(key);
                (key, value.map(|v| self.words.intern_str(v)))
            })
            .collect();
        let extras = self.extras.intern(&Extras {
            metrics: metrics.into(),
            tags,
        });
        let strings = self.texts.len();
        self.texts.push_str(record.name);
        self.texts.push_str(record.text);
        let creator = self.creators.intern(&UserInfo {
            org_id: record.creator_org.into(),
            user_id: record.creator_user.into(),
        });
        Row {
            id,
            created_at: record.created_at,
            updated_at: record.updated_at,
            service: self.refs.intern(&record.service),
            persona: self.refs.intern(&record.persona),
            scenario: self.refs.intern(&record.scenario),
            creator,
            extras,
            strings: u32::try_from(strings).expect("under 4 GiB of names and descriptions"),
            name_len: record.name.len() as u32,
            text_len: record.text.len() as u32,
            is_deleted: record.is_deleted,
        }
    }

    /// Adds the row of `slot` to the postings, or (`link: false`) takes it out.
    fn post(&mut self, slot: Slot, link: bool) {
        self.first_pages.clear();
        let row = &self.rows[slot as usize];
        let extras = self.extras.value(row.extras);
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
        for &metric in &extras.metrics {
            edit(&mut self.by_metric, metric);
        }
        for &(key, value) in &extras.tags {
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

    /// Adds the unit test `id` as a new row, without placing it in the orders or its grams in
    /// the index.
    fn push(&mut self, id: ObjectIdHex, record: &RowRecord<'_>) -> Slot {
        let slot = Slot::try_from(self.rows.len()).expect("fewer than 2^32 unit tests per org");
        let row = self.row(id, record);
        self.rows.push(row);
        self.all.insert(slot);
        self.post(slot, true);
        let row = &self.rows[slot as usize];
        for (k, order) in self.orders.iter_mut().enumerate() {
            if holds(k, row) {
                order.push(slot);
            }
        }
        slot
    }

    /// Sorts every order: by id first, then the others from it by their field alone with a
    /// stable sort, which keeps ties in id order. Rows load in id order and timestamps mostly
    /// follow it, so most of this is finding runs already sorted (by `perf`, sorting was a quarter
    /// of the start-up at 1M before); the name order, the costly one, sorts on a thread of its own.
    fn sort_orders(&mut self) {
        let (rows, texts) = (&self.rows, self.texts.as_str());
        let view = |s: Slot| View {
            row: &rows[s as usize],
            texts,
        };
        let [
            by_id,
            by_updated,
            by_created,
            by_name,
            not_deleted_by_updated,
        ] = &mut self.orders;
        by_id.sort_unstable_by_key(|&s| rows[s as usize].id);
        for order in [&mut *by_updated, by_created, by_name] {
            order.clone_from(by_id);
        }
        let sort = |order: &mut Vec<Slot>, field: SortField| {
            order.sort_by(|&a, &b| by_field(Some(field), view(a), view(b)));
        };
        std::thread::scope(|scope| {
            scope.spawn(|| sort(by_name, SortField::Name));
            sort(by_updated, SortField::UpdatedAt);
            sort(by_created, SortField::CreatedAt);
        });
        not_deleted_by_updated.clear();
        not_deleted_by_updated.extend(
            (by_updated.iter()).filter(|&&s| holds(NOT_DELETED_BY_UPDATED, &rows[s as usize])),
        );
    }

    /// Where the row `like` belongs (or is) in order `k`.
    fn position(&self, k: usize, like: View<'_>) -> usize {
        self.orders[k].partition_point(|&s| {
            let row = self.view(s);
            by_field(ORDERS[k].0, row, like)
                .then_with(|| row.row.id.cmp(&like.row.id))
                .is_lt()
        })
    }

    /// Takes row `id` out of every posting, order and gram (a hard delete): it is never found
    /// again. Its slot stays, pointing at no text, so other rows keep theirs.
    fn remove(&mut self, id: ObjectIdHex) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        self.post(slot, false);
        self.all.remove(slot);
        for k in 0..ORDERS.len() {
            let at = self.position(k, self.view(slot));
            if self.orders[k].get(at) == Some(&slot) {
                self.orders[k].remove(at);
            }
        }
        let old = self.view(slot).row.text(&self.texts).to_owned();
        self.grams.change(slot, &old, "");
        let row = &mut self.rows[slot as usize];
        self.garbage += (row.name_len + row.text_len) as usize;
        row.name_len = 0;
        row.text_len = 0;
    }

    fn insert(&mut self, id: ObjectIdHex, record: &RowRecord<'_>) {
        let slot = self.push(id, record);
        // Rows loaded at start are indexed later, in steps (`Catalog::index_grams`).
        self.grams.push(slot, record.text);
        for k in 0..ORDERS.len() {
            if !holds(k, self.view(slot).row) {
                continue;
            }
            // `push` appended the slot; ids mostly grow, so this is usually a no-op move.
            self.orders[k].pop();
            let at = self.position(k, self.view(slot));
            self.orders[k].insert(at, slot);
        }
    }

    fn replace(&mut self, slot: Slot, id: ObjectIdHex, record: &RowRecord<'_>) {
        self.post(slot, false);
        let row = self.row(id, record);
        for (k, (field, _)) in ORDERS.into_iter().enumerate() {
            let old = self.view(slot);
            let new = View {
                row: &row,
                texts: &self.texts,
            };
            let (was_in, goes_in) = (holds(k, old.row), holds(k, new.row));
            if was_in && goes_in && by_field(field, old, new).is_eq() {
                continue;
            }
            if was_in {
                let at = self.position(k, old);
                self.orders[k].remove(at);
            }
            if goes_in {
                let at = self.position(k, new);
                self.orders[k].insert(at, slot);
            }
        }
        let old = &self.rows[slot as usize];
        self.grams.change(slot, old.text(&self.texts), record.text);
        self.garbage += (old.name_len + old.text_len) as usize;
        self.rows[slot as usize] = row;
        self.post(slot, true);
        if self.garbage > (1 << 20) && self.garbage * 2 > self.texts.len() {
            self.reclaim();
        }
    }

    /// Copies the strings rows point at into a new buffer, leaving behind those of earlier
    /// versions. Called once garbage is half the buffer, so each byte is copied at most once
    /// per byte an update left behind: linear overall.
    fn reclaim(&mut self) {
        let mut texts = String::with_capacity(self.texts.len() - self.garbage);
        for row in &mut self.rows {
            let start = row.strings as usize;
            let end = start + (row.name_len + row.text_len) as usize;
            row.strings = texts.len() as u32;
            texts.push_str(&self.texts[start..end]);
        }
        self.texts = texts;
        self.garbage = 0;
    }

    /// The rows among `start` (every row when `None`) that `filter` selects by its fields other
    /// than the search terms; `None` is every row.
    fn candidates(
        &self,
        filter: &UnitTestFilter,
        start: Option<RoaringBitmap>,
    ) -> Option<RoaringBitmap> {
        let mut selected = start;
        let mut narrow = |rows: RoaringBitmap| match &mut selected {
            Some(s) => *s &= rows,
            None => selected = Some(rows),
        };
        if !filter.ids.is_empty() {
            narrow(
                filter
                    .ids
                    .iter()
                    .filter_map(|id| self.slot_of(*id))
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
        self.plan_by(query, Terms::Grams)
    }

    /// The plan of `query`, its search terms looked up as `terms` says.
    fn plan_by(&self, query: &ListQuery, terms_by: Terms) -> PagePlan {
        let terms = &query.filter.terms;
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = query.limit as usize;
        let cached = (query.with_facets)
            .then(|| self.first_pages.get(&query.filter))
            .flatten();
        let matched = match cached {
            Some(matched) => matched,
            None => {
                let matched = Arc::new(self.matched(query, terms_by, offset, limit));
                if query.with_facets {
                    self.first_pages.put(&query.filter, &matched);
                }
                matched
            }
        };
        let (candidates, terms_left) = (&matched.rows, matched.terms_left);
        // A walk over candidates not narrowed by every gram is given a bound; past it, the page is
        // planned again with them all.
        let most_steps = match matched.every_gram {
            true => usize::MAX,
            false => 2 * SHORT_WALK,
        };
        let filter_values = matched.facets.clone();
        let holds_terms = |s: Slot| !terms_left || self.has_terms(s, terms);
        let keep = |s: Slot| candidates.as_ref().is_none_or(|c| c.contains(s)) && holds_terms(s);
        let (slots, has_more) = match (query.after, walked_order(query)) {
            // Keyset: the id order from just above `after` (a binary search, then a walk); in
            // another order, those rows sorted.
            (Some(after), _) => {
                let sort = primary_sort(&query.sort);
                let order = &self.orders[BY_ID];
                let start = order.partition_point(|&s| self.rows[s as usize].id <= after);
                let mut matching = order[start..].iter().copied().filter(|&s| keep(s));
                if sort != Some((None, false)) {
                    self.sorted_page(matching, &query.sort, offset, limit)
                } else {
                    matching.by_ref().take(offset).for_each(drop);
                    let page: Vec<Slot> = matching.by_ref().take(limit).collect();
                    (page, matching.next().is_some())
                }
            }
            (None, Some((field, descending))) => {
                let k = order_number(field, &query.filter);
                // The candidates are among the rows of order `k`: the filter selects no row it
                // lacks.
                let in_order = self.orders[k].len();
                let selected = (!terms_left).then(|| {
                    candidates
                        .as_ref()
                        .map_or(self.live(), |c| c.len() as usize)
                });
                match selected {
                    // Every row of a kept order: the page is a slice.
                    Some(m) if m == in_order => {
                        let page: Vec<Slot> =
                            self.walk(k, descending, offset).take(limit).collect();
                        (page, offset.saturating_add(limit) < in_order)
                    }
                    // Few rows, deep page: sorting the rows is cheaper than walking the order
                    // to find them. A walk takes about N / M steps per row of the page, each a
                    // bit test in order; a sort reads every matching row, each a cache miss
                    // (~20 steps), and then sorts them.
                    Some(m)
                        if offset.saturating_add(limit).saturating_mul(in_order)
                            > m.saturating_mul(m).saturating_mul(20) =>
                    {
                        self.sorted_page(candidates.iter().flatten(), &query.sort, offset, limit)
                    }
                    _ => {
                        let end = offset.saturating_add(limit);
                        // One more than the page when only the walk can tell if more match.
                        let wanted = end.saturating_add(usize::from(selected.is_none()));
                        // When every row of the order is a candidate (a search of the live
                        // rows before its grams are built), there is nothing to ask.
                        let mut membership = (candidates.as_ref())
                            .filter(|c| c.len() as usize != in_order)
                            .map(|c| Candidates::new(c, self.rows.len()));
                        let keep = |s: Slot| {
                            membership.as_mut().is_none_or(|c| c.has(s)) && holds_terms(s)
                        };
                        let Some(mut matching) =
                            self.walk_matching(k, descending, keep, wanted, most_steps)
                        else {
                            return self.plan_by(query, Terms::EveryGram);
                        };
                        let has_more = match selected {
                            Some(m) => end < m,
                            None => matching.len() > end,
                        };
                        matching.truncate(end);
                        let page = matching.split_off(offset.min(matching.len()));
                        (page, has_more)
                    }
                }
            }
            // Several sort fields: no kept order fits, so sort the matches.
            (None, None) => {
                let matching: Box<dyn Iterator<Item = Slot>> = match &candidates {
                    Some(c) => Box::new(c.iter()),
                    None => Box::new(self.all.iter()),
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

    /// The rows `query` selects (every row when `None`; `terms_left`: some may still lack a
    /// search term) and, when it asks for them, their facets.
    fn matched(&self, query: &ListQuery, terms_by: Terms, offset: usize, limit: usize) -> Matched {
        let terms = &query.filter.terms;
        // Whether the page will be found by walking a kept order from its start to the page's
        // end: then the rows need narrowing only until that walk is short (facets need every
        // match, so they are narrowed fully).
        let walk = offset.saturating_add(limit).saturating_add(1);
        let order = walked_order(query);
        let walks = terms_by == Terms::Grams && !query.with_facets && order.is_some();
        // How many rows the walk may step over: those of the order it walks.
        let walked = order.map_or(self.live(), |(field, _)| {
            self.orders[order_number(field, &query.filter)].len()
        });
        let short_walk = |rows: &RoaringBitmap| {
            walks && walk.saturating_mul(walked) <= (rows.len() as usize).saturating_mul(SHORT_WALK)
        };
        // The rows holding the terms' grams; `terms_left`: some of them may lack a term.
        let (found, exact, every_gram) = match (terms_by != Terms::Texts && !terms.is_empty())
            .then(|| self.grams.rows_with(terms, self.rows.len(), short_walk))
            .flatten()
        {
            Some(TermRows {
                rows,
                exact,
                every_gram,
            }) => (Some(rows), exact, every_gram),
            None => (None, terms.is_empty(), true),
        };
        let mut candidates = self.candidates(&query.filter, found);
        let mut terms_left = !exact;
        if terms_left {
            // Verify every candidate now when facets need the whole match, or when that is
            // cheaper than the walk below: a walk to the page's end steps over about
            // (offset + limit) * N / M rows of the order, each a cache miss or so; verifying
            // reads each of the M candidates and sorts the matches, ~20 steps each (measured:
            // at 100k, 3k candidates verified cost 6x the walk).
            let m = candidates
                .as_ref()
                .map_or(self.live(), |c| c.len() as usize);
            if query.with_facets
                || m.saturating_mul(m).saturating_mul(20) <= walk.saturating_mul(walked)
            {
                let all = candidates.unwrap_or_else(|| self.all.clone());
                candidates = Some(all.iter().filter(|&s| self.has_terms(s, terms)).collect());
                terms_left = false;
            }
        }
        let facets = (query.with_facets).then(|| self.facets(candidates.as_ref(), &query.filter));
        Matched {
            rows: candidates,
            terms_left,
            every_gram,
            facets,
        }
    }

    fn has_terms(&self, slot: Slot, terms: &[String]) -> bool {
        #[cfg(test)]
        self.texts_read
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = self.rows[slot as usize].text(&self.texts);
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
        let cmp = |a: &Slot, b: &Slot| compare(sort, &self.view(*a), &self.view(*b));
        if end < total && end > 0 {
            slots.select_nth_unstable_by(end - 1, cmp);
            slots.truncate(end);
        }
        slots.sort_unstable_by(cmp);
        let page = slots.get(offset.min(end)..end).unwrap_or_default().to_vec();
        (page, end < total)
    }

    /// The first `count` slots that `keep` accepts, in kept order `k`, descending or not, ties by
    /// id ascending, as [`Self::walk`] would give them. Unlike a filtered `walk`, a descending
    /// walk here compares keys only of the slots kept: the order is read backwards (key
    /// descending, ties by id *descending*) and each run of equal keys among the kept slots is
    /// turned around at the end. Comparing every slot stepped over read two rows
    /// per step, which made a search with 1 match in 30 spend most of its time there (`perf`:
    /// 45 % of the server's CPU in `by_field` and its callers). `None` when finding them takes
    /// more than `most_steps` slots.
    fn walk_matching(
        &self,
        k: usize,
        descending: bool,
        mut keep: impl FnMut(Slot) -> bool,
        count: usize,
        most_steps: usize,
    ) -> Option<Vec<Slot>> {
        let (order, field) = (&self.orders[k], ORDERS[k].0);
        // Counted in tests, to tell how far a walk went.
        let mut keep = |s: Slot| {
            #[cfg(test)]
            self.stepped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            keep(s)
        };
        // Without a field every slot ties, so the order is by id ascending either way.
        if !descending || field.is_none() {
            return first_kept(&mut order.iter().copied(), &mut keep, count, most_steps);
        }
        let same = |a: Slot, b: Slot| by_field(field, self.view(a), self.view(b)).is_eq();
        let mut backwards = order.iter().rev().copied();
        let mut kept = first_kept(&mut backwards, &mut keep, count, most_steps)?;
        // The rest of the last key's run: with the ids ascending, some of them come first.
        if let Some(&last) = kept.last()
            && kept.len() == count
        {
            kept.extend(
                backwards
                    .filter(|&s| keep(s))
                    .take_while(|&s| same(s, last)),
            );
        }
        // Read backwards, the slots are by key descending and, among equal keys, by id descending:
        // turning each run of equal keys around gives ids ascending. (A sort of the page read two
        // rows per comparison, ~700 comparisons for 100: 3 % of the server's CPU on a search.)
        for run in kept.chunk_by_mut(|&a, &b| same(a, b)) {
            run.reverse();
        }
        kept.truncate(count);
        Some(kept)
    }

    /// Every slot of kept order `k` from `start`, descending or not; ties are broken by id
    /// ascending in both directions, as MongoDB's `{field: ±1, _id: 1}`.
    fn walk(
        &self,
        k: usize,
        descending: bool,
        start: usize,
    ) -> Box<dyn Iterator<Item = Slot> + '_> {
        let (order, field) = (&self.orders[k], ORDERS[k].0);
        if !descending {
            return Box::new(order.iter().skip(start).copied());
        }
        let n = order.len();
        if start >= n {
            return Box::new(std::iter::empty());
        }
        let view = |s: Slot| self.view(s);
        let same =
            move |i: usize, j: usize| by_field(field, view(order[i]), view(order[j])).is_eq();
        // Start of the run of equal keys that ends just before `end`.
        let group_start = move |end: usize| {
            if end < 2 || !same(end - 2, end - 1) {
                return end - 1;
            }
            order[..end]
                .partition_point(|&s| by_field(field, view(s), view(order[end - 1])).is_lt())
        };
        // Descending by key, each run of equal keys kept ascending by id: find the run that holds
        // the `start`-th element of that order and the element's place in it.
        let last = n - 1 - start;
        let mut end = last
            + order[last..]
                .partition_point(|&s| by_field(field, view(s), view(order[last])).is_le());
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
        fn values_of<T: Ord + Clone + Hash, S: std::hash::BuildHasher>(
            numbers: Vec<u32>,
            names: &Interner<T, S>,
        ) -> Vec<T> {
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
            let extras = self.extras.value(row.extras);
            for &(key, _) in &extras.tags {
                marks[1][key as usize] = true;
            }
            marks[2][row.service as usize] = true;
            marks[3][row.persona as usize] = true;
            marks[4][row.scenario as usize] = true;
            for &metric in &extras.metrics {
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

/// The first `count` of `slots` that `keep` accepts (fewer when `slots` end first), or `None` when
/// finding them would step over more than `most_steps` slots.
fn first_kept(
    slots: &mut impl Iterator<Item = Slot>,
    mut keep: impl FnMut(Slot) -> bool,
    count: usize,
    most_steps: usize,
) -> Option<Vec<Slot>> {
    let mut kept = Vec::new();
    let mut steps = 0;
    while kept.len() < count {
        let Some(slot) = slots.next() else { break };
        if steps == most_steps {
            return None;
        }
        steps += 1;
        if keep(slot) {
            kept.push(slot);
        }
    }
    Some(kept)
}

/// The kept order `plan_by` walks from its start to find `query`'s page: its sort's, when the
/// query has one kept order's sort and no `after` (which starts from a position in the id order).
fn walked_order(query: &ListQuery) -> Option<(Option<SortField>, bool)> {
    query
        .after
        .is_none()
        .then(|| primary_sort(&query.sort))
        .flatten()
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
    use crate::store::tests::testgen::{random_doc, random_query, random_terms, random_unit_test};

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
        matching.retain(|d| query.selects(d));
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
    fn plans_match_the_definition_through_inserts_updates_deletes_and_removals() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut docs: Vec<UnitTest> = (0..300).map(|n| random_doc(&mut rng, n)).collect();
        // As the store opens: 200 loaded, their grams built a few at a time (from the first
        // rounds to about the 400th) while unit tests are added and rewritten around them.
        let mut catalog = Catalog::default();
        for doc in &docs[..200] {
            catalog.load(doc);
        }
        catalog.loaded();
        for doc in &docs[200..] {
            catalog.upsert(doc);
        }
        let mut non_empty = 0;
        let (mut searches, mut found) = (0, 0);
        for round in 0..6000 {
            catalog.index_grams(rng.gen_range(0..2));
            if round % 1000 == 999 {
                // As a clean close and the next start do: what follows is asked of the
                // catalog read back (its grams maybe only in part, updates' strings left behind,
                // hard deletes' empty slots).
                let grams = |catalog: &Catalog| -> Vec<(u32, u64)> {
                    let mut grams: Vec<_> = (catalog.orgs.values())
                        .map(|org| org.grams.parts())
                        .map(|(indexed, postings)| {
                            (indexed, postings.values().map(|r| r.len()).sum())
                        })
                        .collect();
                    grams.sort_unstable();
                    grams
                };
                let mut saved = Vec::new();
                let count = catalog.save(&mut saved).unwrap();
                assert_eq!(count, docs.len() as u64);
                let before = grams(&catalog);
                (catalog, _) = Catalog::restore(&saved[..], saved.len() as u64).unwrap();
                assert_eq!(
                    grams(&catalog),
                    before,
                    "the grams indexed so far are read back"
                );
            }
            if round % 10 == 0 {
                // Rewrite a unit test in place: new fields, later timestamps, sometimes deleted.
                let i = rng.gen_range(0..docs.len());
                let mut next = random_doc(&mut rng, 1000 + round);
                next.id = docs[i].id;
                next.org_id = docs[i].org_id.clone();
                next.created_at = docs[i].created_at;
                next.updated_at =
                    Timestamp::from_millis(docs[i].updated_at.millis() + rng.gen_range(0..3));
                catalog.upsert(&next);
                docs[i] = next;
            }
            if round % 37 == 5 {
                // A hard delete, indexed or not yet: gone from every answer.
                let gone = docs.swap_remove(rng.gen_range(0..docs.len()));
                catalog.remove(&gone.org_id, gone.id);
            }
            let ids: Vec<ObjectIdHex> = docs.iter().map(|d| d.id).collect();
            let mut query = random_query(&mut rng, &ids);
            if rng.gen_bool(0.3) {
                query.offset = rng.gen_range(0..250);
            }
            if round % 2 == 1 {
                query.filter.terms = random_terms(&mut rng, &docs);
                if rng.gen_bool(0.5) {
                    // Exactly what the search endpoint asks.
                    query.filter.is_deleted = Some(false);
                    query.sort = vec![SortKey {
                        field: SortField::UpdatedAt,
                        descending: true,
                    }];
                    (query.offset, query.limit) = (0, 100);
                    query.with_facets = false;
                }
            }
            let want = by_definition(&docs, &query);
            if round % 2 == 1 {
                searches += 1;
                found += usize::from(!want.ids.is_empty());
            }
            if let Some(org) = catalog.orgs.get(&query.filter.org_id) {
                let rows = org.candidates(&query.filter, None);
                assert_eq!(
                    org.facets_by(rows.as_ref(), true, &query.filter),
                    org.facets_by(rows.as_ref(), false, &query.filter),
                    "round {round}: facets by rows and by postings differ for {query:?}"
                );
            }
            assert_eq!(catalog.plan(&query), want, "round {round}: {query:?}");
            non_empty += usize::from(!want.ids.is_empty());
            if round % 100 == 0 {
                for org in catalog.orgs.values() {
                    assert_orders_are_kept(org);
                }
            }
        }
        assert!(
            non_empty > 1000,
            "queries too selective to prove much: {non_empty}"
        );
        assert!(
            found > searches / 10 && found < searches * 9 / 10,
            "{found} of {searches} searches found something"
        );
    }

    /// Each kept order holds exactly the rows it should, sorted by its field and then by id.
    fn assert_orders_are_kept(org: &OrgIndex) {
        for (k, (field, _)) in ORDERS.into_iter().enumerate() {
            let mut want: Vec<Slot> = (org.all.iter())
                .filter(|&s| holds(k, org.view(s).row))
                .collect();
            want.sort_by(|&a, &b| {
                let (a, b) = (org.view(a), org.view(b));
                by_field(field, a, b).then_with(|| a.row.id.cmp(&b.row.id))
            });
            assert_eq!(org.orders[k], want, "order {k}");
        }
    }

    /// A first page's matches and facets are kept per filter, and every write to the org
    /// (a new value, a value gone, a row now matching or no longer) is seen by the next plan.
    #[test]
    fn kept_first_pages_follow_every_write() {
        let mut docs = acme_docs(9, 200, |_, _| {});
        let mut catalog = Catalog::build(docs.clone());
        let mut rng = StdRng::seed_from_u64(5);
        let ids: Vec<ObjectIdHex> = docs.iter().map(|d| d.id).collect();
        let queries: Vec<ListQuery> = (0..FIRST_PAGES / 2)
            .map(|_| ListQuery {
                with_facets: true,
                after: None,
                offset: 0,
                ..random_query(&mut rng, &ids)
            })
            .collect();
        for round in 0..300 {
            for query in &queries {
                // Twice: the second is answered from what the first kept.
                for _ in 0..2 {
                    assert_eq!(catalog.plan(query), by_definition(&docs, query), "{round}");
                }
            }
            let kept: usize = (catalog.orgs.values())
                .map(|org| org.first_pages.0.lock().unwrap().len())
                .sum();
            assert!(kept > 0, "nothing kept");
            let i = rng.gen_range(0..docs.len());
            let mut next = random_doc(&mut rng, 1000 + round);
            next.id = docs[i].id;
            next.org_id = docs[i].org_id.clone();
            next.created_at = docs[i].created_at;
            next.updated_at = Timestamp::from_millis(docs[i].updated_at.millis() + 1);
            catalog.upsert(&next);
            docs[i] = next;
        }
    }

    /// What the search endpoint asks the store for `text` in `org`.
    fn search_of(org: &str, text: &str) -> ListQuery {
        crate::service::search_query_for(
            &org.into(),
            &crate::domain::query_string::QueryParams::parse(Some(&format!("query={text}"))),
        )
        .expect("a search")
    }

    /// `count` random unit tests of acme, each then shaped by `shape` (given its number).
    fn acme_docs(seed: u64, count: usize, shape: impl Fn(usize, &mut UnitTest)) -> Vec<UnitTest> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..count)
            .map(|n| {
                let mut d = random_unit_test(&mut rng, n);
                d.org_id = "acme".into();
                shape(n, &mut d);
                d
            })
            .collect()
    }

    /// The benchmark's words (bench/src/fixtures.rs), two in each unit test.
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

    /// Searches on unit tests named and described as the benchmark's (bench/src/fixtures.rs):
    /// eight words, two per unit test, and a number.
    #[test]
    fn a_search_reads_only_unit_tests_that_may_match() {
        let docs = acme_docs(7, 20_000, |n, d| {
            let (w1, w2) = (WORDS[n % 8], WORDS[(n / 8 + 3) % 8]);
            d.name = format!("seed-{n} {w1} {w2}");
            d.description = format!("A user walks through {w1}, then {w2}; case {n}.");
            d.is_deleted = n % 50 == 0;
            d.updated_at = Timestamp::from_millis(1_700_000_000_000 + n as i64);
        });
        let catalog = Catalog::build(docs.clone());
        let org = &catalog.orgs["acme"];
        // (query, most texts the search may read)
        for (text, most) in [
            ("zzzz", 0),
            ("q", 0),
            ("zz", 0),
            ("REFUND, password,", 0),
            ("77", 0),
            ("e", 0),
            // 4242 and 14242, and those holding 2424 (the same trigrams): 12424 and 2424x.
            ("4242", 20),
            // The first 100 of 1 in 8, newest first: a short walk.
            ("refund", 150),
            // 1 in 32, newest first: a walk.
            ("refund password", 150),
        ] {
            let query = search_of("acme", text);
            org.texts_read
                .store(0, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(catalog.plan(&query), by_definition(&docs, &query), "{text}");
            let read = org.texts_read.load(std::sync::atomic::Ordering::Relaxed);
            assert!(read <= most, "{text}: read {read} texts");
        }
    }

    /// A search (rows not deleted, newest first) and a list of the rows not deleted step over no
    /// deleted row, even when the newest half was just deleted: a delete moves `updated_at`
    /// forward, so in the order of every row they would all come first.
    #[test]
    fn walks_for_rows_not_deleted_skip_the_rows_just_deleted() {
        let n = 20_000;
        let mut docs = acme_docs(13, n, |i, d| {
            let (w1, w2) = (WORDS[i % 8], WORDS[(i / 8 + 3) % 8]);
            d.name = format!("seed-{i} {w1} {w2}");
            d.description = format!("A user walks through {w1}, then {w2}.");
            d.is_deleted = false;
            d.updated_at = Timestamp::from_millis(1_700_000_000_000 + i as i64);
        });
        let mut catalog = Catalog::build(docs.clone());
        // Half of them deleted, one by one, as the service does: each now the newest.
        for (i, d) in docs.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
            d.is_deleted = true;
            d.updated_at = Timestamp::from_millis(1_800_000_000_000 + i as i64);
            catalog.upsert(d);
        }
        let org = &catalog.orgs["acme"];
        let list = |offset: u64| {
            let mut query = crate::service::list_query_for(
                &"acme".into(),
                &crate::domain::query_string::QueryParams::parse(Some("is_deleted=false")),
            )
            .unwrap();
            query.sort = vec![SortKey {
                field: SortField::UpdatedAt,
                descending: true,
            }];
            (query.offset, query.limit) = (offset, 50);
            query
        };
        // (query, most slots its walk may step over)
        for (query, most) in [
            // 1 live row in 32 holds both words, 1 in 16 the first: 100 of them within ~3,200
            // and ~1,600 live rows.
            (search_of("acme", "refund password"), 4_000),
            (search_of("acme", "refund"), 2_000),
            // No term: a slice of the live rows, however deep.
            (list(0), 0),
            (list(9_000), 0),
        ] {
            org.stepped.store(0, std::sync::atomic::Ordering::Relaxed);
            let plan = catalog.plan(&query);
            assert_eq!(plan, by_definition(&docs, &query), "{query:?}");
            assert!(!plan.ids.is_empty());
            let stepped = org.stepped.load(std::sync::atomic::Ordering::Relaxed);
            assert!(stepped <= most, "{query:?}: stepped over {stepped} slots");
        }
    }

    /// A walk's lookups of its candidates answer as the bitmap does, whatever order they come in,
    /// and a block of slots gets bits only once the walk has asked about it often enough to repay
    /// them: a walk among the newest slots sets the bits of their block alone (it set every
    /// candidate's bit, 31k at 1M, for one block's worth of steps), a short walk sets none.
    #[test]
    fn a_walk_sets_candidates_bits_only_for_the_blocks_it_keeps_asking_about() {
        let len = 5 * BLOCK;
        let mut rng = StdRng::seed_from_u64(3);
        let sparse: RoaringBitmap = (0..len).filter(|_| rng.gen_range(0..32) == 0).collect();
        let dense: RoaringBitmap = (0..len).filter(|_| rng.gen_bool(0.5)).collect();
        let with_bits = |c: &Candidates| c.blocks.iter().filter(|b| b.bits.is_some()).count();
        let walk = |slots: &RoaringBitmap, steps: &mut dyn Iterator<Item = Slot>| {
            let mut candidates = Candidates::new(slots, len as usize);
            for s in steps {
                assert_eq!(candidates.has(s), slots.contains(s), "slot {s}");
            }
            with_bits(&candidates)
        };
        // (candidates, slots asked about in turn, blocks then with bits)
        let newest = || (0..len).rev();
        let cases: [(&RoaringBitmap, Box<dyn Iterator<Item = Slot>>, usize); 5] = [
            // 1 in 32: 100 matches within 3,200 steps, all in the newest block.
            (&sparse, Box::new(newest().take(3_200)), 1),
            // A few steps: lookups cost less than setting the block's 2,000 bits.
            (&sparse, Box::new(newest().take(100)), 0),
            // 1 in 2: 1,000 steps cost less than setting 32,000 bits; 10,000 do not.
            (&dense, Box::new(newest().take(1_000)), 0),
            (&dense, Box::new(newest().take(10_000)), 1),
            // In no order, over every block, often enough for each.
            (
                &sparse,
                Box::new((0..200_000).map(|_| rng.gen_range(0..len))),
                5,
            ),
        ];
        for (i, (slots, mut steps, blocks)) in cases.into_iter().enumerate() {
            assert_eq!(walk(slots, &mut steps), blocks, "case {i}");
        }
    }

    /// A search stops narrowing by a term's wider grams when the walk looks short, and narrows by
    /// them after all when it is not: here each of the grams of "refund" is held by 1 row in 8
    /// without the word, so the narrowest alone leaves 3,000 candidates, and the 5 rows holding it
    /// are the oldest, so the walk from the newest would read every candidate's text.
    #[test]
    fn a_search_whose_walk_runs_long_narrows_by_every_gram() {
        let docs = acme_docs(9, 24_005, |n, d| {
            d.name = match n {
                0..5 => format!("refund {n}"),
                _ => match (n - 5) % 8 {
                    0 => format!("xref {n}"),
                    1 => format!("xefu {n}"),
                    2 => format!("xfun {n}"),
                    3 => format!("xund {n}"),
                    _ => format!("plain {n}"),
                },
            };
            d.description = String::new();
            d.is_deleted = false;
            d.updated_at = Timestamp::from_millis(1_700_000_000_000 + n as i64);
        });
        let catalog = Catalog::build(docs.clone());
        let org = &catalog.orgs["acme"];
        let query = search_of("acme", "refund");
        org.texts_read
            .store(0, std::sync::atomic::Ordering::Relaxed);
        let plan = catalog.plan(&query);
        assert_eq!(plan, by_definition(&docs, &query));
        assert_eq!(plan.ids.len(), 5);
        // The first walk gives up after 8,192 steps, having read about 1,024 texts; walked to
        // the end, it would have read all 3,005.
        let read = org.texts_read.load(std::sync::atomic::Ordering::Relaxed);
        assert!(read <= 1_500, "read {read} texts");
    }

    /// What the grams cost and save at scale, on unit tests shaped as the benchmark's; prints one
    /// table row per size and search. Run with
    /// `SIMTEST_SCALE=10000,100000,1000000 cargo test --release --lib search_costs_at_scale -- --ignored --nocapture`
    /// (`SIMTEST_SCALE_SEARCHES=refund/4242` for only those searches, `SIMTEST_SCALE_RUNS=20000`
    /// to time each that many times, e.g. under `perf`).
    #[test]
    #[ignore = "a measurement, slow in debug builds"]
    fn search_costs_at_scale() {
        use std::time::{Duration, Instant};
        fn rss_mib() -> f64 {
            let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
            let pages: f64 = statm
                .split(' ')
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0.0);
            pages * 4096.0 / (1 << 20) as f64
        }
        let sizes = std::env::var("SIMTEST_SCALE").unwrap_or_else(|_| "10000,100000".into());
        println!(
            "| N | search | grams p50 µs | grams p99 µs | scan p50 µs | scan p99 µs | results |"
        );
        for n in sizes
            .split(',')
            .map(|s| s.trim().parse::<usize>().expect("a size"))
        {
            let mut rng = StdRng::seed_from_u64(1);
            let template = random_unit_test(&mut rng, 0);
            let before = rss_mib();
            let started = Instant::now();
            // Unit test `i` as the benchmark seeds it (bench/src/fixtures.rs).
            let unit_test = |i: usize, is_deleted: bool, updated_at: i64| {
                let (w1, w2) = (WORDS[i % 8], WORDS[(i / 8 + 3) % 8]);
                let mut id = [0u8; 12];
                id[4..].copy_from_slice(&(i as u64).to_be_bytes());
                UnitTest {
                    id: ObjectIdHex::from_bytes(id),
                    org_id: "bench".into(),
                    name: format!("seed-{i} {w1} {w2}"),
                    description: format!(
                        "A user walks through {w1}, then {w2}; case ({i}) of the benchmark set."
                    ),
                    is_deleted,
                    updated_at: Timestamp::from_millis(updated_at),
                    ..template.clone()
                }
            };
            let mut catalog = Catalog::default();
            for i in 0..n {
                catalog.load(&unit_test(i, false, 1_700_000_000_000 + i as i64));
            }
            let load = started.elapsed();
            catalog.loaded();
            let without_grams = rss_mib() - before;
            let started = Instant::now();
            // In steps, as the store builds them in the background.
            while catalog.index_grams(1024) > 0 {}
            let build = started.elapsed();
            let grams_resident = rss_mib() - before - without_grams;
            // `SIMTEST_SCALE_DELETED=2`: then every second unit test deleted, each delete making
            // it the newest (the adversarial case of searches that walk newest first).
            let every =
                std::env::var("SIMTEST_SCALE_DELETED").map_or(0, |d| d.parse().expect("a count"));
            if every > 0 {
                for i in (0..n).step_by(every) {
                    catalog.upsert(&unit_test(i, true, 1_800_000_000_000 + i as i64));
                }
                println!("N = {n}: 1 in {every} deleted since");
            }
            let org = &catalog.orgs["bench"];
            let (keys, postings) = org.grams.size();
            println!(
                "N = {n}: catalog loaded in {} ms, {without_grams:.0} MiB resident; grams built in {} ms, {grams_resident:.0} MiB more ({keys} keys, {postings} postings, {:.1} MiB by size)",
                load.as_millis(),
                build.as_millis(),
                org.grams.bytes() as f64 / (1 << 20) as f64,
            );
            let runs =
                std::env::var("SIMTEST_SCALE_RUNS").map_or(200, |r| r.parse().expect("a count"));
            let searches = std::env::var("SIMTEST_SCALE_SEARCHES").unwrap_or_else(|_| {
                "refund/refund password/(4242)/zzzz/refund, password,/q/77".into()
            });
            for text in searches.split('/') {
                let query = search_of("bench", text);
                let time = |terms_by: Terms| {
                    let mut times: Vec<Duration> = (0..runs)
                        .map(|_| {
                            let started = Instant::now();
                            std::hint::black_box(org.plan_by(&query, terms_by));
                            started.elapsed()
                        })
                        .collect();
                    times.sort();
                    (
                        times[runs / 2].as_secs_f64() * 1e6,
                        times[runs * 99 / 100].as_secs_f64() * 1e6,
                    )
                };
                let ((g50, g99), (s50, s99)) = (time(Terms::Grams), time(Terms::Texts));
                let results = org.plan_by(&query, Terms::Grams).ids.len();
                assert_eq!(org.plan_by(&query, Terms::Texts).ids.len(), results);
                println!(
                    "| {n} | `{text}` | {g50:.0} | {g99:.0} | {s50:.0} | {s99:.0} | {results} |"
                );
            }
        }
    }

    #[test]
    fn descending_orders_keep_ties_in_id_order_from_any_offset() {
        let docs = acme_docs(5, 120, |_, _| {});
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
                    &"acme".into(),
                    &crate::domain::query_string::QueryParams::parse(Some(&q)),
                )
                .unwrap();
                assert_eq!(catalog.plan(&query), by_definition(&docs, &query), "{q}");
            }
        }
    }
}
