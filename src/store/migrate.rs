//! MongoDB migrations: declarative JSON files in `migrations/` (collections to create, indexes to
//! build), embedded in the binary and applied in name order by `simtest migrate` and at start-up.
//! Every step is idempotent — creating an existing collection or an identical index is a no-op —
//! so two processes applying one migration at once do no harm.

use serde::Deserialize;

/// The migrations, in the order they apply. A new file gets a new line here; applied ones never change.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_initial",
        include_str!("../../migrations/0001_initial.json"),
    ),
    (
        "0002_user_grants",
        include_str!("../../migrations/0002_user_grants.json"),
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
