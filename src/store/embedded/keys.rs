//! `Idempotency-Key` records in the embedded store: one table keyed by the key's scope. A claim
//! or a finish is one redb write transaction of its own (redb runs one at a time, so the read and
//! the write of a claim are one atomic step); they are rare next to unit test writes, so they do
//! not go through the writer's batches.

use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableTable, TableDefinition};

use super::{Failure, decode, encode};
use crate::domain::Timestamp;
use crate::domain::idempotency::{Claim, KeyRecord};

const KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("simtest_idempotency_key");

/// Every this many claims, stale records are swept out (so the table holds about a day of keys).
const SWEEP_EVERY: u64 = 1024;
static CLAIMS: AtomicU64 = AtomicU64::new(0);

pub(super) fn create_table(db: &Database) -> Result<(), Failure> {
    let txn = db.begin_write()?;
    txn.open_table(KEYS)?;
    txn.commit()?;
    sweep(db, Timestamp::now())
}

/// Stores `wanted` unless a record of its scope that is not stale is there; then what that one
/// means for it.
pub(super) fn claim(db: &Database, wanted: &KeyRecord) -> Result<Claim, Failure> {
    if CLAIMS.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
        sweep(db, wanted.started_at)?;
    }
    let key = wanted.scope.storage_key();
    let txn = db.begin_write()?;
    let claim = {
        let mut table = txn.open_table(KEYS)?;
        let stored: Option<KeyRecord> = table
            .get(key.as_str())?
            .map(|v| decode(v.value()))
            .transpose()?;
        match stored.filter(|s| !s.is_stale(wanted.started_at)) {
            Some(stored) => stored.claim_by(wanted),
            None => {
                table.insert(key.as_str(), encode(wanted)?.as_slice())?;
                Claim::Claimed
            }
        }
    };
    if claim == Claim::Claimed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    Ok(claim)
}

/// Ends the claim `record` made: keeps its answer, or (no answer) releases the key. A record that
/// another claim took over meanwhile is left as it is.
pub(super) fn finish(db: &Database, record: &KeyRecord) -> Result<(), Failure> {
    let key = record.scope.storage_key();
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(KEYS)?;
        let stored: Option<KeyRecord> = table
            .get(key.as_str())?
            .map(|v| decode(v.value()))
            .transpose()?;
        if stored.is_some_and(|s| s.nonce == record.nonce) {
            if record.answer.is_some() {
                table.insert(key.as_str(), encode(record)?.as_slice())?;
            } else {
                table.remove(key.as_str())?;
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// Removes the records that no request can use any more.
fn sweep(db: &Database, now: Timestamp) -> Result<(), Failure> {
    let txn = db.begin_write()?;
    {
        let mut table = txn.open_table(KEYS)?;
        let mut stale = Vec::new();
        for entry in table.iter()? {
            let (key, value) = entry?;
            if decode::<KeyRecord>(value.value())?.is_stale(now) {
                stale.push(key.value().to_owned());
            }
        }
        for key in stale {
            table.remove(key.as_str())?;
        }
    }
    txn.commit()?;
    Ok(())
}
