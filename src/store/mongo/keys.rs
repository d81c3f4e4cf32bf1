//! `Idempotency-Key` records on MongoDB: one document per key scope, `_id` the scope. A claim is
//! an insert (the `_id` settles racing claims), or, over a stale record, a replace filtered by the
//! stale record's nonce (so of two requests taking over one stale key, one wins). Collection
//! `simtest_idempotency_key`; records older than a day are taken over when met, not swept.

use mongodb::bson::{self, Document, doc};

use super::Db;
use super::errors::{is_duplicate_key, store_error};
use crate::domain::idempotency::{Claim, KeyRecord};
use crate::store::{StoreError, StoreResult};

pub(super) const KEYS: &str = "simtest_idempotency_key";

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
