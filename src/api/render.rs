//! Unit tests as the list and search answers write them, kept by version. Writing a page is
//! mostly escaping its strings (a third of a list request's CPU, by `perf`); a unit test's JSON
//! changes only with its `updated_at`, which every write moves forward, so a page of recently
//! read unit tests is copied instead.

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::domain::{IdKey, ObjectIdHex, Timestamp, UnitTest, UnitTestJson};
use crate::error::{Error, Result};

/// How many bytes of renderings are kept (a few thousand of ~1 KiB). Budgeted in bytes, not
/// entries: a unit test may be up to the request body limit, so a count would bound nothing.
const BYTES: u64 = 4 * 1024 * 1024;

/// Which rendering: the org is checked on a hit rather than hashed into the key, so a lookup
/// allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Version {
    id: ObjectIdHex,
    updated_at: Timestamp,
    underscore_id: bool,
}

/// A rendering and the org of its unit test.
type Rendering = (Arc<str>, Arc<RawValue>);

pub struct Renderings(quick_cache::sync::Cache<Version, Rendering, ByBytes>);

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<Version, Rendering> for ByBytes {
    fn weight(&self, _: &Version, (org_id, json): &Rendering) -> u64 {
        (size_of::<Version>() + org_id.len() + json.get().len()) as u64
    }
}

impl Default for Renderings {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::with_weighter(
            (BYTES / 1024) as usize,
            BYTES,
            ByBytes,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::testgen::{id, sample};

    /// Renderings far larger than usual stay within the byte budget (a count of entries would
    /// have kept all of them), and each is still the unit test's JSON.
    #[test]
    fn renderings_keep_to_their_byte_budget() {
        let renderings = Renderings::default();
        let description = "x".repeat(200 * 1024);
        for n in 1..=60 {
            let doc = UnitTest {
                id: id(n),
                description: description.clone(),
                ..sample()
            };
            let json = renderings.render(&doc, IdKey::Id).unwrap();
            assert!(json.get().contains(&description));
        }
        let kept: u64 = (renderings.0.iter())
            .map(|(_, (_, json))| json.get().len() as u64)
            .sum();
        assert!(kept <= BYTES, "{kept} bytes kept");
        assert!(!renderings.0.is_empty(), "something is kept");
    }
}
