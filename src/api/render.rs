//! Unit tests as the list and search answers write them, kept by version. Writing a page is
//! mostly escaping its strings (a third of a list request's CPU, by `perf`); a unit test's JSON
//! changes only with its `updated_at`, which every write moves forward, so a page of recently
//! read unit tests is copied instead.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::domain::{IdKey, ObjectIdHex, Timestamp, UnitTest, UnitTestJson};
use crate::error::{Error, Result};

/// How many renderings are kept (about 1 KiB each).
const ENTRIES: usize = 8 * 1024;

#[derive(Clone, PartialEq, Eq, Hash)]
struct Version {
    org_id: String,
    id: ObjectIdHex,
    updated_at: Timestamp,
    underscore_id: bool,
}

pub struct Renderings(quick_cache::sync::Cache<Version, Arc<RawValue>>);

impl Default for Renderings {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(ENTRIES))
    }
}

impl Renderings {
    /// `doc` as [`UnitTestJson`] writes it.
    pub fn render(&self, doc: &UnitTest, id_key: IdKey) -> Result<Arc<RawValue>> {
        let version = Version {
            org_id: doc.org_id.clone(),
            id: doc.id,
            updated_at: doc.updated_at,
            underscore_id: matches!(id_key, IdKey::UnderscoreId),
        };
        if let Some(json) = self.0.get(&version) {
            return Ok(json);
        }
        let failed =
            |e: serde_json::Error| Error::Internal(format!("cannot write a unit test: {e}"));
        let json = serde_json::to_string(&UnitTestJson { doc, id_key }).map_err(failed)?;
        let json: Arc<RawValue> = Arc::from(RawValue::from_string(json).map_err(failed)?);
        self.0.insert(version, json.clone());
        Ok(json)
    }

    /// Every unit test of a page, rendered.
    pub fn render_all(&self, docs: &[Arc<UnitTest>], id_key: IdKey) -> Result<Vec<Arc<RawValue>>> {
        docs.iter().map(|doc| self.render(doc, id_key)).collect()
    }
}
