//! Unit test sets in the embedded store: their tables, the checks a set write and a unit test
//! delete make inside the writer's transaction, and the sets held in memory for lists and searches.
//!
//! Every write goes through the one writer thread, in one redb transaction per batch, so "a set
//! lists only active unit tests" and "a unit test listed by a live set is not deleted" are checked
//! against the same state the write lands on: a set write and a delete of a unit test it lists
//! never both succeed, whatever their order.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use super::grams::GramIndex;
use super::{Failure, Id, UNIT_TEST_SETS, UNIT_TESTS, decode, encode};
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest};
use crate::store::{StoreError, StoreResult, Written};

/// Active set names: (org, name) → id. Holds exactly the sets with `is_deleted: false`.
const ACTIVE_SET_NAMES: TableDefinition<(&str, &str), Id> =
    TableDefinition::new("simulation_unit_test_set_active_name");
/// (org, unit test, set) for every unit test a set that is not deleted lists: what a unit test
/// delete checks, without reading any set.
const SET_MEMBERS: TableDefinition<(&str, Id, Id), ()> =
    TableDefinition::new("simulation_unit_test_set_member");

/// Creates the sets' tables, and builds the names and members of sets stored before they existed
/// (a store written by an older simtest, whose sets came from seeds).
pub(super) fn prepare(db: &Database) -> Result<(), Failure> {
    let txn = db.begin_write()?;
    txn.open_table(ACTIVE_SET_NAMES)?;
    let members_missing = txn.open_table(SET_MEMBERS)?.is_empty()?;
    if members_missing {
        let stored: Vec<UnitTestSet> = {
            let sets = txn.open_table(UNIT_TEST_SETS)?;
            let mut stored = Vec::new();
            for entry in sets.iter()? {
                stored.push(decode(entry?.1.value())?);
            }
            stored
        };
        upsert(&txn, &stored)?;
    }
    txn.commit()?;
    Ok(())
}

/// Whether a set that is not deleted lists `unit_test` (in the transaction's state).
pub(super) fn listed(
    txn: &WriteTransaction,
    org_id: &str,
    unit_test: ObjectIdHex,
) -> Result<bool, Failure> {
    let members = txn.open_table(SET_MEMBERS)?;
    let id = unit_test.bytes();
    Ok(members
        .range((org_id, id, [0u8; 12])..=(org_id, id, [0xffu8; 12]))?
        .next()
        .is_some())
}

/// The same question on a read snapshot (the quick check before a delete; the writer decides).
pub(super) fn listed_in(
    db: &Database,
    org_id: &str,
    unit_test: ObjectIdHex,
) -> Result<bool, Failure> {
    let txn = redb::ReadableDatabase::begin_read(db)?;
    let members = txn.open_table(SET_MEMBERS)?;
    let id = unit_test.bytes();
    Ok(members
        .range((org_id, id, [0u8; 12])..=(org_id, id, [0xffu8; 12]))?
        .next()
        .is_some())
}

/// Whether any set, deleted or not, lists `unit_test` (what a hard delete checks: deleted sets
/// keep their runs). Sets are few: their table is read for the org.
pub(super) fn listed_by_any(
    txn: &WriteTransaction,
    org_id: &str,
    unit_test: ObjectIdHex,
) -> Result<bool, Failure> {
    let sets = txn.open_table(UNIT_TEST_SETS)?;
    for entry in sets.range((org_id, [0u8; 12])..=(org_id, [0xffu8; 12]))? {
        let set: UnitTestSet = decode(entry?.1.value())?;
        if set
            .unit_test_runs
            .iter()
            .any(|r| r.unit_test_id == unit_test)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A set write decided against the transaction's state: its bytes and the stored set it replaces.
pub(super) struct SetChange<'a> {
    next: &'a UnitTestSet,
    bytes: Vec<u8>,
    previous: Option<UnitTestSet>,
}

/// Decides a new set: refused (`Err`) with [`StoreError::Duplicate`] when an active set has its
/// name, [`Written::UnitTestMissing`] when a unit test it lists is not active in its org.
pub(super) fn decide_insert<'a>(
    txn: &WriteTransaction,
    set: &'a UnitTestSet,
) -> Result<Result<SetChange<'a>, StoreResult<Written>>, Failure> {
    if let Some(refused) = refusal(txn, None, set)? {
        return Ok(Err(refused));
    }
    Ok(Ok(SetChange {
        next: set,
        bytes: encode(set)?,
        previous: None,
    }))
}

/// Decides a replace: refused with [`Written::Stale`] unless the stored set is not deleted and
/// still at `expected`, then as [`decide_insert`] for the name (when it changes) and unit tests.
pub(super) fn decide_replace<'a>(
    txn: &WriteTransaction,
    expected: Timestamp,
    next: &'a UnitTestSet,
) -> Result<Result<SetChange<'a>, StoreResult<Written>>, Failure> {
    let current: Option<UnitTestSet> = {
        let sets = txn.open_table(UNIT_TEST_SETS)?;
        sets.get((next.org_id.as_str(), next.id.bytes()))?
            .map(|v| decode(v.value()))
            .transpose()?
    };
    let current = match current {
        Some(c) if !c.is_deleted && c.updated_at == expected => c,
        _ => return Ok(Err(Ok(Written::Stale))),
    };
    if let Some(refused) = refusal(txn, Some(&current), next)? {
        return Ok(Err(refused));
    }
    Ok(Ok(SetChange {
        next,
        bytes: encode(next)?,
        previous: Some(current),
    }))
}

/// Why `next` (replacing `current`, if any) may not be written, if it may not.
fn refusal(
    txn: &WriteTransaction,
    current: Option<&UnitTestSet>,
    next: &UnitTestSet,
) -> Result<Option<StoreResult<Written>>, Failure> {
    if next.is_deleted {
        return Ok(None);
    }
    let org = next.org_id.as_str();
    let renamed = current.is_none_or(|c| c.name != next.name);
    if renamed {
        let names = txn.open_table(ACTIVE_SET_NAMES)?;
        if names.get((org, next.name.as_str()))?.is_some() {
            return Ok(Some(Err(StoreError::Duplicate)));
        }
    }
    let unit_tests = txn.open_table(UNIT_TESTS)?;
    for id in next.unit_test_ids() {
        let active = match unit_tests.get((org, id.bytes()))? {
            Some(v) => !decode::<UnitTest>(v.value())?.is_deleted,
            None => false,
        };
        if !active {
            return Ok(Some(Ok(Written::UnitTestMissing(id))));
        }
    }
    Ok(None)
}

/// Writes a decided set change: the document, its name and its members.
pub(super) fn apply(txn: &WriteTransaction, change: SetChange<'_>) -> Result<(), Failure> {
    write(txn, change.previous.as_ref(), change.next, &change.bytes)
}

/// Seed sets, upserted by id with their names and members kept in step.
pub(super) fn upsert(txn: &WriteTransaction, sets: &[UnitTestSet]) -> Result<(), Failure> {
    for set in sets {
        let previous: Option<UnitTestSet> = {
            let table = txn.open_table(UNIT_TEST_SETS)?;
            table
                .get((set.org_id.as_str(), set.id.bytes()))?
                .map(|v| decode(v.value()))
                .transpose()?
        };
        write(txn, previous.as_ref(), set, &encode(set)?)?;
    }
    Ok(())
}

fn write(
    txn: &WriteTransaction,
    previous: Option<&UnitTestSet>,
    next: &UnitTestSet,
    bytes: &[u8],
) -> Result<(), Failure> {
    let org = next.org_id.as_str();
    let id = next.id.bytes();
    let mut names = txn.open_table(ACTIVE_SET_NAMES)?;
    let mut members = txn.open_table(SET_MEMBERS)?;
    if let Some(previous) = previous.filter(|p| !p.is_deleted) {
        names.remove((org, previous.name.as_str()))?;
        for unit_test in previous.unit_test_ids() {
            members.remove((org, unit_test.bytes(), id))?;
        }
    }
    if !next.is_deleted {
        names.insert((org, next.name.as_str()), id)?;
        for unit_test in next.unit_test_ids() {
            members.insert((org, unit_test.bytes(), id), ())?;
        }
    }
    let mut sets = txn.open_table(UNIT_TEST_SETS)?;
    sets.insert((org, id), bytes)?;
    Ok(())
}

/// One set as lists and searches read it: the set and its folded search text.
struct Held {
    set: Arc<UnitTestSet>,
    text: String,
}

/// The sets of one org: numbered in the order they came (the slots of their search grams).
#[derive(Default)]
struct OrgSets {
    held: Vec<Held>,
    slots: HashMap<ObjectIdHex, u32>,
    /// Which sets may hold a search term, as for unit tests (see `grams`): a search that matches
    /// few sets reads only those.
    grams: GramIndex,
}

/// Every set of every org, in memory: sets are few next to unit tests (a set names many), so a
/// list or a search reads the org's sets here instead of decoding them from redb. Only the
/// writer changes it, after each commit.
#[derive(Default)]
pub(super) struct Sets(HashMap<OrgId, OrgSets>);

impl Sets {
    /// Every set stored in `db`.
    pub(super) fn load(db: &Database) -> Result<Self, Failure> {
        let txn = redb::ReadableDatabase::begin_read(db)?;
        let table = txn.open_table(UNIT_TEST_SETS)?;
        let mut sets = Sets::default();
        for entry in table.iter()? {
            let (_, value) = entry?;
            sets.upsert(decode(value.value())?);
        }
        Ok(sets)
    }

    /// Records a committed write of `set`.
    pub(super) fn upsert(&mut self, set: UnitTestSet) {
        let org = self.0.entry(set.org_id.clone()).or_default();
        let text = set.search_text();
        let held = Held {
            set: Arc::new(set),
            text,
        };
        match org.slots.get(&held.set.id) {
            Some(&slot) => {
                let old = &mut org.held[slot as usize];
                org.grams.change(slot, &old.text, &held.text);
                *old = held;
            }
            None => {
                let slot = org.held.len() as u32;
                org.grams.push(slot, &held.text);
                org.slots.insert(held.set.id, slot);
                org.held.push(held);
            }
        }
    }

    pub(super) fn get(&self, org_id: &OrgId, id: ObjectIdHex) -> Option<Arc<UnitTestSet>> {
        let org = self.0.get(org_id)?;
        Some(org.held[*org.slots.get(&id)? as usize].set.clone())
    }

    /// The page `query` selects: the sets its terms may be in (all of them without terms), each
    /// checked against the filter, then the one definition of order, paging and facets.
    pub(super) fn page(&self, query: &UnitTestSetQuery) -> SetPage {
        let filter = &query.filter;
        let Some(org) = self.0.get(&filter.org_id) else {
            return SetPage::cut(query, Vec::new());
        };
        let mut without_terms = filter.clone();
        without_terms.terms.clear();
        let has_terms = |held: &Held| {
            filter
                .terms
                .iter()
                .all(|term| held.text.contains(term.as_str()))
        };
        let candidates = match (
            filter.terms.is_empty(),
            org.grams
                .rows_with(&filter.terms, org.held.len(), |_| false),
        ) {
            (false, Some(found)) => found
                .rows
                .iter()
                .map(|slot| &org.held[slot as usize])
                .filter(|held| found.exact || has_terms(held))
                .collect::<Vec<_>>(),
            _ => org.held.iter().filter(|held| has_terms(held)).collect(),
        };
        let matching = candidates
            .into_iter()
            .filter(|held| without_terms.matches(&held.set))
            .map(|held| held.set.clone())
            .collect();
        SetPage::cut(query, matching)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::domain::unit_test_set::{UnitTestRun, UnitTestSetFilter};
    use crate::domain::{Tag, UserInfo};

    const WORDS: [&str; 8] = [
        "Nightly",
        "refund",
        "ΣΟΦΙΑ",
        "straße",
        "a.b*",
        "zz",
        "Ünïcode",
        "x",
    ];

    fn random_set(rng: &mut StdRng, n: u8) -> UnitTestSet {
        let w: Vec<&str> = (0..4)
            .map(|_| WORDS[rng.gen_range(0..WORDS.len())])
            .collect();
        let name = format!("{} {} {n}", w[0], w[1]);
        let description = rng.gen_bool(0.7).then(|| format!("{} {}", w[2], w[3]));
        let who = UserInfo {
            org_id: "acme".into(),
            user_id: ["alice", "bob"][rng.gen_range(0..2)].into(),
        };
        let at = Timestamp::from_millis(1_700_000_000_000 + rng.gen_range(0..4));
        UnitTestSet {
            id: ObjectIdHex::from_bytes([n; 12]),
            org_id: "acme".into(),
            name,
            description,
            unit_test_runs: (0..rng.gen_range(1..3))
                .map(|_| UnitTestRun {
                    unit_test_id: ObjectIdHex::from_bytes([rng.gen_range(0..4); 12]),
                    run_count: 1,
                })
                .collect(),
            last_triggered_run_id: None,
            tags: vec![Tag {
                key: ["team", "kind"][rng.gen_range(0..2)].into(),
                value: None,
            }],
            is_deleted: rng.gen_bool(0.2),
            creator: who.clone(),
            updated_by: who,
            created_at: at,
            updated_at: at,
        }
    }

    /// Pages from the grams-backed index equal the definition (every set filtered by `matches`,
    /// then `SetPage::cut`) through inserts and changes, for terms of every length, terms no set
    /// holds, Unicode case folding and regex characters.
    #[test]
    fn pages_match_the_definition_through_changes() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut sets = Sets::default();
        let mut all: Vec<UnitTestSet> = Vec::new();
        for round in 0..400u32 {
            let n = rng.gen_range(0..40u8);
            let set = random_set(&mut rng, n);
            match all.iter_mut().find(|s| s.id == set.id) {
                Some(old) => *old = set.clone(),
                None => all.push(set.clone()),
            }
            sets.upsert(set);

            let mut filter = UnitTestSetFilter::for_org(&"acme".into());
            let word = WORDS[rng.gen_range(0..WORDS.len())];
            let term: String = match rng.gen_range(0..4) {
                0 => word.to_owned(),
                1 => word.chars().take(1).collect(),
                2 => word.chars().skip(1).take(2).collect(),
                _ => "qqq".to_owned(),
            };
            filter.terms = vec![crate::domain::query::fold_case(&term)];
            if rng.gen_bool(0.3) {
                filter.is_deleted = Some(false);
            }
            if rng.gen_bool(0.2) {
                filter.unit_test_ids = vec![ObjectIdHex::from_bytes([1; 12])];
            }
            let query = UnitTestSetQuery {
                filter: filter.clone(),
                updated_at_descending: [None, Some(true), Some(false)][rng.gen_range(0..3)],
                offset: rng.gen_range(0..3),
                limit: rng.gen_range(0..20),
                with_facets: rng.gen_bool(0.5),
            };
            let expected = SetPage::cut(
                &query,
                all.iter()
                    .filter(|s| filter.matches(s))
                    .cloned()
                    .map(Arc::new)
                    .collect(),
            );
            let got = sets.page(&query);
            let ids = |page: &SetPage| page.items.iter().map(|s| s.id).collect::<Vec<_>>();
            assert_eq!(ids(&got), ids(&expected), "round {round}: {query:?}");
            assert_eq!(got.has_more, expected.has_more, "round {round}");
            assert_eq!(got.filter_values, expected.filter_values, "round {round}");
        }
    }
}
