//! Hard delete of a unit test on MongoDB: only of one already soft-deleted that no set lists
//! (deleted sets included: they keep their runs). A set write never comes to list a deleted unit
//! test (its fence requires `is_deleted: false`, see `sets.rs`), so the check cannot be overtaken.

use mongodb::bson::{Bson, doc};

use super::Db;
use super::codec::{field, oid, set_field};
use super::collections as c;
use super::errors::store_error;
use super::history::VERSIONS;
use crate::domain::{ObjectIdHex, OrgId};
use crate::store::{StoreResult, Written};

impl Db {
    pub(super) async fn purge_unit_test(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Written> {
        let this = doc! {field::ID: oid(id), field::ORG_ID: org_id, field::IS_DELETED: true};
        let found = self
            .collection(c::UNIT_TEST)
            .find_one(this.clone())
            .projection(doc! {field::ID: 1})
            .await
            .map_err(store_error)?;
        if found.is_none() {
            return Ok(Written::Stale);
        }
        // Run ids are hex strings, or ObjectIds where another system wrote the set.
        let ids = vec![Bson::String(id.to_hex()), Bson::ObjectId(oid(id))];
        let listed = self
            .collection(c::UNIT_TEST_SET)
            .find_one(doc! {
                field::ORG_ID: org_id,
                "$or": [
                    {set_field::RUN_UNIT_TEST_ID: {"$in": ids.clone()}},
                    {set_field::CLAIMED_UNIT_TEST_IDS: {"$in": ids}},
                ],
            })
            .projection(doc! {field::ID: 1})
            .await
            .map_err(store_error)?;
        if listed.is_some() {
            return Ok(Written::InUse);
        }
        let deleted = self
            .collection(c::UNIT_TEST)
            .delete_one(this)
            .await
            .map_err(store_error)?;
        if deleted.deleted_count != 1 {
            return Ok(Written::Stale);
        }
        self.collection(VERSIONS)
            .delete_many(doc! {field::ORG_ID: org_id, "unit_test_id": id.to_hex()})
            .await
            .map_err(store_error)?;
        Ok(Written::Done)
    }
}
