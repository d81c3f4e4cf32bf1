//! `Idempotency-Key` records on MongoDB: one document per key scope, `_id` the scope. A claim is
//! an insert (the `_id` settles racing claims), or, over a stale record, a replace filtered by the
//! stale record's nonce (so of two requests taking over one stale key, one wins). Collection
//! `simtest_idempotency_key`; a stale record met is taken over, and records past their day are
//! swept out now and then (through the `started_at` index of migration 0006), so the collection
//! holds about a day of keys, as the embedded store's table does.

use std::sync::atomic::{AtomicU64, Ordering};

use mongodb::bson::{self, Document, doc};

use super::Db;
use super::errors::{is_duplicate_key, store_error};
use crate::domain::Timestamp;
use crate::domain::idempotency::{Claim, KEEP_MILLIS, KeyRecord};
use crate::store::{StoreError, StoreResult};

pub(super) const KEYS: &str = "simtest_idempotency_key";

/// Every this many claims of a process (its first included), records past their day are deleted.
const SWEEP_EVERY: u64 = 1024;
static CLAIMS: AtomicU64 = AtomicU64::new(0);

/// How often a claim looks again when the record it met vanished or was taken over meanwhile.
const ATTEMPTS: usize = 8;

fn to_doc(record: &KeyRecord) -> StoreResult<Document> {
    let mut document = bson::to_document(record)
        .map_err(|e| StoreError::Internal(format!("cannot encode a key record: {e}")))?;
    document.insert("_id", record.scope.storage_key());
    Ok(document)
}

fn from_doc(mut document: Document) -> StoreResult<KeyRecord> {
    document.remove("_id");
    bson::from_document(document)
        .map_err(|e| StoreError::Internal(format!("corrupt key record: {e}")))
}

impl Db {
    pub(super) async fn claim_key(&self, wanted: &KeyRecord) -> StoreResult<Claim> {
        if CLAIMS
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            self.sweep_keys(wanted.started_at).await?;
        }
        let keys = self.collection(KEYS);
        let id = wanted.scope.storage_key();
        for _ in 0..ATTEMPTS {
            match keys.insert_one(to_doc(wanted)?).await {
                Ok(_) => return Ok(Claim::Claimed),
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(store_error(e)),
            }
            let Some(stored) = keys
                .find_one(doc! {"_id": &id})
                .await
                .map_err(store_error)?
            else {
                continue; // Released meanwhile: insert again.
            };
            let stored = from_doc(stored)?;
            if !stored.is_stale(wanted.started_at) {
                return Ok(stored.claim_by(wanted));
            }
            let taken = keys
                .replace_one(doc! {"_id": &id, "nonce": &stored.nonce}, to_doc(wanted)?)
                .await
                .map_err(store_error)?;
            if taken.matched_count == 1 {
                return Ok(Claim::Claimed);
            }
        }
        Err(StoreError::Unavailable(
            "an idempotency key kept changing hands".into(),
        ))
    }

    /// Deletes the records no request can use any more at `now`: every record started a day
    /// ago or earlier is stale, answered or not (`KeyRecord::is_stale`). Younger abandoned
    /// claims are left to be taken over when met. `started_at` is stored as RFC 3339 in UTC with
    /// milliseconds, one width for every year simtest meets, so strings compare as instants.
    pub(super) async fn sweep_keys(&self, now: Timestamp) -> StoreResult<u64> {
        let cutoff = Timestamp::from_millis(now.millis().saturating_sub(KEEP_MILLIS));
        let cutoff = bson::to_bson(&cutoff)
            .map_err(|e| StoreError::Internal(format!("cannot encode a time: {e}")))?;
        let swept = self
            .collection(KEYS)
            .delete_many(doc! {"started_at": {"$lte": cutoff}})
            .await
            .map_err(store_error)?;
        Ok(swept.deleted_count)
    }

    pub(super) async fn finish_key(&self, record: &KeyRecord) -> StoreResult<()> {
        let keys = self.collection(KEYS);
        let filter = doc! {"_id": record.scope.storage_key(), "nonce": &record.nonce};
        if record.answer.is_some() {
            keys.replace_one(filter, to_doc(record)?)
                .await
                .map_err(store_error)?;
        } else {
            keys.delete_one(filter).await.map_err(store_error)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::UserInfo;
    use crate::domain::idempotency::{KeptAnswer, KeyScope};
    use crate::store::tests::live_mongo;

    fn record(key: &str, started_at: i64, answered: bool) -> KeyRecord {
        KeyRecord {
            scope: KeyScope {
                org_id: "acme".into(),
                caller: UserInfo {
                    org_id: "acme".into(),
                    user_id: "alice".into(),
                },
                key: key.into(),
            },
            fingerprint: "f".into(),
            nonce: "n".into(),
            started_at: Timestamp::from_millis(started_at),
            answer: answered.then(|| KeptAnswer {
                status: 201,
                body: "{}".into(),
                etag: None,
            }),
        }
    }

    /// Against a live MongoDB (`SIMTEST_TEST_MONGODB_URI`); SKIPPED without it.
    #[tokio::test]
    async fn records_a_day_old_are_swept_and_younger_ones_kept() {
        let Some(store) = live_mongo().await else {
            return;
        };
        let now = Timestamp::now().millis();
        let records = [
            record("old", now - KEEP_MILLIS - 1, true),
            record("a-day", now - KEEP_MILLIS, false),
            record("young", now - KEEP_MILLIS + 1000, true),
            record("fresh", now, false),
        ];
        let keys = store.inner.collection(KEYS);
        for r in &records {
            keys.insert_one(to_doc(r).unwrap()).await.unwrap();
        }
        let swept = store.inner.sweep_keys(Timestamp::from_millis(now)).await;
        assert_eq!(swept.unwrap(), 2);
        let mut left = Vec::new();
        let mut cursor = keys.find(doc! {}).await.unwrap();
        while cursor.advance().await.unwrap() {
            left.push(
                from_doc(cursor.deserialize_current().unwrap())
                    .unwrap()
                    .scope
                    .key,
            );
        }
        left.sort();
        assert_eq!(left, ["fresh", "young"]);
        store.drop_database().await.unwrap();
    }
}
