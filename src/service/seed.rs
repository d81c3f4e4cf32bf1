//! The seed file (`simtest seed FILE`, `serve --demo`): fixtures for the read-only collections,
//! upserted by natural key so running a seed twice changes nothing. API key secrets arrive in plain
//! text and are hashed before they reach the store.

use serde::Deserialize;

use crate::auth::api_key::{HashError, hash_secret};
use crate::domain::unit_test_set::{UnitTestRun, UnitTestSet};
use crate::domain::{ObjectIdHex, OrgId, Tag, Timestamp, UserInfo};
use crate::store::{
    ApiKey, Metric, NamedRecord, Organization, Records, Role, Service, Store, StoreError, User,
};

/// The demo fixtures `serve --demo` loads (the same file as `examples/seed.json`).
pub const DEMO_SEED: &str = include_str!("../../examples/seed.json");

#[derive(Deserialize)]
struct SeedApiKey {
    org_id: OrgId,
    key_id: String,
    secret: String,
    #[serde(default)]
    expires_at: Option<Timestamp>,
    #[serde(default)]
    is_deleted: bool,
}

/// A unit test set in a seed file: the stored shape, with everything but id, org, name and runs
/// optional (who made it defaults to the org's `seed` user, its times to the seeding's).
#[derive(Deserialize)]
struct SeedUnitTestSet {
    #[serde(rename = "_id")]
    id: ObjectIdHex,
    org_id: OrgId,
    name: String,
    #[serde(default)]
    description: Option<String>,
    unit_test_runs: Vec<SeedUnitTestRun>,
    #[serde(default)]
    tags: Vec<Tag>,
    #[serde(default)]
    is_deleted: bool,
    #[serde(default)]
    creator: Option<UserInfo>,
    #[serde(default)]
    created_at: Option<Timestamp>,
}

#[derive(Deserialize)]
struct SeedUnitTestRun {
    unit_test_id: ObjectIdHex,
    #[serde(default = "one")]
    run_count: u64,
}

fn one() -> u64 {
    1
}

impl SeedUnitTestSet {
    fn into_set(self, now: Timestamp) -> UnitTestSet {
        let creator = self.creator.unwrap_or_else(|| UserInfo {
            org_id: self.org_id.clone(),
            user_id: "seed".into(),
        });
        let at = self.created_at.unwrap_or(now);
        UnitTestSet {
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            description: self.description,
            unit_test_runs: (self.unit_test_runs.into_iter())
                .map(|r| UnitTestRun {
                    unit_test_id: r.unit_test_id,
                    run_count: r.run_count,
                })
                .collect(),
            last_triggered_run_id: None,
            tags: self.tags,
            is_deleted: self.is_deleted,
            updated_by: creator.clone(),
            creator,
            created_at: at,
            updated_at: at,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct SeedFile {
    organizations: Vec<Organization>,
    roles: Vec<Role>,
    users: Vec<User>,
    api_keys: Vec<SeedApiKey>,
    services: Vec<Service>,
    personas: Vec<NamedRecord>,
    scenarios: Vec<NamedRecord>,
    metrics: Vec<Metric>,
    unit_test_sets: Vec<SeedUnitTestSet>,
}

/// Why a seed file cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("invalid seed file: {0}")]
    Invalid(#[from] serde_json::Error),
    #[error("API key {key_id:?} of org {org_id:?} has an empty secret")]
    EmptySecret { key_id: String, org_id: OrgId },
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot write the seed records: {0}")]
    Store(#[from] StoreError),
    #[error("the seed task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Reads a seed document; the error names what is wrong and where.
pub fn parse(json: &str) -> Result<Records, SeedError> {
    let file: SeedFile = serde_json::from_str(json)?;
    let now = Timestamp::now();
    let api_keys = file
        .api_keys
        .into_iter()
        .map(|k| {
            if k.secret.is_empty() {
                return Err(SeedError::EmptySecret {
                    key_id: k.key_id,
                    org_id: k.org_id,
                });
            }
            Ok(ApiKey {
                secret_hash: hash_secret(&k.secret)?,
                org_id: k.org_id,
                key_id: k.key_id,
                expires_at: k.expires_at,
                is_deleted: k.is_deleted,
            })
        })
        .collect::<Result<_, SeedError>>()?;
    Ok(Records {
        organizations: file.organizations,
        roles: file.roles,
        users: file.users,
        api_keys,
        services: file.services,
        personas: file.personas,
        scenarios: file.scenarios,
        metrics: file.metrics,
        unit_test_sets: (file.unit_test_sets.into_iter())
            .map(|s| s.into_set(now))
            .collect(),
    })
}

/// `json` without its `api_keys` (for `simtest seed --without-api-keys`).
pub fn without_api_keys(json: &str) -> Result<String, SeedError> {
    let mut file: serde_json::Value = serde_json::from_str(json)?;
    if let Some(object) = file.as_object_mut() {
        object.remove("api_keys");
    }
    Ok(file.to_string())
}

/// Parses `json` and upserts it into `store`; returns how many records were written.
pub async fn seed(store: &dyn Store, json: &str) -> Result<usize, SeedError> {
    let records = tokio::task::spawn_blocking({
        let json = json.to_owned();
        move || parse(&json)
    })
    .await??;
    let count = records.organizations.len()
        + records.roles.len()
        + records.users.len()
        + records.api_keys.len()
        + records.services.len()
        + records.personas.len()
        + records.scenarios.len()
        + records.metrics.len()
        + records.unit_test_sets.len();
    store.upsert_records(&records).await?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_seed_parses_and_hashes_secrets() {
        let records = parse(DEMO_SEED).unwrap();
        assert_eq!(records.organizations.len(), 2);
        assert_eq!(records.metrics.len(), 3);
        assert!(
            records
                .api_keys
                .iter()
                .all(|k| !k.secret_hash.contains("secret-change-me"))
        );
    }

    #[test]
    fn typos_in_collection_names_are_reported() {
        let err = parse(r#"{"persona": []}"#).unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `persona`"),
            "{err:#}"
        );
    }
}
