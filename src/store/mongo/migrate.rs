//! MongoDB migrations: declarative JSON files in `migrations/` (collections to create, indexes to
//! build), embedded in the binary and applied in name order by `simtest migrate` and at start-up.
//! Every step is idempotent — creating an existing collection or an identical index is a no-op —
//! so two processes applying one migration at once do no harm. The runner records each applied
//! migration in `simtest_migrations`.

use std::collections::HashSet;

use mongodb::IndexModel;
use mongodb::bson::{self, Document, doc};
use mongodb::options::IndexOptions;
use serde::Deserialize;

use super::Db;
use super::collections as c;
use super::errors::{NAMESPACE_EXISTS, command_code, store_error};
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
];

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

/// The runner.
impl Db {
    /// Applies the migrations not yet recorded, in order; returns the names of those it applied.
    pub(super) async fn migrate(&self) -> StoreResult<Vec<String>> {
        // Every step is idempotent, so a race with another process migrating the same database
        // (which surfaces as a duplicate key on a collection, an index or the record) is settled by
        // going through the list again.
        let mut attempts = 0;
        loop {
            match self.migrate_once().await {
                Err(StoreError::Duplicate) if attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempts)).await;
                }
                Err(StoreError::Duplicate) => {
                    return Err(StoreError::Internal(
                        "migrations kept racing with another process".into(),
                    ));
                }
                other => return other,
            }
        }
    }

    async fn migrate_once(&self) -> StoreResult<Vec<String>> {
        let recorded: HashSet<String> = self
            .db
            .collection::<Document>(c::MIGRATIONS)
            .distinct("_id", doc! {})
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        let mut applied = Vec::new();
        for (name, text) in MIGRATIONS {
            if recorded.contains(*name) {
                continue;
            }
            let migration = Migration::parse(text)
                .map_err(|e| StoreError::Internal(format!("migration {name}: {e}")))?;
            self.apply(&migration).await?;
            // Another process migrating at the same time may have run the same idempotent steps;
            // the one whose upsert inserts the record is the one that applied it.
            let recorded = self
                .db
                .collection::<Document>(c::MIGRATIONS)
                .update_one(
                    doc! {"_id": *name},
                    doc! {"$setOnInsert": {"applied_at": bson::DateTime::now()}},
                )
                .upsert(true)
                .await
                .map_err(store_error)?;
            if recorded.upserted_id.is_some() {
                tracing::info!(
                    migration = name,
                    database = self.db.name(),
                    "migration applied"
                );
                applied.push((*name).to_owned());
            }
        }
        Ok(applied)
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
            let model = IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(index.name.clone())
                        .unique(index.unique.then_some(true))
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
