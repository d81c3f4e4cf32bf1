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

/// A unit test's JSON and the org of the unit test, in one allocation: a hit then clones one
/// `Arc`. Pages are read by many requests at once, and each clone is an atomic write to a count
/// the other core holds; with two (the org apart), this cache's lookups were 5 % of the server's
/// CPU on `search 2 terms` at 32 clients, nearly all in those two writes.
pub struct Rendering {
    org_id: Box<str>,
    json: Box<RawValue>,
}

impl Rendering {
    pub fn json(&self) -> &RawValue {
        &self.json
    }
}

impl serde::Serialize for Rendering {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

pub struct Renderings(quick_cache::sync::Cache<Version, Arc<Rendering>, ByBytes>);

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<Version, Arc<Rendering>> for ByBytes {
    fn weight(&self, _: &Version, rendering: &Arc<Rendering>) -> u64 {
        (size_of::<Version>() + rendering.org_id.len() + rendering.json.get().len()) as u64
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
    pub fn render(&self, doc: &UnitTest, id_key: IdKey) -> Result<Arc<Rendering>> {
        let version = Version {
            id: doc.id,
            updated_at: doc.updated_at,
            underscore_id: matches!(id_key, IdKey::UnderscoreId),
        };
        if let Some(rendering) = self.0.get(&version)
            && *rendering.org_id == *doc.org_id
        {
            return Ok(rendering);
        }
        let failed =
            |e: serde_json::Error| Error::Internal(format!("cannot write a unit test: {e}"));
        let json = serde_json::to_string(&UnitTestJson { doc, id_key }).map_err(failed)?;
        let rendering = Arc::new(Rendering {
            org_id: doc.org_id.as_str().into(),
            json: RawValue::from_string(json).map_err(failed)?,
        });
        self.0.insert(version, rendering.clone());
        Ok(rendering)
    }

    /// Every unit test of a page, rendered.
    pub fn render_all(&self, docs: &[Arc<UnitTest>], id_key: IdKey) -> Result<Vec<Arc<Rendering>>> {
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
            assert!(json.json().get().contains(&description));
        }
        let kept: u64 = (renderings.0.iter())
            .map(|(_, rendering)| rendering.json.get().len() as u64)
            .sum();
        assert!(kept <= BYTES, "{kept} bytes kept");
        assert!(!renderings.0.is_empty(), "something is kept");
    }
}
