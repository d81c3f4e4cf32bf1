//! MongoDB migrations: declarative JSON files in `migrations/` (collections to create, indexes to
//! build), embedded in the binary and applied in name order by `simtest migrate` and at start-up.
//! Every step is idempotent — creating an existing collection or an identical index is a no-op —
//! so two processes applying one migration at once do no harm. The runner records each applied
//! migration in `simtest_migrations`.
//!
//! Data a migration's index needs in documents written before it is written by a backfill
//! ([`Db::backfill_search_grams`]), which the server runs in the background after migrating and
//! `simtest migrate` runs to the end: queries never depend on it being done.

use std::collections::HashSet;

use mongodb::IndexModel;
use mongodb::bson::{self, Bson, Document, doc};
use mongodb::options::IndexOptions;
use serde::Deserialize;

use super::Db;
use super::codec::{field, search_grams};
use super::collections as c;
use super::errors::{
    NAMESPACE_EXISTS, command_code, is_deadlock, is_duplicate_key, reply_count, store_error,
};
use crate::domain::search::search_text;
use crate::store::{StoreError, StoreResult};

/// The migrations, in the order they apply. A new file gets a new line here; applied ones never change.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../../migrations/0001_initial.json"),
    ),
    (
        "0002_user_grants",
        include_str!("../../../migrations/0002_user_grants.json"),
    ),
    (
        "0003_search_grams",
        include_str!("../../../migrations/0003_search_grams.json"),
    ),
    (
        "0004_unit_test_sets",
        include_str!("../../../migrations/0004_unit_test_sets.json"),
    ),
    (
        "0005_unit_test_versions",
        include_str!("../../../migrations/0005_unit_test_versions.json"),
    ),
    (
        "0006_idempotency_key_sweep",
        include_str!("../../../migrations/0006_idempotency_key_sweep.json"),
    ),
];

/// How many documents one backfill step reads and rewrites (one `find` and one `update` command).
const BACKFILL_BATCH: usize = 500;

/// The record in `simtest_migrations` saying every unit test document has its `search_grams`.
const SEARCH_GRAMS_BACKFILLED: &str = "0003_search_grams backfilled";

/// What a backfill did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backfill {
    /// Documents it wrote the field into.
    pub written: u64,
    /// Documents lacking the field it left as they were: changed meanwhile by an instance that
    /// does not write the field (an older version), or unreadable. Search still finds them; the
    /// next backfill tries again.
    pub left: u64,
}

/// One migration file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// Why the migration exists; not applied.
    #[serde(default)]
    pub description: String,
    /// Collections to create when missing.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Indexes to build when missing.
    #[serde(default)]
    pub indexes: Vec<IndexSpec>,
}

/// An index: its collection, its name, its keys in order, whether it is unique.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSpec {
    pub collection: String,
    pub name: String,
    /// `[field, 1 | -1]` pairs, in index order (a JSON object would not keep its order).
    pub keys: Vec<(String, i32)>,
    #[serde(default)]
    pub unique: bool,
    /// A filter: only the documents it matches are indexed (`partialFilterExpression`).
    #[serde(default)]
    pub partial: Option<serde_json::Map<String, serde_json::Value>>,
}

impl Migration {
    /// Reads and checks a migration file; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let m: Migration = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for index in &m.indexes {
            if index.keys.is_empty() {
                return Err(format!("index {:?} has no keys", index.name));
            }
            if let Some((field, dir)) = index.keys.iter().find(|(_, d)| *d != 1 && *d != -1) {
                return Err(format!(
                    "index {:?}: direction of {field:?} is {dir}, not 1 or -1",
                    index.name
                ));
            }
        }
        Ok(m)
    }
}

/// Whether `e` is what a race with another process migrating the same database looks like: a
/// duplicate key (a collection, an index or a record made meanwhile), or, on DocumentDB, the
/// PostgreSQL "deadlock detected" that aborts one of two concurrent index builds. Both pass when
/// the list is gone through again.
fn raced(e: &StoreError) -> bool {
    match e {
        StoreError::Duplicate => true,
        other => is_deadlock(other),
    }
}

/// The runner.
impl Db {
    /// Applies the migrations not yet recorded, in order; returns the names of those it applied.
    pub(super) async fn migrate(&self) -> StoreResult<Vec<String>> {
        // Every step is idempotent, so a race with another process migrating the same database
        // (which surfaces as a duplicate key on a collection, an index or the record) is settled by
        // going through the list again.
        let mut attempts = 0;
        // What this process recorded, over every attempt (an attempt cut short by a race still
        // recorded what it recorded).
        let mut applied = Vec::new();
        loop {
            match self.migrate_once(&mut applied).await {
                Ok(()) => return Ok(applied),
                Err(e) if attempts < 5 && raced(&e) => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempts)).await;
                }
                Err(e) if raced(&e) => {
                    return Err(StoreError::Internal(format!(
                        "migrations kept racing with another process: {e}"
                    )));
                }
                Err(other) => return Err(other),
            }
        }
    }

    async fn migrate_once(&self, applied: &mut Vec<String>) -> StoreResult<()> {
        let recorded: HashSet<String> = self
            .db
            .collection::<Document>(c::MIGRATIONS)
            .distinct("_id", doc! {})
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        for (name, text) in MIGRATIONS {
            if recorded.contains(*name) {
                continue;
            }
            let migration = Migration::parse(text)
                .map_err(|e| StoreError::Internal(format!("migration {name}: {e}")))?;
            self.apply(&migration).await?;
            // Another process migrating at the same time may have run the same idempotent steps;
            // the one whose insert of the record succeeds is the one that applied it (the `_id`
            // lets one insert through; an upsert's "upserted" was seen true in both racers on
            // DocumentDB under load).
            let recorded = self
                .db
                .collection::<Document>(c::MIGRATIONS)
                .insert_one(doc! {"_id": *name, "applied_at": bson::DateTime::now()})
                .await;
            match recorded {
                Ok(_) => {
                    tracing::info!(
                        migration = name,
                        database = self.db.name(),
                        "migration applied"
                    );
                    applied.push((*name).to_owned());
                }
                Err(e) if is_duplicate_key(&e) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(())
    }

    /// Writes `search_grams` and `search_text` into the unit test documents written without them
    /// (before migration 0003), in `_id` order, [`BACKFILL_BATCH`] at a time. Resumable: it only reads documents
    /// lacking the field. Safe beside another instance doing the same and beside writers: each
    /// update applies only if the document still lacks the field and still has the name and
    /// description its grams were computed from, and writes what any instance would. Once a pass
    /// leaves nothing behind it records so, and later calls return at once.
    pub(super) async fn backfill_search_grams(&self) -> StoreResult<Backfill> {
        let records = self.db.collection::<Document>(c::MIGRATIONS);
        let done = doc! {"_id": SEARCH_GRAMS_BACKFILLED};
        if records
            .find_one(done.clone())
            .await
            .map_err(store_error)?
            .is_some()
        {
            return Ok(Backfill::default());
        }
        let unit_tests = self.collection(c::UNIT_TEST);
        let mut outcome = Backfill::default();
        let mut after: Option<Bson> = None;
        loop {
            let mut lacking = doc! {field::SEARCH_GRAMS: {"$exists": false}};
            if let Some(last) = &after {
                lacking.insert(field::ID, doc! {"$gt": last.clone()});
            }
            let mut cursor = unit_tests
                .find(lacking)
                .projection(doc! {field::NAME: 1, field::DESCRIPTION: 1})
                .sort(doc! {field::ID: 1})
                .limit(BACKFILL_BATCH as i64)
                .batch_size(BACKFILL_BATCH as u32)
                .await
                .map_err(store_error)?;
            let mut updates = Vec::with_capacity(BACKFILL_BATCH);
            let mut read = 0u64;
            while cursor.advance().await.map_err(store_error)? {
                let d = cursor.deserialize_current().map_err(store_error)?;
                read += 1;
                after = d.get(field::ID).cloned();
                let (Some(id), Ok(name), Ok(description)) = (
                    d.get(field::ID),
                    d.get_str(field::NAME),
                    d.get_str(field::DESCRIPTION),
                ) else {
                    continue;
                };
                updates.push(doc! {
                    "q": {
                        field::ID: id.clone(),
                        field::NAME: name,
                        field::DESCRIPTION: description,
                        field::SEARCH_GRAMS: {"$exists": false},
                    },
                    "u": {"$set": {
                        field::SEARCH_TEXT: search_text(name, description),
                        field::SEARCH_GRAMS: search_grams(name, description),
                    }},
                });
            }
            if read == 0 {
                break;
            }
            let mut written = 0;
            if !updates.is_empty() {
                let reply = self
                    .db
                    .run_command(doc! {
                        "update": c::UNIT_TEST,
                        "updates": updates,
                        "ordered": false,
                    })
                    .await
                    .map_err(store_error)?;
                written = u64::try_from(reply_count(&reply, "nModified")).unwrap_or(0);
            }
            outcome.written += written;
            // What another instance wrote meanwhile is not left behind; what nobody wrote is.
            outcome.left += read - written;
        }
        if outcome.left > 0 {
            let still = unit_tests
                .count_documents(doc! {field::SEARCH_GRAMS: {"$exists": false}})
                .await
                .map_err(store_error)?;
            outcome.left = still;
        }
        if outcome.left == 0 {
            records
                .update_one(
                    done,
                    doc! {"$setOnInsert": {"applied_at": bson::DateTime::now()}},
                )
                .upsert(true)
                .await
                .map_err(store_error)?;
        }
        Ok(outcome)
    }

    async fn apply(&self, migration: &Migration) -> StoreResult<()> {
        let existing: HashSet<String> = self
            .db
            .list_collection_names()
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        for name in &migration.collections {
            if existing.contains(name) {
                continue;
            }
            match self.db.create_collection(name).await {
                Ok(()) => {}
                // Created meanwhile by another process: just as good.
                Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        for index in &migration.indexes {
            let mut keys = Document::new();
            for (field, direction) in &index.keys {
                keys.insert(field.clone(), *direction);
            }
            let partial = index
                .partial
                .as_ref()
                .map(bson::to_document)
                .transpose()
                .map_err(|e| {
                    StoreError::Internal(format!("index {}: bad partial filter: {e}", index.name))
                })?;
            let model = IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(index.name.clone())
                        .unique(index.unique.then_some(true))
                        .partial_filter_expression(partial)
                        .build(),
                )
                .build();
            self.collection(&index.collection)
                .create_index(model)
                .await
                .map_err(|e| match store_error(e) {
                    StoreError::Internal(cause) => StoreError::Internal(format!(
                        "cannot create index {} on {}: {cause}",
                        index.name, index.collection
                    )),
                    other => other,
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_parses_and_names_are_ordered_and_unique() {
        let names: Vec<&str> = MIGRATIONS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(names, sorted);
        for (name, text) in MIGRATIONS {
            let m = Migration::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut index_names: Vec<(&str, &str)> = m
                .indexes
                .iter()
                .map(|i| (i.collection.as_str(), i.name.as_str()))
                .collect();
            let count = index_names.len();
            index_names.sort();
            index_names.dedup();
            assert_eq!(index_names.len(), count, "{name}: index names repeat");
        }
    }

    #[test]
    fn the_initial_migration_guards_active_names_without_partial_indexes() {
        let m = Migration::parse(MIGRATIONS[0].1).unwrap();
        let guard = m
            .indexes
            .iter()
            .find(|i| i.collection == "simulation_unit_test" && i.unique)
            .expect("a unique unit test index");
        let keys: Vec<&str> = guard.keys.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["org_id", "name", "name_guard"]);
        for c in [
            "organization",
            "user",
            "role",
            "api_key",
            "service",
            "simulation_persona",
            "simulation_scenario",
            "metric",
            "simulation_unit_test_set",
            "simulation_unit_test",
        ] {
            assert!(m.collections.iter().any(|x| x == c), "{c} missing");
        }
    }

    #[test]
    fn bad_directions_are_refused() {
        let text = r#"{"indexes": [{"collection": "c", "name": "n", "keys": [["a", 2]]}]}"#;
        assert!(Migration::parse(text).unwrap_err().contains("not 1 or -1"));
    }
}
