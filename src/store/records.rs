//! Records of the read-only collections other systems own (SPEC §4). simtest only reads them; the
//! seed file fills them. Unknown fields in a record are ignored, missing `is_deleted` means live.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::unit_test_set::UnitTestSet;
use crate::domain::{MetricValueType, ObjectIdHex, OrgId, Timestamp, UserId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub org_id: OrgId,
    #[serde(default)]
    pub mongo_cluster_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub org_id: OrgId,
    pub user_id: UserId,
    pub role: String,
    /// Set on a grant (SPEC §4): this record lets `home_org_id`'s user `user_id` act in `org_id`
    /// with `role`. A grant is not a user of `org_id`: `org_id` cannot sign it in, and a token of
    /// `org_id` naming it is refused. Absent (or `org_id` itself) on the org's own users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_org_id: Option<OrgId>,
    #[serde(default)]
    pub is_deleted: bool,
}

impl User {
    /// A live user of `org_id` itself (not a grant to another org's user).
    pub fn is_member(&self) -> bool {
        !self.is_deleted
            && self
                .home_org_id
                .as_ref()
                .is_none_or(|home| *home == self.org_id)
    }

    /// A live grant of this org to `home_org`'s user of the same id.
    pub fn grants(&self, home_org: &OrgId) -> bool {
        !self.is_deleted && *home_org != self.org_id && self.home_org_id.as_ref() == Some(home_org)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub org_id: OrgId,
    pub name: String,
    pub permissions: Vec<String>,
}

/// An org API key. Only the Argon2 hash of its secret is ever stored.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub org_id: OrgId,
    pub key_id: String,
    pub secret_hash: String,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub is_deleted: bool,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("org_id", &self.org_id)
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .field("is_deleted", &self.is_deleted)
            .finish_non_exhaustive()
    }
}

fn yes() -> bool {
    true
}

/// A service; its version sets are looked up by name. An inactive service cannot be targeted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    #[serde(rename = "_id")]
    pub id: ObjectIdHex,
    pub org_id: OrgId,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub version_sets: BTreeMap<String, serde_json::Value>,
    #[serde(default = "yes")]
    pub is_active: bool,
    #[serde(default)]
    pub is_deleted: bool,
}

impl Service {
    pub fn is_live(&self) -> bool {
        self.is_active && !self.is_deleted
    }
}

/// A persona or a scenario: only existence matters here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedRecord {
    #[serde(rename = "_id")]
    pub id: ObjectIdHex,
    pub org_id: OrgId,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_deleted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    #[serde(rename = "_id")]
    pub id: ObjectIdHex,
    pub org_id: OrgId,
    #[serde(default)]
    pub name: String,
    pub metric_value_type: MetricValueType,
    #[serde(default)]
    pub is_deleted: bool,
}

/// Everything a seed writes, secrets already hashed. Each list is upserted by its natural key.
#[derive(Debug, Clone, Default)]
pub struct Records {
    pub organizations: Vec<Organization>,
    pub roles: Vec<Role>,
    pub users: Vec<User>,
    pub api_keys: Vec<ApiKey>,
    pub services: Vec<Service>,
    pub personas: Vec<NamedRecord>,
    pub scenarios: Vec<NamedRecord>,
    pub metrics: Vec<Metric>,
    pub unit_test_sets: Vec<UnitTestSet>,
}
