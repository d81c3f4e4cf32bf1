//! MongoDB's answers as [`StoreError`]s: which server codes and driver errors mean a duplicate
//! name, which mean "not answering now" (503, worth a retry) and which are bugs, including the
//! failures a write command reports inside an `ok: 1` reply.

use mongodb::bson::{Bson, Document};
use mongodb::error::{ErrorKind, WriteFailure};

use crate::store::{StoreError, StoreResult};

/// Server error codes that mean "not reachable or not answering now", worth a retry: shutdown,
/// stepdown, not primary, host unreachable, network timeout, socket errors, time limits.
const UNAVAILABLE_CODES: &[i32] = &[
    6, 7, 50, 64, 89, 91, 134, 189, 262, 9001, 10058, 10107, 11600, 11602, 13435, 13436,
];
/// DocumentDB runs `maxTimeMS` as PostgreSQL's statement timeout and, when it fires, answers
/// "canceling statement due to statement timeout" with SQLSTATE 57014 (`query_canceled`) packed
/// six bits a character ('5' | '7' << 6 | '0' << 12 | '1' << 18 | '4' << 24) as its code, not
/// MongoDB's 50: the statement was rolled back, so it is a time limit like 50.
const POSTGRES_QUERY_CANCELED: i32 = 67_371_461;

fn unavailable_code(code: i32) -> bool {
    UNAVAILABLE_CODES.contains(&code) || code == POSTGRES_QUERY_CANCELED
}
const DUPLICATE_KEY_CODES: &[i32] = &[11000, 11001];
/// A collection created meanwhile by another process.
pub(super) const NAMESPACE_EXISTS: i32 = 48;

/// A write command answers `ok: 1` even when its write failed: the failure is in `writeErrors`
/// (not applied) or `writeConcernError` (applied, not confirmed at the asked level in time).
pub(super) fn command_write_outcome(reply: &Document) -> StoreResult<()> {
    if let Some(first) = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|errors| errors.first())
        .and_then(Bson::as_document)
    {
        let code = reply_code(first);
        let message = first.get_str("errmsg").unwrap_or("write error");
        return Err(if DUPLICATE_KEY_CODES.contains(&code) {
            StoreError::Duplicate
        } else if unavailable_code(code) {
            StoreError::Unavailable(format!("write not applied: {message} (code {code})"))
        } else {
            StoreError::Internal(format!("write error: {message} (code {code})"))
        });
    }
    if let Ok(wce) = reply.get_document("writeConcernError") {
        let message = wce.get_str("errmsg").unwrap_or("write concern error");
        return Err(StoreError::Unavailable(format!(
            "the write may have been applied but was not confirmed in time: {message} (code {})",
            reply_code(wce)
        )));
    }
    Ok(())
}

fn reply_code(d: &Document) -> i32 {
    match d.get("code") {
        Some(Bson::Int32(c)) => *c,
        Some(Bson::Int64(c)) => i32::try_from(*c).unwrap_or(-1),
        Some(Bson::Double(c)) => *c as i32,
        _ => -1,
    }
}

/// A count in a command reply (`n`, `nModified`), whatever number type the server used.
pub(super) fn reply_count(reply: &Document, field: &str) -> i64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

/// Duplicate keys become [`StoreError::Duplicate`]; an unreachable or unanswering server becomes
/// [`StoreError::Unavailable`]; the rest is internal.
pub(super) fn store_error(e: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&e) {
        return StoreError::Duplicate;
    }
    let unavailable = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(ce) => {
            unavailable_code(ce.code) || backend_unavailable(ce.code, &ce.message)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(wce)) => unavailable_code(wce.code),
        ErrorKind::Write(WriteFailure::WriteError(we)) => unavailable_code(we.code),
        _ => e.contains_label("RetryableWriteError"),
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

/// FerretDB 2 reports its PostgreSQL being restarted or unreachable as code 1 (`InternalError`)
/// with PostgreSQL's own words; those mean "not answering now", like a MongoDB shutdown, not a bug.
fn backend_unavailable(code: i32, message: &str) -> bool {
    const POSTGRES_UNAVAILABLE: &[&str] = &[
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "failed to connect to",
        "connection refused",
        "conn closed",
    ];
    code == 1 && POSTGRES_UNAVAILABLE.iter().any(|m| message.contains(m))
}

/// PostgreSQL's "deadlock detected" (DocumentDB, as a write error or a command error): it
/// aborted this statement's transaction so that another could go on, so nothing of it was applied
/// and it can be sent again.
pub(super) fn is_deadlock(e: &StoreError) -> bool {
    matches!(e, StoreError::Internal(message) if message.contains("deadlock detected"))
}

/// Code 11000, wherever the driver reports it: a command error, a write error, or one of the
/// write errors of a bulk or insert-many.
pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    let dup = |code: i32| DUPLICATE_KEY_CODES.contains(&code);
    match e.kind.as_ref() {
        ErrorKind::Command(ce) => dup(ce.code),
        ErrorKind::Write(WriteFailure::WriteError(we)) => dup(we.code),
        ErrorKind::InsertMany(ime) => ime
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().any(|we| dup(we.code))),
        ErrorKind::BulkWrite(bwe) => bwe.write_errors.values().any(|we| dup(we.code)),
        _ => false,
    }
}

pub(super) fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(ce) => Some(ce.code),
        _ => None,
    }
}

pub(super) fn corrupt(what: String) -> StoreError {
    StoreError::Internal(format!("corrupt unit test document: {what}"))
}

#[cfg(test)]
mod tests {
    use mongodb::bson::doc;

    use super::*;

    #[test]
    fn a_restarting_postgres_behind_ferretdb_is_unavailable_not_a_bug() {
        assert!(backend_unavailable(
            1,
            "terminating connection due to administrator command"
        ));
        assert!(backend_unavailable(
            1,
            "the database system is shutting down"
        ));
        assert!(!backend_unavailable(1, "invalid $regex"));
        assert!(!backend_unavailable(
            2,
            "the database system is shutting down"
        ));
    }

    #[test]
    fn write_command_replies_tell_duplicates_and_unconfirmed_writes_apart() {
        assert!(command_write_outcome(&doc! {"ok": 1, "n": 1}).is_ok());
        let duplicate =
            doc! {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"}]};
        assert!(matches!(
            command_write_outcome(&duplicate),
            Err(StoreError::Duplicate)
        ));
        let timed_out = doc! {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 50, "errmsg": "MaxTimeMSExpired"}]};
        assert!(matches!(
            command_write_outcome(&timed_out),
            Err(StoreError::Unavailable(_))
        ));
        // DocumentDB enforces `maxTimeMS` as PostgreSQL's statement timeout and reports it as
        // SQLSTATE 57014 in its own numbering, not as MongoDB's code 50.
        let statement_timeout = doc! {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 67371461, "errmsg": "canceling statement due to statement timeout"}]};
        assert!(matches!(
            command_write_outcome(&statement_timeout),
            Err(StoreError::Unavailable(_))
        ));
        let packed = (b"57014".iter().enumerate())
            .fold(0, |code, (i, c)| code | i32::from(c - b'0') << (6 * i));
        assert_eq!(packed, POSTGRES_QUERY_CANCELED);
        let unconfirmed = doc! {"ok": 1, "n": 1, "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}};
        match command_write_outcome(&unconfirmed) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("may have been applied"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(reply_count(&doc! {"n": 1_i64}, "n"), 1);
        assert_eq!(reply_count(&doc! {"n": 1.0}, "n"), 1);
    }
}
