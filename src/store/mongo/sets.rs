//! Unit test sets on MongoDB, and the rule they share with unit tests: a unit test delete and a set
//! write listing the unit test never both succeed, however they interleave, in any number of
//! processes, without multi-document transactions (SPEC §7).
//!
//! The protocol. Every unit test document carries `set_fence`, a counter (missing = 0) that only
//! grows.
//! * A set insert first stores the set with `pending_since` (the name is then taken by the unique
//!   index; reads do not see a pending set, the delete check does), then *fences* each unit test it
//!   lists: one conditional `$inc` of `set_fence` on `{_id, org_id, is_deleted: false}`. One that
//!   matches nothing is missing: the pending set is removed, the answer is `UnitTestMissing`.
//!   Otherwise `pending_since` is removed: done.
//! * A set update that adds unit tests first *claims* them on the set document
//!   (`claimed_unit_test_ids`, conditional on the previous `updated_at` and no live claim, so it
//!   also locks out other writers of the set), fences them, then writes the new set and drops the
//!   claims in one conditional write; a missing one drops the claims and leaves the set as it was.
//!   An update adding nothing is one conditional write.
//! * A unit test delete reads `set_fence`, checks that no set that is not deleted lists the unit
//!   test (in its runs, pending or not, or among its claims), then deletes conditionally on
//!   `set_fence` being unchanged. A changed fence means a set write fenced it meanwhile: check again.
//!
//! Why they never both succeed: say the delete's write applied at `t3`, with the fence it read at
//! `t1`, and the set write fenced the unit test at `t2`. If `t2 > t3` the fence found the unit test
//! deleted and the set write failed. If `t2 < t3`, the fence did not move between `t1` and `t3`
//! (it only grows), so `t2 < t1`: the set (pending, or claiming the unit test) was stored before
//! `t2`, so before the delete's check, which then found it, unless the set write had failed and
//! withdrawn it, or the set was since deleted or changed to list something else (then the delete is
//! rightly allowed).
//!
//! A writer that crashes between its steps leaves a pending set or claims behind. They count for
//! [`ABANDONED_AFTER`], then are ignored and removed (when a delete check or an insert's name meets
//! them, and at start-up). A writer finishes only within [`FINISH_WITHIN`] of its first write and
//! undoes itself otherwise, so this holds while the clocks of the processes differ by less than
//! the difference of the two.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};

use super::Db;
use super::codec::{
    datetime, field, id_either_way, id_of, int_of, minted_at, oid, set_field as sf,
    unit_test_set_from_doc, unit_test_set_to_doc,
};
use super::collections as c;
use super::errors::{reply_count, store_error};
use super::query::{set_filter_document, set_sort_document};
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, UnitTest};
use crate::store::{StoreError, StoreResult, Written};

/// How long a pending set or a claim counts before it is taken for a crashed writer's leftover.
const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// How long after its first write a set writer may still finish; later it undoes what it did.
const FINISH_WITHIN: Duration = Duration::from_secs(30);
/// How many times a unit test delete checks again after a set write fenced the unit test meanwhile.
const DELETE_ATTEMPTS: usize = 5;
/// The record in `simtest_migrations` saying every set document has the fields of the codec.
const SETS_NORMALIZED: &str = "0004_unit_test_sets normalized";

/// The unit tests of `set` in the order its runs first list them, each once.
fn listed(set: &UnitTestSet) -> Vec<ObjectIdHex> {
    let mut seen = HashSet::new();
    set.unit_test_runs
        .iter()
        .map(|r| r.unit_test_id)
        .filter(|id| seen.insert(*id))
        .collect()
}

/// Before this, a pending set or a claim is abandoned.
fn abandoned_before() -> bson::DateTime {
    let now = bson::DateTime::now().timestamp_millis();
    bson::DateTime::from_millis(now - ABANDONED_AFTER.as_millis() as i64)
}

/// A set document's content to `$set` (all but `_id`).
fn set_fields(set: &UnitTestSet) -> StoreResult<Document> {
    let mut d = unit_test_set_to_doc(set)?;
    d.remove(field::ID);
    Ok(d)
}

/// The claims' fields, to `$unset`.
fn no_claims() -> Document {
    doc! {sf::CLAIMED_UNIT_TEST_IDS: "", sf::CLAIMED_AT: "", sf::CLAIM_TOKEN: ""}
}

impl Db {
    /// Sends a write that follows the first write of an operation: the request waits for the
    /// operation once that one is sent (see `store::deadline`), so this is not bounded by it.
    async fn follow_up_write(&self, command: Document) -> StoreResult<Document> {
        self.send_write(command, None).await
    }

    /// One conditional update of one set document; how many matched.
    async fn update_set(&self, q: Document, u: Document, first: bool) -> StoreResult<i64> {
        let command = doc! {"update": c::UNIT_TEST_SET, "updates": [{"q": q, "u": u}]};
        let reply = if first {
            self.write_unit_test_command(command).await?
        } else {
            self.follow_up_write(command).await?
        };
        Ok(reply_count(&reply, "n"))
    }

    async fn delete_set_where(&self, q: Document) -> StoreResult<i64> {
        let reply = self
            .follow_up_write(doc! {"delete": c::UNIT_TEST_SET, "deletes": [{"q": q, "limit": 1}]})
            .await?;
        Ok(reply_count(&reply, "n"))
    }

    /// Counts a set write on each of `ids` that is an active unit test of `org_id` (see the
    /// module); the first of `ids` that is not, if any.
    async fn fence(&self, org_id: &OrgId, ids: &[ObjectIdHex]) -> StoreResult<Option<ObjectIdHex>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let wanted: Vec<Bson> = ids.iter().map(|id| Bson::ObjectId(oid(*id))).collect();
        let live =
            doc! {field::ID: {"$in": wanted}, field::ORG_ID: org_id, field::IS_DELETED: false};
        let reply = self
            .follow_up_write(doc! {"update": c::UNIT_TEST, "updates": [{
                "q": live.clone(),
                "u": {"$inc": {field::SET_FENCE: 1}},
                "multi": true,
            }]})
            .await?;
        if reply_count(&reply, "n") == ids.len() as i64 {
            return Ok(None);
        }
        // One did not match: it was not live then, and a unit test does not come back to life.
        let found: HashSet<ObjectIdHex> = self
            .collection(c::UNIT_TEST)
            .distinct(field::ID, live)
            .await
            .map_err(store_error)?
            .iter()
            .filter_map(id_of)
            .collect();
        ids.iter()
            .find(|id| !found.contains(id))
            .copied()
            .map(Some)
            .ok_or_else(|| {
                StoreError::Internal("a fence missed a unit test that is still active".into())
            })
    }

    pub(super) async fn insert_unit_test_set(&self, set: &UnitTestSet) -> StoreResult<Written> {
        let started = Instant::now();
        let since = bson::DateTime::now();
        let mut d = unit_test_set_to_doc(set)?;
        d.insert(sf::PENDING_SINCE, since);
        let insert = doc! {"insert": c::UNIT_TEST_SET, "documents": [d]};
        match self.write_unit_test_command(insert.clone()).await {
            Ok(_) => {}
            // The name may be held by an abandoned insert: freed, then tried once more.
            Err(StoreError::Duplicate) if self.free_abandoned_name(set).await? => {
                self.write_unit_test_command(insert).await?;
            }
            Err(e) => return Err(e),
        }
        let mine = doc! {field::ID: oid(set.id), sf::PENDING_SINCE: since};
        let missing = match self.fence(&set.org_id, &listed(set)).await {
            Ok(missing) => missing,
            Err(e) => {
                // Best effort: left behind, it is abandoned in a minute anyway.
                let _ = self.delete_set_where(mine).await;
                return Err(e);
            }
        };
        if let Some(id) = missing {
            self.delete_set_where(mine).await?;
            return Ok(Written::UnitTestMissing(id));
        }
        if started.elapsed() > FINISH_WITHIN {
            self.delete_set_where(mine).await?;
            return Err(StoreError::Unavailable(
                "the set insert took too long and was withdrawn".into(),
            ));
        }
        let done = self
            .update_set(mine, doc! {"$unset": {sf::PENDING_SINCE: ""}}, false)
            .await?;
        if done == 1 {
            Ok(Written::Done)
        } else {
            Err(StoreError::Unavailable(
                "the set insert was taken for abandoned and withdrawn".into(),
            ))
        }
    }

    /// Removes the abandoned pending set holding `set`'s name, if any; whether one was removed.
    async fn free_abandoned_name(&self, set: &UnitTestSet) -> StoreResult<bool> {
        let holder = self
            .sets()
            .find_one(doc! {
                field::ORG_ID: &set.org_id,
                field::NAME: &set.name,
                field::NAME_GUARD: "",
                sf::PENDING_SINCE: {"$lt": abandoned_before()},
            })
            .projection(doc! {sf::PENDING_SINCE: 1})
            .await
            .map_err(store_error)?;
        let Some(holder) = holder else {
            return Ok(false);
        };
        let (Some(id), Some(since)) = (holder.get(field::ID), holder.get(sf::PENDING_SINCE)) else {
            return Ok(false);
        };
        let removed = self
            .delete_set_where(doc! {field::ID: id.clone(), sf::PENDING_SINCE: since.clone()})
            .await?;
        Ok(removed == 1)
    }

    fn sets(&self) -> mongodb::Collection<Document> {
        self.collection(c::UNIT_TEST_SET)
    }

    pub(super) async fn unit_test_set(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<UnitTestSet>> {
        let found = self
            .sets()
            .find_one(doc! {
                field::ID: {"$in": id_either_way(id)},
                field::ORG_ID: org_id,
                sf::PENDING_SINCE: {"$exists": false},
            })
            .await
            .map_err(store_error)?;
        found.map(|d| unit_test_set_from_doc(&d)).transpose()
    }

    pub(super) async fn replace_unit_test_set(
        &self,
        previous: &UnitTestSet,
        next: &UnitTestSet,
    ) -> StoreResult<Written> {
        let started = Instant::now();
        let before: HashSet<ObjectIdHex> = previous.unit_test_ids().into_iter().collect();
        let added: Vec<ObjectIdHex> = if next.is_deleted {
            Vec::new()
        } else {
            listed(next)
                .into_iter()
                .filter(|id| !before.contains(id))
                .collect()
        };
        // Still `previous`, not deleted, not pending, and no other update's claim live. A set
        // seeded without `updated_at` reads as made when its id was: that is its previous then.
        let then = datetime(previous.updated_at);
        let unchanged = if previous.updated_at == minted_at(previous.id) {
            doc! {"$in": [then, Bson::Null]}
        } else {
            doc! {"$eq": then}
        };
        let current = doc! {
            // Seeded by another system, the id may be a string.
            field::ID: {"$in": id_either_way(previous.id)},
            field::ORG_ID: &previous.org_id,
            field::IS_DELETED: {"$ne": true},
            sf::PENDING_SINCE: {"$exists": false},
            field::UPDATED_AT: unchanged,
            "$or": [
                {sf::CLAIMED_AT: {"$exists": false}},
                {sf::CLAIMED_AT: {"$lt": abandoned_before()}},
            ],
        };
        if added.is_empty() {
            let n = self
                .update_set(
                    current,
                    doc! {"$set": set_fields(next)?, "$unset": no_claims()},
                    true,
                )
                .await?;
            return Ok(if n == 1 {
                Written::Done
            } else {
                Written::Stale
            });
        }
        let token = ObjectId::new();
        let claim = doc! {"$set": {
            sf::CLAIMED_UNIT_TEST_IDS: added.iter().map(|id| id.to_hex()).collect::<Vec<_>>(),
            sf::CLAIMED_AT: bson::DateTime::now(),
            sf::CLAIM_TOKEN: token,
        }};
        if self.update_set(current, claim, true).await? == 0 {
            return Ok(Written::Stale);
        }
        let mine = doc! {field::ID: {"$in": id_either_way(previous.id)}, sf::CLAIM_TOKEN: token};
        let withdraw = || self.update_set(mine.clone(), doc! {"$unset": no_claims()}, false);
        let missing = match self.fence(&next.org_id, &added).await {
            Ok(missing) => missing,
            Err(e) => {
                let _ = withdraw().await;
                return Err(e);
            }
        };
        if let Some(id) = missing {
            withdraw().await?;
            return Ok(Written::UnitTestMissing(id));
        }
        if started.elapsed() > FINISH_WITHIN {
            withdraw().await?;
            return Err(StoreError::Unavailable(
                "the set update took too long and was withdrawn".into(),
            ));
        }
        let write = doc! {"$set": set_fields(next)?, "$unset": no_claims()};
        match self.update_set(mine.clone(), write, false).await {
            Ok(1) => Ok(Written::Done),
            Ok(_) => Err(StoreError::Unavailable(
                "the set update was taken for abandoned and withdrawn".into(),
            )),
            Err(StoreError::Duplicate) => {
                withdraw().await?;
                Err(StoreError::Duplicate)
            }
            Err(e) => {
                let _ = withdraw().await;
                Err(e)
            }
        }
    }

    /// Whether a set that is not deleted lists `unit_test_id`: in its runs (pending or not) or
    /// among the unit tests an update of it is claiming. Abandoned pending sets and claims met on
    /// the way are removed and do not count.
    pub(super) async fn unit_test_in_live_set(
        &self,
        org_id: &OrgId,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        // A second pass only after removing abandoned claims: the set may list it in its runs too.
        for _ in 0..3 {
            let mut cursor = self
                .sets()
                .find(doc! {
                    field::ORG_ID: org_id,
                    field::IS_DELETED: {"$ne": true},
                    "$or": [
                        {sf::RUN_UNIT_TEST_ID: {"$in": id_either_way(unit_test_id)}},
                        {sf::CLAIMED_UNIT_TEST_IDS: unit_test_id.to_hex()},
                    ],
                })
                .projection(doc! {sf::PENDING_SINCE: 1, sf::CLAIMED_AT: 1, sf::CLAIM_TOKEN: 1})
                .await
                .map_err(store_error)?;
            let cutoff = abandoned_before();
            let mut again = false;
            while cursor.advance().await.map_err(store_error)? {
                let d: Document = cursor.deserialize_current().map_err(store_error)?;
                let Some(id) = d.get(field::ID).cloned() else {
                    continue;
                };
                if let Ok(since) = d.get_datetime(sf::PENDING_SINCE) {
                    if *since >= cutoff {
                        return Ok(true);
                    }
                    let removed = self
                        .delete_set_where(doc! {field::ID: id, sf::PENDING_SINCE: *since})
                        .await?;
                    // Not removed: its (slow) writer published it meanwhile, so it may now be a
                    // live set listing the unit test.
                    again |= removed == 0;
                } else if let Ok(at) = d.get_datetime(sf::CLAIMED_AT) {
                    if *at >= cutoff {
                        return Ok(true);
                    }
                    let mut q = doc! {field::ID: id, sf::CLAIMED_AT: *at};
                    if let Some(token) = d.get(sf::CLAIM_TOKEN) {
                        q.insert(sf::CLAIM_TOKEN, token.clone());
                    }
                    self.update_set(q, doc! {"$unset": no_claims()}, false)
                        .await?;
                    again = true;
                } else {
                    return Ok(true);
                }
            }
            if !again {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The delete of a unit test (`update` turns `previous` into its deleted `next`): refused while
    /// a set lists it, applied only if no set write fenced it since that was checked (see the
    /// module).
    pub(super) async fn delete_unit_test(
        &self,
        previous: &UnitTest,
        update: Document,
    ) -> StoreResult<Written> {
        for _ in 0..DELETE_ATTEMPTS {
            let Some(fence) = self.fence_of(previous).await? else {
                return Ok(Written::Stale);
            };
            if self
                .unit_test_in_live_set(&previous.org_id, previous.id)
                .await?
            {
                return Ok(Written::InUse);
            }
            if self
                .delete_if_fence_is(previous, update.clone(), fence)
                .await?
            {
                return Ok(Written::Done);
            }
            // Changed meanwhile: by a writer of the unit test (stale, seen on the next read) or
            // by a set write fencing it (checked again).
        }
        // Set writes kept claiming the unit test.
        Ok(Written::InUse)
    }

    /// The condition on `set_fence` matching its value now, if the unit test is still `previous`
    /// (`None` when it changed or is gone).
    async fn fence_of(&self, previous: &UnitTest) -> StoreResult<Option<Bson>> {
        let found = self
            .collection(c::UNIT_TEST)
            .find_one(doc! {field::ID: oid(previous.id), field::ORG_ID: &previous.org_id})
            .projection(doc! {field::SET_FENCE: 1, field::IS_DELETED: 1, field::UPDATED_AT: 1})
            .await
            .map_err(store_error)?;
        let Some(found) = found else {
            return Ok(None);
        };
        if found.get_bool(field::IS_DELETED) != Ok(false)
            || found.get_datetime(field::UPDATED_AT).ok() != Some(&datetime(previous.updated_at))
        {
            return Ok(None);
        }
        Ok(Some(match found.get(field::SET_FENCE) {
            Some(n) if int_of(Some(n)).is_some() => n.clone(),
            _ => Bson::Document(doc! {"$exists": false}),
        }))
    }

    /// Applies `update` to the unit test if it is still `previous` and its fence is still `fence`;
    /// whether it did.
    async fn delete_if_fence_is(
        &self,
        previous: &UnitTest,
        update: Document,
        fence: Bson,
    ) -> StoreResult<bool> {
        let reply = self
            .write_unit_test_command(doc! {
                "update": c::UNIT_TEST,
                "updates": [{
                    "q": {
                        field::ID: oid(previous.id),
                        field::ORG_ID: &previous.org_id,
                        field::IS_DELETED: false,
                        field::UPDATED_AT: datetime(previous.updated_at),
                        field::SET_FENCE: fence,
                    },
                    "u": update,
                }],
            })
            .await?;
        Ok(reply_count(&reply, "n") == 1)
    }

    pub(super) async fn list_unit_test_sets(
        &self,
        query: &UnitTestSetQuery,
    ) -> StoreResult<SetPage> {
        let filter = set_filter_document(&query.filter);
        let page = self.find_page(
            c::UNIT_TEST_SET,
            filter.clone(),
            set_sort_document(query),
            (query.offset, query.limit),
            unit_test_set_from_doc,
        );
        let facets = async {
            if query.with_facets {
                self.set_filter_values(&filter).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let ((items, has_more), filter_values) = tokio::try_join!(page, facets)?;
        Ok(SetPage {
            items,
            has_more,
            filter_values,
        })
    }

    /// Stores seeded sets by id, as the codec writes them.
    pub(super) async fn upsert_unit_test_sets(&self, sets: &[UnitTestSet]) -> StoreResult<()> {
        for set in sets {
            self.upsert(
                c::UNIT_TEST_SET,
                doc! {field::ID: oid(set.id)},
                unit_test_set_to_doc(set)?,
            )
            .await?;
        }
        Ok(())
    }

    /// At start-up: removes what crashed set writers left (abandoned pending sets and claims),
    /// and, once, rewrites sets seeded before sets had their own fields in the codec's form
    /// (so filters on creators and tags, sorts by `updated_at` and the name index see them).
    /// Returns how many documents it changed.
    pub(super) async fn sweep_unit_test_sets(&self) -> StoreResult<u64> {
        let cutoff = abandoned_before();
        let sets = self.sets();
        let removed = sets
            .delete_many(doc! {sf::PENDING_SINCE: {"$lt": cutoff}})
            .await
            .map_err(store_error)?
            .deleted_count;
        let unclaimed = sets
            .update_many(
                doc! {sf::CLAIMED_AT: {"$lt": cutoff}},
                doc! {"$unset": no_claims()},
            )
            .await
            .map_err(store_error)?
            .modified_count;
        let records = self.collection(c::MIGRATIONS);
        let done = doc! {"_id": SETS_NORMALIZED};
        if records
            .find_one(done.clone())
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Ok(removed + unclaimed);
        }
        let mut cursor = sets
            .find(doc! {field::NAME_GUARD: {"$exists": false}})
            .await
            .map_err(store_error)?;
        let mut rewritten = 0;
        let mut left = 0;
        while cursor.advance().await.map_err(store_error)? {
            let d: Document = cursor.deserialize_current().map_err(store_error)?;
            let Some(id) = d.get(field::ID).cloned() else {
                left += 1;
                continue;
            };
            let Ok(set) = unit_test_set_from_doc(&d) else {
                left += 1;
                continue;
            };
            let mut fields = set_fields(&set)?;
            // Kept as stored (another system may have written it as a string).
            fields.remove(field::ID);
            match sets
                .update_one(
                    doc! {field::ID: id, field::NAME_GUARD: {"$exists": false}},
                    doc! {"$set": fields},
                )
                .await
            {
                Ok(r) => rewritten += r.modified_count,
                // Two seeded live sets of one name: the second stays as it was.
                Err(e) if super::errors::is_duplicate_key(&e) => left += 1,
                Err(e) => return Err(store_error(e)),
            }
        }
        if left == 0 {
            records
                .update_one(
                    done,
                    doc! {"$setOnInsert": {"applied_at": bson::DateTime::now()}},
                )
                .upsert(true)
                .await
                .map_err(store_error)?;
        }
        Ok(removed + unclaimed + rewritten)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::unit_test_set::UnitTestRun;
    use crate::domain::{Tag, Timestamp, UserInfo};
    use crate::store::tests::testgen::id;

    pub(super) fn user(org: &str, user: &str) -> UserInfo {
        UserInfo {
            org_id: org.into(),
            user_id: user.into(),
        }
    }

    /// A set of `org` named `name` listing `unit_tests` (run twice each).
    pub(super) fn a_set(org: &str, name: &str, unit_tests: &[ObjectIdHex]) -> UnitTestSet {
        UnitTestSet {
            id: ObjectIdHex::generate(),
            org_id: org.into(),
            name: name.into(),
            description: Some("nightly run".into()),
            unit_test_runs: unit_tests
                .iter()
                .map(|u| UnitTestRun {
                    unit_test_id: *u,
                    run_count: 2,
                })
                .collect(),
            last_triggered_run_id: None,
            tags: vec![
                Tag {
                    key: "team".into(),
                    value: Some("growth".into()),
                },
                Tag {
                    key: "flaky".into(),
                    value: None,
                },
            ],
            is_deleted: false,
            creator: user(org, "alice"),
            updated_by: user(org, "bob"),
            created_at: Timestamp::from_millis(1_700_000_000_123),
            updated_at: Timestamp::from_millis(1_700_000_000_456),
        }
    }

    #[test]
    fn a_set_round_trips_through_its_document() {
        let mut set = a_set("acme", "Nightly", &[id(1), id(2), id(1)]);
        let d = unit_test_set_to_doc(&set).unwrap();
        assert_eq!(d.get_object_id("_id").unwrap(), oid(set.id));
        assert_eq!(d.get_str("name_guard").unwrap(), "");
        let runs = d.get_array("unit_test_runs").unwrap();
        assert_eq!(
            runs[0].as_document().unwrap(),
            &doc! {"unit_test_id": id(1).to_hex(), "run_count": 2_i64}
        );
        assert_eq!(
            d.get_datetime("updated_at").unwrap().timestamp_millis(),
            1_700_000_000_456
        );
        assert_eq!(d.get_str("search_text").unwrap(), set.search_text());
        assert!(d.get("last_triggered_run_id").unwrap().as_null().is_some());
        assert_eq!(unit_test_set_from_doc(&d).unwrap(), set);

        set.is_deleted = true;
        set.description = None;
        let d = unit_test_set_to_doc(&set).unwrap();
        assert_eq!(d.get_str("name_guard").unwrap(), set.id.to_hex());
        assert!(d.get("description").unwrap().as_null().is_some());
        assert_eq!(unit_test_set_from_doc(&d).unwrap(), set);
        assert_eq!(
            listed(&a_set("a", "b", &[id(3), id(1), id(3)])),
            [id(3), id(1)]
        );
    }

    #[test]
    fn a_set_seeded_before_sets_had_endpoints_reads_with_defaults() {
        let made = ObjectId::parse_str("65a1b2c3d4e5f60718293a4b").unwrap();
        let d = doc! {
            "_id": made,
            "org_id": "acme",
            "name": "seeded",
            "unit_test_runs": [
                {"unit_test_id": id(1).to_hex(), "run_count": 3_i64},
                {"unit_test_id": oid(id(2))},
            ],
            "is_deleted": false,
        };
        let set = unit_test_set_from_doc(&d).unwrap();
        let at = Timestamp::from_millis(i64::from(0x65a1_b2c3_u32) * 1000);
        assert_eq!(
            set,
            UnitTestSet {
                id: ObjectIdHex::from_bytes(made.bytes()),
                org_id: "acme".into(),
                name: "seeded".into(),
                description: None,
                unit_test_runs: vec![
                    UnitTestRun {
                        unit_test_id: id(1),
                        run_count: 3,
                    },
                    UnitTestRun {
                        unit_test_id: id(2),
                        run_count: 1,
                    },
                ],
                last_triggered_run_id: None,
                tags: Vec::new(),
                is_deleted: false,
                creator: user("acme", "seed"),
                updated_by: user("acme", "seed"),
                created_at: at,
                updated_at: at,
            }
        );
        let mut no_flag = d.clone();
        no_flag.remove("is_deleted");
        assert!(!unit_test_set_from_doc(&no_flag).unwrap().is_deleted);
        let mut bad = d;
        bad.insert("tags", "x");
        assert!(unit_test_set_from_doc(&bad).is_err());
    }

    /// Against a live MongoDB (`SIMTEST_TEST_MONGODB_URI`); SKIPPED without it.
    mod live {
        use std::sync::Arc;

        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        use super::*;
        use crate::domain::unit_test_set::UnitTestSetFilter;
        use crate::store::Store;
        use crate::store::mongo::{MongoStore, MongoWriteConcern};
        use crate::store::tests::live_mongo as mongo;
        use crate::store::tests::testgen::sample;

        /// An active unit test of `org` with a fresh id, stored.
        async fn unit_test(mongo: &MongoStore, org: &str) -> UnitTest {
            let mut t = sample();
            t.id = ObjectIdHex::generate();
            t.org_id = org.into();
            t.name = format!("ut {}", t.id);
            mongo.insert_unit_test(&t).await.unwrap();
            t
        }

        fn deleted(t: &UnitTest) -> UnitTest {
            let mut next = t.clone();
            next.is_deleted = true;
            next.updated_at = Timestamp::after(t.updated_at);
            next
        }

        fn changed(s: &UnitTestSet, change: impl FnOnce(&mut UnitTestSet)) -> UnitTestSet {
            let mut next = s.clone();
            change(&mut next);
            next.updated_at = Timestamp::after(s.updated_at);
            next
        }

        fn live_sets(org: &str) -> UnitTestSetQuery {
            let mut filter = UnitTestSetFilter::for_org(&org.into());
            filter.is_deleted = Some(false);
            UnitTestSetQuery {
                filter,
                updated_at_descending: None,
                offset: 0,
                limit: 100,
                with_facets: false,
            }
        }

        #[tokio::test]
        async fn set_writes_answer_done_duplicate_stale_and_missing_and_hold_unit_tests() {
            let Some(mongo) = mongo().await else { return };
            let u1 = unit_test(&mongo, "acme").await;
            let u2 = unit_test(&mongo, "acme").await;
            let gone = unit_test(&mongo, "acme").await;
            mongo
                .replace_unit_test(&gone, &deleted(&gone))
                .await
                .unwrap();
            let foreign = unit_test(&mongo, "globex").await;
            let unknown = ObjectIdHex::generate();

            let set = a_set("acme", "nightly", &[u1.id]);
            assert_eq!(
                mongo.insert_unit_test_set(&set).await.unwrap(),
                Written::Done
            );
            assert_eq!(
                mongo.unit_test_set(&"acme".into(), set.id).await.unwrap(),
                Some(set.clone())
            );
            assert_eq!(
                mongo.unit_test_set(&"globex".into(), set.id).await.unwrap(),
                None
            );
            let twin = a_set("acme", "nightly", &[u2.id]);
            assert!(matches!(
                mongo.insert_unit_test_set(&twin).await,
                Err(StoreError::Duplicate)
            ));
            mongo
                .insert_unit_test_set(&a_set("globex", "nightly", &[foreign.id]))
                .await
                .unwrap();
            for (bad, missing) in [
                (gone.id, gone.id),
                (foreign.id, foreign.id),
                (unknown, unknown),
            ] {
                let s = a_set("acme", "weekly", &[u2.id, bad, u1.id]);
                assert_eq!(
                    mongo.insert_unit_test_set(&s).await.unwrap(),
                    Written::UnitTestMissing(missing)
                );
                assert_eq!(
                    mongo.unit_test_set(&"acme".into(), s.id).await.unwrap(),
                    None
                );
            }
            // Nothing of the refused inserts is left: not the name, not a hold on u2.
            let weekly = a_set("acme", "weekly", &[u1.id]);
            assert_eq!(
                mongo.insert_unit_test_set(&weekly).await.unwrap(),
                Written::Done
            );
            assert!(
                !mongo
                    .unit_test_in_live_set(&"acme".into(), u2.id)
                    .await
                    .unwrap()
            );

            // A unit test a set lists is not deleted.
            assert_eq!(
                mongo.replace_unit_test(&u1, &deleted(&u1)).await.unwrap(),
                Written::InUse
            );
            assert!(
                mongo
                    .unit_test_in_live_set(&"acme".into(), u1.id)
                    .await
                    .unwrap()
            );

            // Updates: stale, missing (adding or not), a name clash, then done.
            let mut stale = set.clone();
            stale.updated_at = Timestamp::from_millis(1);
            let renamed = changed(&set, |s| s.name = "renamed".into());
            assert_eq!(
                mongo.replace_unit_test_set(&stale, &renamed).await.unwrap(),
                Written::Stale
            );
            let adding_gone = changed(&set, |s| {
                s.unit_test_runs.push(UnitTestRun {
                    unit_test_id: gone.id,
                    run_count: 1,
                })
            });
            assert_eq!(
                mongo
                    .replace_unit_test_set(&set, &adding_gone)
                    .await
                    .unwrap(),
                Written::UnitTestMissing(gone.id)
            );
            assert_eq!(
                mongo.unit_test_set(&"acme".into(), set.id).await.unwrap(),
                Some(set.clone()),
                "left as it was"
            );
            for next in [
                changed(&set, |s| s.name = "weekly".into()),
                changed(&set, |s| {
                    s.name = "weekly".into();
                    s.unit_test_runs[0].unit_test_id = u2.id;
                }),
            ] {
                assert!(matches!(
                    mongo.replace_unit_test_set(&set, &next).await,
                    Err(StoreError::Duplicate)
                ));
                assert_eq!(
                    mongo.unit_test_set(&"acme".into(), set.id).await.unwrap(),
                    Some(set.clone())
                );
            }
            assert!(
                !mongo
                    .unit_test_in_live_set(&"acme".into(), u2.id)
                    .await
                    .unwrap()
            );
            // Now listing u2 instead of u1 (u1 is still in `weekly`).
            let moved = changed(&set, |s| {
                s.name = "renamed".into();
                s.unit_test_runs[0].unit_test_id = u2.id;
                s.description = None;
            });
            assert_eq!(
                mongo.replace_unit_test_set(&set, &moved).await.unwrap(),
                Written::Done
            );
            assert_eq!(
                mongo.unit_test_set(&"acme".into(), set.id).await.unwrap(),
                Some(moved.clone())
            );
            assert_eq!(
                mongo.replace_unit_test_set(&set, &moved).await.unwrap(),
                Written::Stale
            );
            assert_eq!(
                mongo.replace_unit_test(&u2, &deleted(&u2)).await.unwrap(),
                Written::InUse
            );
            // Deleting the sets frees their unit tests (and the names).
            let gone_set = changed(&moved, |s| s.is_deleted = true);
            assert_eq!(
                mongo
                    .replace_unit_test_set(&moved, &gone_set)
                    .await
                    .unwrap(),
                Written::Done
            );
            assert_eq!(
                mongo
                    .replace_unit_test_set(&gone_set, &gone_set)
                    .await
                    .unwrap(),
                Written::Stale,
                "deleted stays deleted"
            );
            assert_eq!(
                mongo.unit_test_set(&"acme".into(), set.id).await.unwrap(),
                Some(gone_set.clone())
            );
            assert_eq!(
                mongo.replace_unit_test(&u2, &deleted(&u2)).await.unwrap(),
                Written::Done
            );
            let weekly_gone = changed(&weekly, |s| s.is_deleted = true);
            mongo
                .replace_unit_test_set(&weekly, &weekly_gone)
                .await
                .unwrap();
            assert_eq!(
                mongo.replace_unit_test(&u1, &deleted(&u1)).await.unwrap(),
                Written::Done
            );
            let again = a_set("acme", "renamed", &[unit_test(&mongo, "acme").await.id]);
            assert_eq!(
                mongo.insert_unit_test_set(&again).await.unwrap(),
                Written::Done
            );

            // Of concurrent inserts of one name, exactly one stores its set.
            let mongo = Arc::new(mongo);
            let u = unit_test(&mongo, "acme").await;
            let attempts: Vec<_> = (0..8)
                .map(|_| {
                    let mongo = mongo.clone();
                    let set = a_set("acme", "contended", &[u.id]);
                    tokio::spawn(async move { mongo.insert_unit_test_set(&set).await })
                })
                .collect();
            let mut stored = 0;
            for a in attempts {
                match a.await.unwrap() {
                    Ok(Written::Done) => stored += 1,
                    Err(StoreError::Duplicate) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(stored, 1);
            mongo.drop_database().await.unwrap();
        }

        /// The delete's update of `u`, as `replace_unit_test` makes it.
        fn delete_update(u: &UnitTest) -> Document {
            let next = deleted(u);
            doc! {"$max": {"updated_at": datetime(next.updated_at)}, "$set": {"is_deleted": true, "name_guard": u.id.to_hex()}}
        }

        #[tokio::test]
        async fn a_set_write_between_a_deletes_check_and_its_write_makes_the_delete_miss() {
            let Some(mongo) = mongo().await else { return };
            let db = &mongo.inner;
            let org: OrgId = "acme".into();
            // An insert, then an update adding the unit test, each slipped in between.
            let held_unit_test = unit_test(&mongo, "acme").await;
            let held = a_set("acme", "held", &[held_unit_test.id]);
            mongo.insert_unit_test_set(&held).await.unwrap();
            for update in [false, true] {
                let u = unit_test(&mongo, "acme").await;
                let fence = db.fence_of(&u).await.unwrap().expect("current");
                assert!(!db.unit_test_in_live_set(&org, u.id).await.unwrap());
                if update {
                    let next = changed(&held, |s| {
                        s.unit_test_runs.push(UnitTestRun {
                            unit_test_id: u.id,
                            run_count: 1,
                        })
                    });
                    assert_eq!(
                        mongo.replace_unit_test_set(&held, &next).await.unwrap(),
                        Written::Done
                    );
                } else {
                    let s = a_set("acme", "slipped in", &[u.id]);
                    assert_eq!(mongo.insert_unit_test_set(&s).await.unwrap(), Written::Done);
                }
                assert!(
                    !db.delete_if_fence_is(&u, delete_update(&u), fence)
                        .await
                        .unwrap(),
                    "update {update}: the fence moved, the delete must not apply"
                );
                assert_eq!(
                    mongo.replace_unit_test(&u, &deleted(&u)).await.unwrap(),
                    Written::InUse,
                    "update {update}"
                );
            }
            // Once the delete applied, a fence finds the unit test missing.
            let u = unit_test(&mongo, "acme").await;
            let fence = db.fence_of(&u).await.unwrap().unwrap();
            assert!(
                db.delete_if_fence_is(&u, delete_update(&u), fence)
                    .await
                    .unwrap()
            );
            assert_eq!(db.fence(&org, &[u.id]).await.unwrap(), Some(u.id));
            mongo.drop_database().await.unwrap();
        }

        /// Stores `set` as a writer that stopped after its first step `age_s` seconds ago left it:
        /// pending (an insert), or claiming `claim` (an update).
        async fn leftover(
            mongo: &MongoStore,
            set: &UnitTestSet,
            age_s: i64,
            claim: Option<ObjectIdHex>,
        ) {
            let then = bson::DateTime::from_millis(
                bson::DateTime::now().timestamp_millis() - age_s * 1000,
            );
            let mut d = unit_test_set_to_doc(set).unwrap();
            match claim {
                None => {
                    d.insert(sf::PENDING_SINCE, then);
                }
                Some(u) => {
                    d.insert(sf::CLAIMED_UNIT_TEST_IDS, vec![u.to_hex()]);
                    d.insert(sf::CLAIMED_AT, then);
                    d.insert(sf::CLAIM_TOKEN, ObjectId::new());
                }
            }
            mongo
                .collection(c::UNIT_TEST_SET)
                .insert_one(d)
                .await
                .unwrap();
        }

        #[tokio::test]
        async fn pending_sets_and_claims_hold_unit_tests_until_abandoned_then_are_swept() {
            let Some(mongo) = mongo().await else { return };
            let org: OrgId = "acme".into();
            let sets = mongo.collection(c::UNIT_TEST_SET);
            // Fresh: invisible to reads, but holding their unit tests, and the pending one its name.
            let (u1, u2) = (
                unit_test(&mongo, "acme").await,
                unit_test(&mongo, "acme").await,
            );
            let pending = a_set("acme", "pending", &[u1.id]);
            leftover(&mongo, &pending, 5, None).await;
            let claiming = a_set("acme", "claiming", &[]);
            leftover(&mongo, &claiming, 5, Some(u2.id)).await;
            assert_eq!(mongo.unit_test_set(&org, pending.id).await.unwrap(), None);
            let page = mongo.list_unit_test_sets(&live_sets("acme")).await.unwrap();
            assert_eq!(
                page.items.len(),
                1,
                "the claiming set is listed, the pending one not"
            );
            assert_eq!(*page.items[0], claiming);
            for u in [&u1, &u2] {
                assert_eq!(
                    mongo.replace_unit_test(u, &deleted(u)).await.unwrap(),
                    Written::InUse
                );
            }
            assert!(matches!(
                mongo
                    .insert_unit_test_set(&a_set("acme", "pending", &[u2.id]))
                    .await,
                Err(StoreError::Duplicate)
            ));
            let next = changed(&claiming, |s| s.name = "other".into());
            assert_eq!(
                mongo.replace_unit_test_set(&claiming, &next).await.unwrap(),
                Written::Stale,
                "an update is under way"
            );
            sets.delete_many(doc! {}).await.unwrap();

            // Abandoned: ignored and removed when met.
            leftover(&mongo, &pending, 120, None).await;
            leftover(&mongo, &claiming, 120, Some(u2.id)).await;
            assert_eq!(
                mongo.replace_unit_test(&u1, &deleted(&u1)).await.unwrap(),
                Written::Done
            );
            assert_eq!(
                sets.count_documents(doc! {"_id": oid(pending.id)})
                    .await
                    .unwrap(),
                0
            );
            assert!(!mongo.unit_test_in_live_set(&org, u2.id).await.unwrap());
            let d = sets
                .find_one(doc! {"_id": oid(claiming.id)})
                .await
                .unwrap()
                .unwrap();
            assert!(!d.contains_key(sf::CLAIMED_UNIT_TEST_IDS), "{d}");
            // An abandoned insert's name is freed by the next insert of it; an abandoned
            // update's claim does not stop the next update.
            let u3 = unit_test(&mongo, "acme").await;
            let stuck = a_set("acme", "stuck", &[u3.id]);
            leftover(&mongo, &stuck, 120, None).await;
            let fresh = a_set("acme", "stuck", &[u3.id]);
            assert_eq!(
                mongo.insert_unit_test_set(&fresh).await.unwrap(),
                Written::Done
            );
            let stuck_update = a_set("acme", "stuck update", &[u3.id]);
            leftover(&mongo, &stuck_update, 120, Some(u2.id)).await;
            let next = changed(&stuck_update, |s| s.name = "unstuck".into());
            assert_eq!(
                mongo
                    .replace_unit_test_set(&stuck_update, &next)
                    .await
                    .unwrap(),
                Written::Done
            );
            // The sweep at start-up removes what is abandoned, and only that.
            let (u4, u5) = (
                unit_test(&mongo, "acme").await,
                unit_test(&mongo, "acme").await,
            );
            leftover(&mongo, &a_set("acme", "old pending", &[u4.id]), 120, None).await;
            leftover(&mongo, &a_set("acme", "young pending", &[u5.id]), 1, None).await;
            leftover(&mongo, &a_set("acme", "old claim", &[]), 120, Some(u4.id)).await;
            leftover(&mongo, &a_set("acme", "young claim", &[]), 1, Some(u5.id)).await;
            assert_eq!(mongo.inner.sweep_unit_test_sets().await.unwrap(), 2);
            assert!(!mongo.unit_test_in_live_set(&org, u4.id).await.unwrap());
            assert!(mongo.unit_test_in_live_set(&org, u5.id).await.unwrap());
            mongo.drop_database().await.unwrap();
        }

        #[tokio::test]
        async fn seeded_sets_read_update_and_are_normalized_at_start_up() {
            let Some(mongo) = mongo().await else { return };
            let org: OrgId = "acme".into();
            let u = unit_test(&mongo, "acme").await;
            let sets = mongo.collection(c::UNIT_TEST_SET);
            let made = ObjectId::new();
            let id = ObjectIdHex::from_bytes(made.bytes());
            let seeded = doc! {
                "_id": made, "org_id": "acme", "name": "seeded", "is_deleted": false,
                "unit_test_runs": [{"unit_test_id": u.id.to_hex(), "run_count": 2_i64}],
            };
            sets.insert_one(seeded.clone()).await.unwrap();
            let read = mongo.unit_test_set(&org, id).await.unwrap().unwrap();
            assert_eq!(read.creator, user("acme", "seed"));
            assert_eq!(read.updated_at, minted_at(id));
            assert_eq!(
                mongo.replace_unit_test(&u, &deleted(&u)).await.unwrap(),
                Written::InUse
            );
            let next = changed(&read, |s| s.description = Some("now described".into()));
            assert_eq!(
                mongo.replace_unit_test_set(&read, &next).await.unwrap(),
                Written::Done
            );
            assert_eq!(mongo.unit_test_set(&org, id).await.unwrap(), Some(next));

            // Another one, left as seeded until the start-up sweep rewrites it: then the creator
            // filter finds it, and its name is guarded.
            sets.delete_many(doc! {}).await.unwrap();
            sets.insert_one(seeded).await.unwrap();
            let mut by_seed = live_sets("acme");
            by_seed.filter.creators = vec![user("acme", "seed")];
            assert_eq!(mongo.inner.sweep_unit_test_sets().await.unwrap(), 1);
            let found = mongo.list_unit_test_sets(&by_seed).await.unwrap();
            assert_eq!(found.items.len(), 1);
            assert_eq!(found.items[0].id, id);
            assert!(matches!(
                mongo
                    .insert_unit_test_set(&a_set("acme", "seeded", &[u.id]))
                    .await,
                Err(StoreError::Duplicate)
            ));
            assert_eq!(
                mongo.inner.sweep_unit_test_sets().await.unwrap(),
                0,
                "done once"
            );
            mongo.drop_database().await.unwrap();
        }

        /// A random set among few distinct values, so filters, ties and facets all meet.
        fn random_set(rng: &mut StdRng, n: usize) -> UnitTestSet {
            use crate::store::tests::testgen::{
                NAMES, PIECES, TAG_KEYS, TAG_VALUES, USERS, WORDS, pick,
            };
            let org = if rng.gen_bool(0.9) { "acme" } else { "globex" };
            let mut set = a_set(org, &format!("{} {n}", pick(rng, NAMES)), &[]);
            set.id = ObjectIdHex::from_bytes({
                let mut b = [0u8; 12];
                rng.fill(&mut b[..]);
                b
            });
            set.is_deleted = rng.gen_bool(0.25);
            if set.is_deleted && rng.gen_bool(0.5) {
                set.name = pick(rng, NAMES).to_string();
            }
            set.description = match rng.gen_range(0..3) {
                0 => None,
                1 => Some(
                    (0..rng.gen_range(1..4))
                        .map(|_| *pick(rng, WORDS))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => Some(
                    (0..rng.gen_range(1..6))
                        .map(|_| *pick(rng, PIECES))
                        .collect::<String>(),
                ),
            };
            set.unit_test_runs = (0..rng.gen_range(1..4))
                .map(|_| UnitTestRun {
                    unit_test_id: id(rng.gen_range(40..46)),
                    run_count: rng.gen_range(1..4),
                })
                .collect();
            let mut tags = std::collections::BTreeMap::new();
            for _ in 0..rng.gen_range(0..4) {
                tags.insert(
                    pick(rng, TAG_KEYS).to_string(),
                    pick(rng, TAG_VALUES).map(str::to_owned),
                );
            }
            set.tags = tags
                .into_iter()
                .map(|(key, value)| Tag { key, value })
                .collect();
            let (o, u) = *pick(rng, USERS);
            set.creator = user(o, u);
            set.created_at = Timestamp::from_millis(1_700_000_000_000 + rng.gen_range(0..5));
            set.updated_at = Timestamp::from_millis(set.created_at.millis() + rng.gen_range(0..3));
            set
        }

        fn random_set_query(rng: &mut StdRng, ids: &[ObjectIdHex]) -> UnitTestSetQuery {
            use crate::domain::query::{TagValueFilter, fold_case};
            use crate::store::tests::testgen::{PIECES, TAG_KEYS, TAG_VALUES, USERS, pick};
            let org = if rng.gen_bool(0.9) { "acme" } else { "globex" };
            let mut f = UnitTestSetFilter::for_org(&org.into());
            if rng.gen_bool(0.1) {
                f.ids = (0..rng.gen_range(1..4)).map(|_| *pick(rng, ids)).collect();
            }
            if rng.gen_bool(0.25) {
                f.unit_test_ids = (0..rng.gen_range(1..3))
                    .map(|_| id(rng.gen_range(40..47)))
                    .collect();
            }
            if rng.gen_bool(0.2) {
                f.creators = (0..rng.gen_range(1..3))
                    .map(|_| {
                        let (o, u) = *pick(rng, USERS);
                        user(o, u)
                    })
                    .collect();
            }
            if rng.gen_bool(0.3) {
                for _ in 0..rng.gen_range(1..3) {
                    let wanted = match rng.gen_range(0..3) {
                        0 => TagValueFilter::Any,
                        1 => TagValueFilter::Null,
                        _ => TagValueFilter::Exact(
                            pick(rng, TAG_VALUES).unwrap_or("growth").to_owned(),
                        ),
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
            if rng.gen_bool(0.35) {
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
                    "nightly",
                    "run",
                ];
                let text = if rng.gen_bool(0.7) {
                    pick(rng, &pool).to_string()
                } else {
                    (0..rng.gen_range(1..4))
                        .map(|_| *pick(rng, PIECES))
                        .collect()
                };
                f.terms = text.split_whitespace().map(fold_case).collect();
            }
            UnitTestSetQuery {
                filter: f,
                updated_at_descending: *pick(rng, &[None, Some(true), Some(false)]),
                offset: *pick(rng, &[0, 0, 0, 1, 3, 10, 1000]),
                limit: *pick(rng, &[0, 1, 2, 5, 50, 500]),
                with_facets: rng.gen_bool(0.5),
            }
        }

        #[tokio::test]
        async fn lists_answer_as_the_definition_cuts_pages() {
            let Some(mongo) = mongo().await else { return };
            let mut rng = StdRng::seed_from_u64(15);
            let sets: Vec<UnitTestSet> = (0..150).map(|n| random_set(&mut rng, n)).collect();
            let docs: Vec<Document> = sets
                .iter()
                .map(|s| unit_test_set_to_doc(s).unwrap())
                .collect();
            mongo
                .collection(c::UNIT_TEST_SET)
                .insert_many(docs)
                .await
                .unwrap();
            // A pending set matches nothing.
            leftover(
                &mongo,
                &a_set("acme", "pending nightly", &[id(40)]),
                1,
                None,
            )
            .await;
            let all: Vec<Arc<UnitTestSet>> = sets.iter().cloned().map(Arc::new).collect();
            let ids: Vec<ObjectIdHex> = sets.iter().map(|s| s.id).collect();
            let mut non_empty = 0;
            for round in 0..300 {
                let q = random_set_query(&mut rng, &ids);
                let matching = all
                    .iter()
                    .filter(|s| q.filter.matches(s))
                    .cloned()
                    .collect();
                let want = SetPage::cut(&q, matching);
                let got = mongo.list_unit_test_sets(&q).await.unwrap();
                let names =
                    |p: &SetPage| p.items.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
                assert_eq!(
                    got.items,
                    want.items,
                    "round {round}: {q:?}\n{:?}\nvs\n{:?}",
                    names(&got),
                    names(&want)
                );
                assert_eq!(got.has_more, want.has_more, "round {round}: {q:?}");
                assert_eq!(
                    got.filter_values, want.filter_values,
                    "round {round}: {q:?}"
                );
                non_empty += usize::from(!want.items.is_empty());
            }
            assert!(
                non_empty > 80,
                "queries too selective to prove much: {non_empty}"
            );
            mongo.drop_database().await.unwrap();
        }

        #[tokio::test]
        async fn set_lists_searches_and_facets_use_an_index_and_scan_no_collection() {
            use crate::store::mongo::facets::set_facets_pipeline;
            use crate::store::mongo::tests::live::{assert_indexed, plan_nodes};
            let Some(mongo) = mongo().await else { return };
            let mut rng = StdRng::seed_from_u64(3);
            let docs: Vec<Document> = (0..4000)
                .map(|n| {
                    let mut s = random_set(&mut rng, n);
                    s.org_id = if n % 40 == 0 {
                        "acme".into()
                    } else {
                        format!("org{}", n % 97).into()
                    };
                    unit_test_set_to_doc(&s).unwrap()
                })
                .collect();
            mongo
                .collection(c::UNIT_TEST_SET)
                .insert_many(docs)
                .await
                .unwrap();
            let first_page = || {
                let mut q = live_sets("acme");
                q.filter.is_deleted = None;
                q.limit = 50;
                q.with_facets = true;
                q
            };
            let mut queries = vec![("first page", first_page())];
            let mut q = first_page();
            q.updated_at_descending = Some(true);
            queries.push(("newest first", q));
            let mut q = first_page();
            q.filter.unit_test_ids = vec![id(41)];
            queries.push(("by unit test", q));
            let mut q = first_page();
            q.filter.creators = vec![user("acme", "bob")];
            queries.push(("by creator", q));
            let mut q = first_page();
            q.filter.tags.insert(
                "team".into(),
                vec![crate::domain::query::TagValueFilter::Any],
            );
            queries.push(("by tag key", q));
            let mut q = first_page();
            q.filter.tags.insert(
                "team".into(),
                vec![crate::domain::query::TagValueFilter::Exact("core".into())],
            );
            queries.push(("by tag", q));
            for term in ["zqxj", "3960"] {
                let mut q = first_page();
                q.filter.is_deleted = Some(false);
                q.filter.terms = vec![term.into()];
                q.updated_at_descending = Some(true);
                q.with_facets = false;
                queries.push(("search", q));
            }
            let db = mongo.database();
            for (what, q) in queries {
                let filter = set_filter_document(&q.filter);
                let find = doc! {
                    "find": c::UNIT_TEST_SET,
                    "filter": filter.clone(),
                    "sort": set_sort_document(&q),
                    "skip": q.offset as i64,
                    "limit": i64::from(q.limit) + 1,
                };
                let explain = db
                    .run_command(doc! {"explain": find, "verbosity": "queryPlanner"})
                    .await
                    .unwrap();
                assert_indexed(what, &explain);
                if what == "search" {
                    let plan = plan_nodes(&explain);
                    assert!(
                        plan.iter().any(|n| n.contains("org_id_search_grams_live")),
                        "{q:?}: {plan:?}"
                    );
                }
                if q.with_facets {
                    let aggregate = doc! {
                        "aggregate": c::UNIT_TEST_SET,
                        "pipeline": set_facets_pipeline(&filter),
                        "cursor": {},
                    };
                    let explain = db
                        .run_command(doc! {"explain": aggregate, "verbosity": "queryPlanner"})
                        .await
                        .unwrap();
                    assert_indexed(&format!("{what} facets"), &explain);
                }
            }
            mongo.drop_database().await.unwrap();
        }

        #[tokio::test]
        async fn round_trips_of_set_writes_and_unit_test_deletes() {
            use crate::store::round_trips::counted;
            let Some(mongo) = mongo().await else { return };
            let db = &mongo.inner;
            let (u1, u2, u3) = (
                unit_test(&mongo, "acme").await,
                unit_test(&mongo, "acme").await,
                unit_test(&mongo, "acme").await,
            );
            let set = a_set("acme", "counted", &[u1.id, u2.id]);
            let (written, trips) = counted("test", db.insert_unit_test_set(&set)).await;
            assert_eq!(
                (written.unwrap(), trips),
                (Written::Done, 3),
                "insert, fence, publish"
            );
            let renamed = changed(&set, |s| s.name = "recounted".into());
            let (written, trips) = counted("test", db.replace_unit_test_set(&set, &renamed)).await;
            assert_eq!(
                (written.unwrap(), trips),
                (Written::Done, 1),
                "adding nothing"
            );
            let adding = changed(&renamed, |s| s.unit_test_runs[0].unit_test_id = u3.id);
            let (written, trips) =
                counted("test", db.replace_unit_test_set(&renamed, &adding)).await;
            assert_eq!(
                (written.unwrap(), trips),
                (Written::Done, 3),
                "claim, fence, write"
            );
            let (written, trips) =
                counted("test", mongo.inner.replace_unit_test(&u1, &deleted(&u1))).await;
            assert_eq!(
                (written.unwrap(), trips),
                (Written::Done, 4),
                "fence, check, write, and the version recorded (history)"
            );
            let (written, trips) =
                counted("test", mongo.inner.replace_unit_test(&u2, &deleted(&u2))).await;
            assert_eq!(
                (written.unwrap(), trips),
                (Written::InUse, 2),
                "fence, check"
            );
            mongo.drop_database().await.unwrap();
        }

        /// A second store on the same database: another process, with its own connections.
        async fn other_process(mongo: &MongoStore) -> MongoStore {
            let uri = std::env::var("SIMTEST_TEST_MONGODB_URI").unwrap();
            MongoStore::connect(&uri, mongo.database_name(), MongoWriteConcern::Majority)
                .await
                .unwrap()
        }

        #[tokio::test]
        async fn a_unit_test_delete_and_a_set_write_listing_it_never_both_succeed() {
            let Some(mongo) = mongo().await else { return };
            let a = Arc::new(mongo);
            let b = Arc::new(other_process(&a).await);
            let pairs = 100;
            let mut rng = StdRng::seed_from_u64(15);
            let mut units = Vec::new();
            let mut held = Vec::new();
            for _ in 0..pairs {
                units.push(unit_test(&a, "acme").await);
                // For the update race: a set listing another unit test, to add units[i] to.
                let other = unit_test(&a, "acme").await;
                let s = a_set("acme", &format!("held {}", other.id), &[other.id]);
                a.insert_unit_test_set(&s).await.unwrap();
                held.push(s);
            }
            // How long a set insert and a unit test delete take here, one after the other.
            let span = {
                let started = Instant::now();
                let u = unit_test(&a, "acme").await;
                let set = a_set("acme", "timed", &[u.id]);
                a.insert_unit_test_set(&set).await.unwrap();
                let u = unit_test(&a, "acme").await;
                a.replace_unit_test(&u, &deleted(&u)).await.unwrap();
                started.elapsed()
            };
            let (mut tasks, mut results) = (Vec::new(), Vec::new());
            for (i, u) in units.iter().enumerate() {
                // One side starts first, the other up to about one operation's time later, so
                // both orders and every overlap occur on a fast or a loaded machine.
                let late = Duration::from_micros(rng.gen_range(0..=span.as_micros() as u64));
                let (delay_delete, delay_write) = if rng.gen_bool(0.5) {
                    (late, Duration::ZERO)
                } else {
                    (Duration::ZERO, late)
                };
                let (writer, deleter) = if rng.gen_bool(0.5) {
                    (a.clone(), b.clone())
                } else {
                    (b.clone(), a.clone())
                };
                let u = u.clone();
                let update = i % 2 == 1;
                let previous = held[i].clone();
                tasks.push(tokio::spawn(async move {
                    let delete = async {
                        tokio::time::sleep(delay_delete).await;
                        deleter.replace_unit_test(&u, &deleted(&u)).await.unwrap()
                    };
                    let write = async {
                        tokio::time::sleep(delay_write).await;
                        if update {
                            let next = changed(&previous, |s| {
                                s.unit_test_runs.push(UnitTestRun {
                                    unit_test_id: u.id,
                                    run_count: 1,
                                })
                            });
                            writer
                                .replace_unit_test_set(&previous, &next)
                                .await
                                .unwrap()
                        } else {
                            let set = a_set("acme", &format!("race {}", u.id), &[u.id]);
                            writer.insert_unit_test_set(&set).await.unwrap()
                        }
                    };
                    let (deleted, written) = tokio::join!(delete, write);
                    (u, deleted, written)
                }));
                // A few pairs at a time: a queue for the connection pool would decide the order.
                if tasks.len() == 4 {
                    for t in tasks.drain(..) {
                        results.push(t.await.unwrap());
                    }
                }
            }
            for t in tasks {
                results.push(t.await.unwrap());
            }
            let mut outcomes = std::collections::BTreeMap::new();
            for (u, deleted, written) in results {
                assert!(
                    !(deleted == Written::Done && written == Written::Done),
                    "{}: both the delete and the set write succeeded",
                    u.id
                );
                match (deleted, written) {
                    (Written::Done, Written::UnitTestMissing(id)) => assert_eq!(id, u.id),
                    (Written::InUse, Written::Done) | (Written::Done, _) => {}
                    other => panic!("{}: unexpected {other:?}", u.id),
                }
                // The end state agrees: a deleted unit test is listed by no set.
                let now = a.unit_test(&"acme".into(), u.id).await.unwrap().unwrap();
                assert_eq!(
                    a.unit_test_in_live_set(&"acme".into(), u.id).await.unwrap(),
                    !now.is_deleted,
                    "{}",
                    u.id
                );
                *outcomes
                    .entry(match written {
                        Written::UnitTestMissing(_) => format!("{deleted:?}/UnitTestMissing"),
                        _ => format!("{deleted:?}/{written:?}"),
                    })
                    .or_insert(0) += 1;
            }
            // Both orders happened, or the race proved little.
            assert!(outcomes.len() >= 2, "{outcomes:?}");
            a.drop_database().await.unwrap();
        }
    }
}
