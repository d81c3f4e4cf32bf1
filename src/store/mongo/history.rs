//! Every version of every unit test on MongoDB: collection `simulation_unit_test_version`, one
//! document per write (`_id` "<unit test id>.<updated_at millis>", the unit test as it was then).
//! Without multi-document transactions the version is written right after the write it records:
//! a crash between the two loses that version (the next one's "before" values then span both
//! writes); a write that did not land records nothing.

use mongodb::bson::{Bson, doc};
use mongodb::options::FindOptions;

use super::Db;
use super::codec::{datetime, unit_test_from_doc, unit_test_to_doc};
use super::errors::{is_duplicate_key, store_error};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest};
use crate::store::StoreResult;

pub(super) const VERSIONS: &str = "simulation_unit_test_version";

fn version_id(id: ObjectIdHex, at: Timestamp) -> String {
    format!("{}.{}", id.to_hex(), at.millis())
}

impl Db {
    /// Records `doc` as the version a write that landed made. A failure is logged, not returned:
    /// the write itself is done and is answered as such.
    pub(super) async fn record_version(&self, doc: &UnitTest) {
        let recorded = async {
            let mut version = unit_test_to_doc(doc)?;
            version.insert("_id", version_id(doc.id, doc.updated_at));
            version.insert("unit_test_id", Bson::String(doc.id.to_hex()));
            version.insert("version", datetime(doc.updated_at));
            match self.collection(VERSIONS).insert_one(version).await {
                Ok(_) => Ok(()),
                // Recorded already (a retried write of the same version).
                Err(e) if is_duplicate_key(&e) => Ok(()),
                Err(e) => Err(store_error(e)),
            }
        };
        if let Err(error) = recorded.await {
            tracing::warn!(%error, unit_test_id = %doc.id, "cannot record a unit test version");
        }
    }

    pub(super) async fn unit_test_versions(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
        up_to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UnitTest>> {
        let mut cursor = self
            .collection(VERSIONS)
            .find(doc! {
                "org_id": org_id,
                "unit_test_id": id.to_hex(),
                "version": {"$lte": datetime(up_to)},
            })
            .with_options(
                FindOptions::builder()
                    .sort(doc! {"version": -1})
                    .limit(i64::from(limit))
                    .build(),
            )
            .await
            .map_err(store_error)?;
        let mut found = Vec::new();
        while cursor.advance().await.map_err(store_error)? {
            let mut version = cursor.deserialize_current().map_err(store_error)?;
            version.insert(
                "_id",
                Bson::ObjectId(mongodb::bson::oid::ObjectId::from_bytes(id.bytes())),
            );
            found.push(unit_test_from_doc(&version)?);
        }
        Ok(found)
    }
}
