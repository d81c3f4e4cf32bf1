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

/// Which rendering: the org is checked on a hit rather than hashed into the key, so a lookup
/// allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Version {
    id: ObjectIdHex,
    updated_at: Timestamp,
    underscore_id: bool,
}

pub struct Renderings(quick_cache::sync::Cache<Version, (Arc<str>, Arc<RawValue>)>);

impl Default for Renderings {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(ENTRIES))
    }
}

impl Renderings {
    /// `doc` as [`UnitTestJson`] writes it.
    pub fn render(&self, doc: &UnitTest, id_key: IdKey) -> Result<Arc<RawValue>> {
        let version = Version {
            id: doc.id,
            updated_at: doc.updated_at,
            underscore_id: matches!(id_key, IdKey::UnderscoreId),
        };
        if let Some((org_id, json)) = self.0.get(&version)
            && *org_id == *doc.org_id
        {
            return Ok(json);
        }
        let failed =
            |e: serde_json::Error| Error::Internal(format!("cannot write a unit test: {e}"));
        let json = serde_json::to_string(&UnitTestJson { doc, id_key }).map_err(failed)?;
        let json: Arc<RawValue> = Arc::from(RawValue::from_string(json).map_err(failed)?);
        self.0
            .insert(version, (Arc::from(doc.org_id.as_str()), json.clone()));
        Ok(json)
    }

    /// Every unit test of a page, rendered.
    pub fn render_all(&self, docs: &[Arc<UnitTest>], id_key: IdKey) -> Result<Vec<Arc<RawValue>>> {
        docs.iter().map(|doc| self.render(doc, id_key)).collect()
    }
}
