//! Facets (`filter_values`): the distinct creators, tag keys and referenced ids of every unit test
//! a list selects, gathered by MongoDB in one aggregation, as the embedded store's
//! `FilterValuesBuilder` gathers them.

use std::collections::BTreeSet;

use mongodb::bson::{Bson, Document, doc};

use super::Db;
use super::codec::{field, id_of, set_field, user_info_of};
use super::collections as c;
use super::errors::{corrupt, store_error};
use crate::domain::query::FilterValues;
use crate::domain::unit_test_set::SetFilterValues;
use crate::domain::{ObjectIdHex, UserInfo};
use crate::store::{StoreError, StoreResult};

impl Db {
    /// The facets of every unit test `filter` selects, in one round trip (see [`facets_pipeline`]).
    pub(super) async fn filter_values(&self, filter: &Document) -> StoreResult<FilterValues> {
        let mut cursor = self
            .collection(c::UNIT_TEST)
            .aggregate(facets_pipeline(filter))
            .await
            .map_err(store_error)?;
        let facets = if cursor.advance().await.map_err(store_error)? {
            cursor.deserialize_current().map_err(store_error)?
        } else {
            // Nothing matched.
            return Ok(FilterValues::default());
        };
        // The values of one facet; a null is no value, as in `distinct`.
        let values = |facet: &str| -> StoreResult<Vec<Bson>> {
            Ok(facets
                .get_array(facet)
                .map_err(|_| StoreError::Internal(format!("the facets lack {facet}")))?
                .iter()
                .filter(|v| !matches!(v, Bson::Null))
                .cloned()
                .collect())
        };
        let ids = |facet: &str| -> StoreResult<Vec<ObjectIdHex>> {
            let ids = values(facet)?
                .iter()
                .map(|b| id_of(b).ok_or_else(|| corrupt(format!("{facet} value {b}"))))
                .collect::<StoreResult<BTreeSet<ObjectIdHex>>>()?;
            Ok(ids.into_iter().collect())
        };
        let creators = values("creators")?
            .iter()
            .map(|b| {
                b.as_document()
                    .and_then(user_info_of)
                    .ok_or_else(|| corrupt(format!("creator {b}")))
            })
            .collect::<StoreResult<BTreeSet<UserInfo>>>()?;
        let tags = values("tags")?
            .into_iter()
            .map(|b| match b {
                Bson::String(s) => Ok(s),
                other => Err(corrupt(format!("tag key {other}"))),
            })
            .collect::<StoreResult<BTreeSet<String>>>()?;
        Ok(FilterValues {
            creators: creators.into_iter().collect(),
            tags: tags.into_iter().collect(),
            service_ids: ids("service_ids")?,
            persona_ids: ids("persona_ids")?,
            scenario_ids: ids("scenario_ids")?,
            metric_ids: ids("metric_ids")?,
        })
    }
}

impl Db {
    /// The facets of every set `filter` selects, in one round trip (see [`set_facets_pipeline`]).
    pub(super) async fn set_filter_values(
        &self,
        filter: &Document,
    ) -> StoreResult<SetFilterValues> {
        let mut cursor = self
            .collection(c::UNIT_TEST_SET)
            .aggregate(set_facets_pipeline(filter))
            .await
            .map_err(store_error)?;
        if !cursor.advance().await.map_err(store_error)? {
            return Ok(SetFilterValues::default());
        }
        let facets: Document = cursor.deserialize_current().map_err(store_error)?;
        let values = |facet: &str| -> StoreResult<Vec<Bson>> {
            Ok(facets
                .get_array(facet)
                .map_err(|_| StoreError::Internal(format!("the set facets lack {facet}")))?
                .iter()
                .filter(|v| !matches!(v, Bson::Null))
                .cloned()
                .collect())
        };
        let creators = values("creators")?
            .iter()
            .map(|b| {
                b.as_document()
                    .and_then(user_info_of)
                    .ok_or_else(|| corrupt(format!("set creator {b}")))
            })
            .collect::<StoreResult<BTreeSet<UserInfo>>>()?;
        let unit_test_ids = values("unit_test_ids")?
            .iter()
            .map(|b| id_of(b).ok_or_else(|| corrupt(format!("set unit_test_id {b}"))))
            .collect::<StoreResult<BTreeSet<ObjectIdHex>>>()?;
        let tags = values("tags")?
            .into_iter()
            .map(|b| match b {
                Bson::String(s) => Ok(s),
                other => Err(corrupt(format!("set tag key {other}"))),
            })
            .collect::<StoreResult<BTreeSet<String>>>()?;
        Ok(SetFilterValues {
            creators: creators.into_iter().collect(),
            unit_test_ids: unit_test_ids.into_iter().collect(),
            tags: tags.into_iter().collect(),
        })
    }
}

/// The facets of the sets `filter` selects, as one document (none when nothing matches), in one
/// pass as [`facets_pipeline`]. Sets seeded before sets had endpoints may lack creator and tags:
/// their creator reads as user `seed` of the set's org (as the codec reads it), no tags.
pub(super) fn set_facets_pipeline(filter: &Document) -> Vec<Document> {
    let path = |name: &str| format!("${name}");
    let merged = |facet: &str| {
        doc! {"$reduce": {"input": path(facet), "initialValue": [], "in": {"$setUnion": ["$$value", "$$this"]}}}
    };
    vec![
        doc! {"$match": filter.clone()},
        doc! {"$group": {
            "_id": Bson::Null,
            "creators": {"$addToSet": {
                field::ORG_ID: {"$ifNull": [path(field::CREATOR_ORG_ID), path(field::ORG_ID)]},
                field::USER_ID: {"$ifNull": [path(field::CREATOR_USER_ID), "seed"]},
            }},
            "tags": {"$addToSet": {"$ifNull": [path(field::TAG_KEY), []]}},
            "unit_test_ids": {"$addToSet": {"$ifNull": [path(set_field::RUN_UNIT_TEST_ID), []]}},
        }},
        doc! {"$project": {
            "_id": 0,
            "creators": 1,
            "tags": merged("tags"),
            "unit_test_ids": merged("unit_test_ids"),
        }},
    ]
}

/// The facets of the unit tests `filter` selects, as one document (none when nothing matches): one
/// `$group` collecting each field's distinct values in a single pass, the array fields' values then
/// merged into one set each. (A `$facet` with one `$group` per field answers the same in one round
/// trip too, but FerretDB 2 on DocumentDB runs it as six passes over the matches, ~3× slower.)
pub(super) fn facets_pipeline(filter: &Document) -> Vec<Document> {
    // A field's value in an expression: `$` and its path.
    let path = |name: &str| format!("${name}");
    let merged = |facet: &str| {
        doc! {"$reduce": {"input": path(facet), "initialValue": [], "in": {"$setUnion": ["$$value", "$$this"]}}}
    };
    vec![
        doc! {"$match": filter.clone()},
        doc! {"$group": {
            "_id": Bson::Null,
            "creators": {"$addToSet": {
                field::ORG_ID: path(field::CREATOR_ORG_ID),
                field::USER_ID: path(field::CREATOR_USER_ID),
            }},
            "tags": {"$addToSet": path(field::TAG_KEY)},
            "service_ids": {"$addToSet": path(field::SERVICE_ID)},
            "persona_ids": {"$addToSet": path(field::PERSONA_ID)},
            "scenario_ids": {"$addToSet": path(field::SCENARIO_ID)},
            "metric_ids": {"$addToSet": path(field::CRITERION_METRIC_ID)},
        }},
        doc! {"$project": {
            "_id": 0,
            "creators": 1,
            "service_ids": 1,
            "persona_ids": 1,
            "scenario_ids": 1,
            "tags": merged("tags"),
            "metric_ids": merged("metric_ids"),
        }},
    ]
}
