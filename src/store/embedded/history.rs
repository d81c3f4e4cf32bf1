//! Every version of every unit test, kept in the embedded store beside the unit test, in the same
//! transaction as the write that made it: (org, unit test, `updated_at`) → the unit test as it was
//! then. Versions are never removed (a delete is a version too).

use redb::{Database, ReadableDatabase, TableDefinition, WriteTransaction};

use super::{Failure, Id, decode};
use crate::domain::{ObjectIdHex, Timestamp, UnitTest};

const VERSIONS: TableDefinition<(&str, Id, i64), &[u8]> =
    TableDefinition::new("simulation_unit_test_version");

pub(super) fn create_table(db: &Database) -> Result<(), Failure> {
    let txn = db.begin_write()?;
    txn.open_table(VERSIONS)?;
    txn.commit()?;
    Ok(())
}

/// Records `doc` (encoded as `bytes`) as the version its write made.
pub(super) fn record(txn: &WriteTransaction, doc: &UnitTest, bytes: &[u8]) -> Result<(), Failure> {
    let mut versions = txn.open_table(VERSIONS)?;
    versions.insert(
        (doc.org_id.as_str(), doc.id.bytes(), doc.updated_at.millis()),
        bytes,
    )?;
    Ok(())
}

/// The versions of unit test `id` made at or before `up_to`, newest first, at most `limit`.
pub(super) fn versions(
    db: &Database,
    org_id: &str,
    id: ObjectIdHex,
    up_to: Timestamp,
    limit: usize,
) -> Result<Vec<UnitTest>, Failure> {
    let txn = db.begin_read()?;
    let table = txn.open_table(VERSIONS)?;
    let id = id.bytes();
    let mut found = Vec::new();
    for entry in table
        .range((org_id, id, i64::MIN)..=(org_id, id, up_to.millis()))?
        .rev()
        .take(limit)
    {
        found.push(decode(entry?.1.value())?);
    }
    Ok(found)
}

/// Forgets every version of unit test `id` (a hard delete).
pub(super) fn forget(txn: &WriteTransaction, org_id: &str, id: ObjectIdHex) -> Result<(), Failure> {
    let mut versions = txn.open_table(VERSIONS)?;
    let id = id.bytes();
    versions.retain_in((org_id, id, i64::MIN)..=(org_id, id, i64::MAX), |_, _| {
        false
    })?;
    Ok(())
}
