//! Which rows of the catalog may hold a search term, answered without reading them: the rows
//! holding each 1-, 2- and 3-byte sequence (gram) of their folded text, as bitmaps. A term of up to
//! three bytes is one gram, so its bitmap is the exact answer; a longer term can only be in a
//! row holding each of its 3-byte grams, so the intersection of those bitmaps is a (usually tight)
//! superset, which the caller verifies. Without this, a search that finds few or no unit tests
//! read every unit test of the org (41 ms per request at 100k).
//!
//! The grams of the unit tests there at start are built after the store opens, a slice at a time
//! ([`GramIndex::catch_up`]): until every row is indexed the index answers nothing and searches
//! read the texts, so start-up is not delayed and no answer is ever missing a row.
//!
//! Grams are over bytes of UTF-8, not characters: a term occurs in a text exactly when its bytes
//! do, keys fit a `u32` exactly (no hash collisions), and a one-character term of a multi-byte
//! character is still one gram. Grams holding ASCII white space are not kept: search terms never
//! hold white space, and the separator between name and description is a newline, so no gram
//! spans both.

use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;

use crate::domain::search::{GRAM, blank, grams, key, trigrams};

/// The postings of every gram of the text of every row indexed so far.
#[derive(Default)]
pub struct GramIndex {
    postings: FxHashMap<u32, RoaringBitmap>,
    /// Rows below this have their grams in `postings`; the ones above are still to be indexed.
    indexed: u32,
}

/// The rows that may hold every term of a search.
#[derive(Debug, PartialEq)]
pub struct TermRows {
    pub rows: RoaringBitmap,
    /// Every row of `rows` holds every term: no need to read them.
    pub exact: bool,
    /// Every gram of every term was intersected (`false` when `enough` stopped it early).
    pub every_gram: bool,
}

impl GramIndex {
    /// Records the new row `slot` (rows are numbered in the order they come) with `text`.
    pub fn push(&mut self, slot: u32, text: &str) {
        // While older rows wait to be indexed, `catch_up` will take this one in its turn.
        if slot == self.indexed {
            self.add(slot, text);
            self.indexed += 1;
        }
    }

    /// Records that the text of row `slot` went from `old` to `new`.
    pub fn change(&mut self, slot: u32, old: &str, new: &str) {
        // A row not indexed yet is read as it is then.
        if slot < self.indexed && old != new {
            self.remove(slot, old);
            self.add(slot, new);
        }
    }

    /// Indexes up to `most` of the rows not indexed yet, whose texts `pending` gives in row order
    /// (all of them, from the first row not indexed); compresses the postings when that was the
    /// last of them. Returns how many rows it indexed.
    pub fn catch_up<'a>(
        &mut self,
        pending: impl ExactSizeIterator<Item = &'a str>,
        most: usize,
    ) -> usize {
        let last = pending.len() <= most;
        let mut count = 0;
        for text in pending.take(most) {
            self.add(self.indexed, text);
            self.indexed += 1;
            count += 1;
        }
        if last && count > 0 {
            self.optimize();
        }
        count
    }

    /// How many rows (the first ones) are indexed.
    pub fn indexed(&self) -> u32 {
        self.indexed
    }

    /// How many rows are indexed and the postings of their grams, to be saved.
    pub fn parts(&self) -> (u32, &FxHashMap<u32, RoaringBitmap>) {
        (self.indexed, &self.postings)
    }

    /// The index [`GramIndex::parts`] gave.
    pub fn from_parts(indexed: u32, postings: FxHashMap<u32, RoaringBitmap>) -> Self {
        Self { postings, indexed }
    }

    /// Adds the grams of `text` for `slot`.
    fn add(&mut self, slot: u32, text: &str) {
        // A gram met twice in one text is simply seen again (adding a row twice changes
        // nothing), so no per-text sort or dedup.
        for gram in grams(text) {
            let rows = self.postings.entry(gram).or_default();
            // Loading adds rows in ascending order, where `push` is an append; a row already
            // last needs nothing.
            if rows.max() != Some(slot) && rows.try_push(slot).is_err() {
                rows.insert(slot);
            }
        }
    }

    /// Takes out the grams of `text` (what `add` was given) for `slot`.
    fn remove(&mut self, slot: u32, text: &str) {
        for gram in grams(text) {
            if let Some(rows) = self.postings.get_mut(&gram)
                && rows.remove(slot)
                && rows.is_empty()
            {
                self.postings.remove(&gram);
            }
        }
    }

    /// Compresses the postings (runs of rows).
    fn optimize(&mut self) {
        for rows in self.postings.values_mut() {
            rows.optimize();
        }
        self.postings.shrink_to_fit();
    }

    /// The rows that may hold every one of `terms` (each already folded), or `None` when the
    /// grams cannot tell: some of the `rows` rows are not indexed yet, no term has a byte, or a
    /// term holds white space.
    ///
    /// The narrowest gram of each term is always intersected. A long term's other grams follow,
    /// narrowest first, until `enough` says the rows found so far are few enough for the caller:
    /// those grams take out only rows the caller's check of the text would reject anyway, and a
    /// gram held by many rows costs a pass over 8 KB per 65,536 rows (two frequent words at 1M:
    /// ten such grams, 260 µs, 4x the walk they spared).
    pub fn rows_with(
        &self,
        terms: &[String],
        rows: usize,
        enough: impl Fn(&RoaringBitmap) -> bool,
    ) -> Option<TermRows> {
        if (self.indexed as usize) < rows {
            return None;
        }
        // Per term: its narrowest gram's rows first, then the rest.
        let mut narrowest: Vec<&RoaringBitmap> = Vec::with_capacity(terms.len());
        let mut others: Vec<&RoaringBitmap> = Vec::new();
        let mut exact = true;
        for term in terms {
            let bytes = term.as_bytes();
            if bytes.iter().copied().any(blank) {
                return None;
            }
            let mut keys: Vec<u32> = if bytes.len() <= GRAM {
                (!bytes.is_empty())
                    .then(|| key(bytes))
                    .into_iter()
                    .collect()
            } else {
                exact = false;
                trigrams(term).collect()
            };
            keys.sort_unstable();
            keys.dedup();
            let mut lists = Vec::with_capacity(keys.len());
            for key in keys {
                match self.postings.get(&key) {
                    Some(rows) => lists.push(rows),
                    // A gram no row holds: nothing matches.
                    None => {
                        return Some(TermRows {
                            rows: RoaringBitmap::new(),
                            exact: true,
                            every_gram: true,
                        });
                    }
                }
            }
            lists.sort_unstable_by_key(|rows| rows.len());
            let mut lists = lists.into_iter();
            narrowest.extend(lists.next());
            others.extend(lists);
        }
        // Smallest first: each intersection costs at most the size of the smaller side.
        narrowest.sort_unstable_by_key(|rows| (rows.len(), std::ptr::from_ref(*rows)));
        // Two terms may share their narrowest gram ("fun" in "refund").
        narrowest.dedup_by(|a, b| std::ptr::eq(*a, *b));
        others.sort_unstable_by_key(|rows| rows.len());
        let (first, rest) = narrowest.split_first()?;
        let mut rows = (*first).clone();
        for other in rest {
            narrow(&mut rows, other);
        }
        let mut every_gram = true;
        for other in others {
            if rows.is_empty() {
                break;
            }
            if enough(&rows) {
                every_gram = false;
                break;
            }
            narrow(&mut rows, other);
        }
        // No row: nothing to verify either.
        let exact = exact || rows.is_empty();
        Some(TermRows {
            rows,
            exact,
            every_gram,
        })
    }

    /// How many grams and postings are kept (for tests and measurements).
    #[cfg(test)]
    pub fn size(&self) -> (usize, u64) {
        (
            self.postings.len(),
            self.postings.values().map(RoaringBitmap::len).sum(),
        )
    }

    /// About the bytes the postings take: their serialized size (close to what they hold in
    /// memory) and the map's slots.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        let slot = size_of::<(u32, RoaringBitmap)>() + 1;
        self.postings.capacity() * slot
            + self
                .postings
                .values()
                .map(RoaringBitmap::serialized_size)
                .sum::<usize>()
    }
}

/// `rows &= other`, going through the smaller side. roaring intersects runs with an array by
/// looking up each of the array's slots in the runs: the grams of digits are runs (unit tests
/// numbered in a row), so a rare number's few rows, still runs, went through all 10,000 rows of
/// its next gram at 1M (`perf`: 20 % of the server's CPU on `search rare`). As an array, the few
/// rows are the side gone through.
fn narrow(rows: &mut RoaringBitmap, other: &RoaringBitmap) {
    if rows.len() * 16 < other.len() {
        rows.remove_run_compression();
    }
    *rows &= other;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(texts: &[&str]) -> GramIndex {
        let mut index = GramIndex::default();
        for (slot, text) in texts.iter().enumerate() {
            index.push(slot as u32, text);
        }
        index
    }

    fn rows(index: &GramIndex, terms: &[&str]) -> Option<(Vec<u32>, bool)> {
        let terms: Vec<String> = terms.iter().map(|t| t.to_string()).collect();
        index
            .rows_with(&terms, index.indexed() as usize, |_| false)
            .map(|found| (found.rows.iter().collect(), found.exact))
    }

    #[test]
    fn short_terms_are_answered_exactly_and_long_ones_narrowed() {
        let index = index(&[
            "refund\nfor a user",
            "password\nsignup",
            "σ\nωοδοσ",
            "ab\ncd",
        ]);
        assert_eq!(rows(&index, &["r"]), Some((vec![0, 1], true)));
        assert_eq!(rows(&index, &["un"]), Some((vec![0], true)));
        // "σ" is two bytes, "ωο" four: one gram, then two.
        assert_eq!(rows(&index, &["σ"]), Some((vec![2], true)));
        assert_eq!(rows(&index, &["ωο"]), Some((vec![2], false)));
        assert_eq!(rows(&index, &["refund"]), Some((vec![0], false)));
        assert_eq!(rows(&index, &["refund", "signup"]), Some((vec![], true)));
        assert_eq!(rows(&index, &["q"]), Some((vec![], true)));
        assert_eq!(rows(&index, &["zz"]), Some((vec![], true)));
        // No gram crosses the name/description boundary or a space.
        assert_eq!(rows(&index, &["bc"]), Some((vec![], true)));
        assert_eq!(rows(&index, &["ra"]), Some((vec![], true)));
        // What the grams cannot answer, they leave to the caller.
        assert_eq!(rows(&index, &["a b"]), None);
        assert_eq!(rows(&index, &[""]), None);
    }

    /// Narrowing few rows kept as runs by a wide gram gives the intersection (the few rows are
    /// turned into an array first, which only `perf` sees), and wide rows narrowed by fewer stay
    /// runs: turned into bitmaps, they would cost 8 KB per container.
    #[test]
    fn few_rows_in_runs_are_narrowed_as_an_array() {
        // Runs of 10 rows, 1 in 1,000 (as the numbers holding "424"), and 1 row in 4.
        let mut few: RoaringBitmap = (0..1_000_000u32).filter(|r| r / 10 % 100 == 42).collect();
        few.optimize();
        let wide: RoaringBitmap = (0..1_000_000u32).step_by(4).collect();
        let runs = |rows: &RoaringBitmap| rows.statistics().n_run_containers;
        assert!(runs(&few) > 0);
        let mut narrowed = few.clone();
        narrow(&mut narrowed, &wide);
        assert_eq!(narrowed, &few & &wide);
        let mut all = RoaringBitmap::from_iter(0..1_000_000u32);
        all.optimize();
        narrow(&mut all, &few);
        assert_eq!(all, few);
        assert!(runs(&all) > 0);
    }

    #[test]
    fn enough_stops_after_the_narrowest_gram_of_each_term() {
        // "ref" is held by rows 0, 1 and 2; "und" by 0 and 1 only; "pas" by 0 and 3.
        let index = index(&["refund password", "refund", "refer", "pass"]);
        let terms = |ts: &[&str]| ts.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        let found = |ts: &[&str], stop: bool| {
            let found = index.rows_with(&terms(ts), 4, |_| stop).expect("indexed");
            (
                found.rows.iter().collect::<Vec<_>>(),
                found.exact,
                found.every_gram,
            )
        };
        // The narrowest gram of "refund" ("efu", "fun" or "und": rows 0 and 1) and of "pass".
        assert_eq!(found(&["refund", "pass"], true), (vec![0], false, false));
        assert_eq!(found(&["refund"], true), (vec![0, 1], false, false));
        assert_eq!(found(&["refund"], false), (vec![0, 1], false, true));
        // Short terms have one gram each: nothing is left to stop before.
        assert_eq!(found(&["re", "pa"], true), (vec![0], true, true));
        // Terms sharing their narrowest gram.
        assert_eq!(found(&["fun", "refund"], true), (vec![0, 1], false, false));
        // A term with no row stops nothing short: nothing matches.
        assert_eq!(found(&["refund", "zzz"], true), (vec![], true, true));
    }

    #[test]
    fn removing_a_text_takes_out_only_its_row() {
        let mut index = index(&["refund", "refund", "signup"]);
        index.remove(0, "refund");
        assert_eq!(rows(&index, &["fun"]), Some((vec![1], true)));
        index.remove(1, "refund");
        assert_eq!(rows(&index, &["fun"]), Some((vec![], true)));
        index.remove(2, "signup");
        assert_eq!(index.size(), (0, 0));
    }

    #[test]
    fn rows_waiting_to_be_indexed_are_indexed_as_they_are_then() {
        // The store opened with three rows; none is indexed yet.
        let mut texts = vec!["refund", "signup", "cancel"];
        let mut index = GramIndex::default();
        let terms = |t: &str| vec![t.to_owned()];
        index.change(0, "refund", "billing");
        texts[0] = "billing";
        assert_eq!(index.rows_with(&terms("bil"), 3, |_| false), None);
        assert_eq!(index.catch_up(texts.iter().copied(), 2), 2);
        assert_eq!(
            index.rows_with(&terms("bil"), 3, |_| false),
            None,
            "row 2 waits"
        );
        // A new row while older ones wait is left to `catch_up`; an indexed row changes.
        index.push(3, "upgrade");
        texts.push("upgrade");
        index.change(1, "signup", "refund");
        texts[1] = "refund";
        assert_eq!(index.catch_up(texts[2..].iter().copied(), 10), 2);
        assert_eq!(index.indexed(), 4);
        assert_eq!(rows(&index, &["bil"]), Some((vec![0], true)));
        assert_eq!(rows(&index, &["ref"]), Some((vec![1], true)));
        assert_eq!(rows(&index, &["sig"]), Some((vec![], true)));
        assert_eq!(rows(&index, &["upg"]), Some((vec![3], true)));
        index.push(4, "cancel");
        assert_eq!(rows(&index, &["can"]), Some((vec![2, 4], true)));
    }
}
