//! A unit test's history: its recorded versions, newest first, each with who made it, when, and
//! which fields it changed (before and after), computed from the version before it; and its end,
//! the hard delete that removes a deleted unit test and its history for good.

use serde::Serialize;
use serde_json::Value;

use super::UnitTestService;
use crate::auth::CurrentUser;
use crate::domain::{ObjectIdHex, Timestamp, UnitTest, UserInfo};
use crate::error::Error;
use crate::store::Written;

/// Fields that say who and when, not what: not listed as changes.
const BOOKKEEPING: [&str; 5] = ["id", "org_id", "creator", "updated_by", "updated_at"];

#[derive(Debug, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

#[derive(Debug, Serialize)]
pub struct HistoryEntry {
    /// The version: `updated_at` in milliseconds (also the `continuation_token` that starts a
    /// page here).
    pub version: u64,
    pub etag: String,
    pub updated_at: Timestamp,
    pub updated_by: UserInfo,
    /// `create`, `update` or `delete`.
    pub action: &'static str,
    /// What the write changed; `null` for the oldest version kept when it is not the creation
    /// (versions from before history was kept are not there to compare with).
    pub changes: Option<Vec<FieldChange>>,
}

#[derive(Debug, Serialize)]
pub struct HistoryPage {
    pub versions: Vec<HistoryEntry>,
    pub has_more: bool,
    pub continuation_token: Option<u64>,
}

impl UnitTestService {
    /// Deletes unit test `id` for good, with its history: only one already deleted that no set
    /// (deleted or not) lists. Irreversible; logged with who did it.
    #[tracing::instrument(skip_all, fields(org = %user.org_id, unit_test_id = %id))]
    pub async fn delete_permanently(
        &self,
        user: &CurrentUser,
        id: ObjectIdHex,
    ) -> Result<(), Error> {
        for _ in 0..2 {
            match user.store.purge_unit_test(&user.org_id, id).await? {
                Written::Done => {
                    tracing::warn!(by = %user.user_id, by_org = %user.token_org_id, "unit test deleted permanently");
                    return Ok(());
                }
                Written::InUse => return Err(Error::UnitTestInUse(id)),
                Written::Stale | Written::UnitTestMissing(_) => {
                    match user.store.unit_test(&user.org_id, id).await? {
                        None => return Err(Error::UnitTestNotFound(id)),
                        Some(t) if !t.is_deleted => return Err(Error::UnitTestNotDeleted(id)),
                        // Deleted meanwhile: try again.
                        Some(_) => {}
                    }
                }
            }
        }
        Err(Error::TooManyConcurrentChanges(id))
    }

    /// The history of unit test `id` (deleted or not), `limit` versions from `start` (a version,
    /// the newest when absent).
    pub async fn history(
        &self,
        user: &CurrentUser,
        id: ObjectIdHex,
        limit: u32,
        start: Option<u64>,
    ) -> Result<HistoryPage, Error> {
        let current = self.get(user, id).await?;
        let up_to = match start {
            Some(millis) => Timestamp::from_millis(i64::try_from(millis).unwrap_or(i64::MAX)),
            None => current.updated_at,
        };
        // One more to tell whether more follow, and one more to compare the last one with.
        let versions = user
            .store
            .unit_test_versions(&user.org_id, id, up_to, limit + 2)
            .await?;
        let shown = versions.len().min(limit as usize);
        let entries = (0..shown)
            .map(|i| entry(&versions[i], versions.get(i + 1)))
            .collect::<Result<Vec<_>, Error>>()?;
        let next = versions.get(limit as usize);
        Ok(HistoryPage {
            versions: entries,
            has_more: next.is_some(),
            continuation_token: next.map(|v| v.updated_at.millis().max(0) as u64),
        })
    }
}

fn entry(version: &UnitTest, before: Option<&UnitTest>) -> Result<HistoryEntry, Error> {
    let created = before.is_none() && version.created_at == version.updated_at;
    let action = if created {
        "create"
    } else if version.is_deleted && before.is_none_or(|b| !b.is_deleted) {
        "delete"
    } else {
        "update"
    };
    let changes = match before {
        Some(before) => Some(diff(before, version)?),
        None if created => Some(diff_from_nothing(version)?),
        None => None,
    };
    Ok(HistoryEntry {
        version: version.updated_at.millis().max(0) as u64,
        etag: version.etag(),
        updated_at: version.updated_at,
        updated_by: version.updated_by.clone(),
        action,
        changes,
    })
}

fn fields(t: &UnitTest) -> Result<serde_json::Map<String, Value>, Error> {
    match serde_json::to_value(t) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Error::Internal("a unit test is not a JSON object".into())),
    }
}

fn diff(before: &UnitTest, after: &UnitTest) -> Result<Vec<FieldChange>, Error> {
    let (old, new) = (fields(before)?, fields(after)?);
    Ok(new
        .into_iter()
        .filter(|(field, _)| !BOOKKEEPING.contains(&field.as_str()))
        .filter_map(|(field, after)| {
            let before = old.get(&field).cloned().unwrap_or(Value::Null);
            (before != after).then_some(FieldChange {
                field,
                before,
                after,
            })
        })
        .collect())
}

fn diff_from_nothing(created: &UnitTest) -> Result<Vec<FieldChange>, Error> {
    Ok(fields(created)?
        .into_iter()
        .filter(|(field, _)| !BOOKKEEPING.contains(&field.as_str()))
        .map(|(field, after)| FieldChange {
            field,
            before: Value::Null,
            after,
        })
        .collect())
}
