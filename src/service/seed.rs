//! The seed file (`simtest seed FILE`, `serve --demo`): fixtures for the read-only collections,
//! upserted by natural key so running a seed twice changes nothing. API key secrets arrive in plain
//! text and are hashed before they reach the store.

use serde::Deserialize;

use crate::auth::api_key::{HashError, hash_secret};
use crate::domain::{OrgId, Timestamp};
use crate::store::{
    ApiKey, Metric, NamedRecord, Organization, Records, Role, Service, Store, StoreError,
    UnitTestSet, User,
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
    unit_test_sets: Vec<UnitTestSet>,
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
        unit_test_sets: file.unit_test_sets,
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
