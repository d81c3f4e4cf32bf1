//! Named MongoDB clusters (SPEC §6): the default store plus named ones. An org's
//! `mongo_cluster_name` (in the default cluster's `organization` collection) picks where its data
//! lives; for an org the default cluster does not know, the `x-mongo-cluster-name` header picks.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::domain::OrgId;
use crate::domain::problems::{Loc, Problems};
use crate::error::Error;
use crate::store::Store;

pub const CLUSTER_HEADER: &str = "x-mongo-cluster-name";

pub struct Clusters {
    default: Arc<dyn Store>,
    named: BTreeMap<String, Arc<dyn Store>>,
}

impl Clusters {
    pub fn new(default: Arc<dyn Store>, named: BTreeMap<String, Arc<dyn Store>>) -> Self {
        Self { default, named }
    }

    pub fn default_store(&self) -> &Arc<dyn Store> {
        &self.default
    }

    /// Every store, the default first, with its name (`None` for the default).
    pub fn all(&self) -> impl Iterator<Item = (Option<&str>, &Arc<dyn Store>)> {
        std::iter::once((None, &self.default))
            .chain(self.named.iter().map(|(n, s)| (Some(n.as_str()), s)))
    }

    /// The store holding `org_id`'s data for a request with `headers`. A cluster name the header
    /// gives must be configured (422 otherwise), whether or not it ends up deciding.
    pub async fn resolve(
        &self,
        org_id: &OrgId,
        headers: &HeaderMap,
    ) -> Result<Arc<dyn Store>, Error> {
        let requested = match headers.get(CLUSTER_HEADER) {
            None => None,
            Some(value) => {
                let name = value.to_str().unwrap_or("").trim();
                match self.named.get(name) {
                    Some(store) => Some(store),
                    None => return Err(unknown_cluster(name)),
                }
            }
        };
        if self.named.is_empty() {
            return Ok(self.default.clone());
        }
        match self.default.organization(org_id).await? {
            Some(org) => match org.mongo_cluster_name.as_deref().filter(|n| !n.is_empty()) {
                None => Ok(self.default.clone()),
                Some(name) => self.named.get(name).cloned().ok_or_else(|| {
                    Error::Internal(format!(
                        "organization {org_id:?} lives in cluster {name:?}, which is not configured"
                    ))
                }),
            },
            None => Ok(requested.unwrap_or(&self.default).clone()),
        }
    }
}

fn unknown_cluster(name: &str) -> Error {
    let mut p = Problems::default();
    p.push(
        &Loc::root("header").key(CLUSTER_HEADER),
        "unknown_cluster",
        format!("No MongoDB cluster named {name:?} is configured"),
    );
    Error::Invalid(p.into_vec())
}
