//! The BSON codec: unit tests and reference records to and from MongoDB documents, and the one
//! table of the unit test document's field names ([`field`]) that the codec, the filters, the sorts
//! and the facets all name fields by.

use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::errors::corrupt;
use crate::domain::search::{search_text, trigrams};
use crate::domain::unit_test_set::{UnitTestRun, UnitTestSet};
use crate::domain::{
    Criterion, ObjectIdHex, OrgId, SuccessCriterion, Tag, Timestamp, UnitTest, UserInfo,
};
use crate::store::{StoreError, StoreResult};

/// An org id is a string in every document and filter (bson turns `&OrgId` through this too).
impl From<OrgId> for Bson {
    fn from(org: OrgId) -> Bson {
        Bson::String(org.into_string())
    }
}

/// The fields of a unit test document (and of its sub-documents), and the dotted paths filters
/// and facets reach into them by. The indexes in `migrations/` name the same fields.
pub(super) mod field {
    pub const ID: &str = "_id";
    pub const ORG_ID: &str = "org_id";
    pub const NAME: &str = "name";
    /// `""` while active, the unit test's own id once deleted (see [`super::name_guard`]).
    pub const NAME_GUARD: &str = "name_guard";
    pub const DESCRIPTION: &str = "description";
    pub const SERVICE_ID: &str = "service_id";
    pub const SERVICE_VERSION_SET_NAME: &str = "service_version_set_name";
    pub const PERSONA_ID: &str = "persona_id";
    pub const SCENARIO_ID: &str = "scenario_id";
    pub const MAX_INTERACTIONS: &str = "max_interactions";
    pub const SUCCESS_CRITERIONS: &str = "success_criterions";
    pub const RUN_COUNT: &str = "run_count";
    pub const TAGS: &str = "tags";
    /// Each tag once more as one string (see [`super::tag_pair`]).
    pub const TAG_PAIRS: &str = "tag_pairs";
    pub const IS_DELETED: &str = "is_deleted";
    pub const CREATOR: &str = "creator";
    pub const UPDATED_BY: &str = "updated_by";
    pub const CREATED_AT: &str = "created_at";
    pub const UPDATED_AT: &str = "updated_at";
    /// The search text (`crate::domain::search::search_text`): what search's regexes look in,
    /// case-sensitively, so MongoDB folds case exactly as the definition does (a case-insensitive
    /// regex on the name does not find `İ` by `i̇`, its lower case).
    pub const SEARCH_TEXT: &str = "search_text";
    /// The distinct 3-byte grams of the search text (see [`super::search_grams`]).
    pub const SEARCH_GRAMS: &str = "search_grams";
    /// How many set writes have claimed the unit test (see `sets.rs`): a delete applies only if
    /// it is still what the delete read before checking that no set lists the unit test.
    /// Missing means 0.
    pub const SET_FENCE: &str = "set_fence";

    // Inside the sub-documents: a success criterion (`name` too), a tag, a user (`org_id` too).
    pub const METRIC_ID: &str = "metric_id";
    pub const CRITERION: &str = "criterion";
    pub const KEY: &str = "key";
    pub const VALUE: &str = "value";
    pub const USER_ID: &str = "user_id";

    // Paths into the sub-documents (`concat!` takes no constants; a test checks them).
    pub const CRITERION_METRIC_ID: &str = "success_criterions.metric_id";
    pub const TAG_KEY: &str = "tags.key";
    pub const CREATOR_ORG_ID: &str = "creator.org_id";
    pub const CREATOR_USER_ID: &str = "creator.user_id";
}

/// The fields of a unit test set document beyond those it shares with unit tests ([`field`]:
/// `_id`, `org_id`, `name`, `name_guard`, `description`, `tags`, `tag_pairs`, `is_deleted`,
/// `creator`, `updated_by`, `created_at`, `updated_at`, `search_text`, `search_grams`; inside a
/// run, `run_count` too), and the bookkeeping of the write protocol in `sets.rs`.
pub(super) mod set_field {
    pub const UNIT_TEST_RUNS: &str = "unit_test_runs";
    /// Inside a run: the unit test's id as a 24-hex string (as seeded sets have it).
    pub const UNIT_TEST_ID: &str = "unit_test_id";
    pub const RUN_UNIT_TEST_ID: &str = "unit_test_runs.unit_test_id";
    pub const LAST_TRIGGERED_RUN_ID: &str = "last_triggered_run_id";
    /// Set while an insert is still fencing the unit tests it lists: when it started. A pending set
    /// is invisible to reads but counts as listing its unit tests (until abandoned).
    pub const PENDING_SINCE: &str = "pending_since";
    /// The unit tests an update is adding, while it fences them (hex strings), when it began, and
    /// the token that lets only that update finish or undo it.
    pub const CLAIMED_UNIT_TEST_IDS: &str = "claimed_unit_test_ids";
    pub const CLAIMED_AT: &str = "claimed_at";
    pub const CLAIM_TOKEN: &str = "claim_token";
}

pub(super) fn oid(id: ObjectIdHex) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

/// An id stored either way: as an ObjectId or as its 24-hex string.
pub(super) fn id_of(b: &Bson) -> Option<ObjectIdHex> {
    match b {
        Bson::ObjectId(o) => Some(ObjectIdHex::from_bytes(o.bytes())),
        Bson::String(s) => ObjectIdHex::parse(s),
        _ => None,
    }
}

/// The filter value matching `id` in whichever form another system stored it.
pub(super) fn id_either_way(id: ObjectIdHex) -> Bson {
    Bson::Array(vec![Bson::ObjectId(oid(id)), Bson::String(id.to_hex())])
}

pub(super) fn ids_either_way(ids: &[ObjectIdHex]) -> Bson {
    Bson::Array(
        ids.iter()
            .flat_map(|id| [Bson::ObjectId(oid(*id)), Bson::String(id.to_hex())])
            .collect(),
    )
}

pub(super) fn datetime(t: Timestamp) -> bson::DateTime {
    bson::DateTime::from_millis(t.millis())
}

/// A reference record as BSON: its serde form, with `expires_at` as a BSON date.
pub(super) fn record_to_doc<T: Serialize>(record: &T) -> StoreResult<Document> {
    let mut d = bson::to_document(record)
        .map_err(|e| StoreError::Internal(format!("cannot encode a record: {e}")))?;
    if let Some(Bson::String(s)) = d.get("expires_at")
        && let Some(t) = Timestamp::parse(s)
    {
        d.insert("expires_at", datetime(t));
    }
    Ok(d)
}

/// A reference record from BSON, whoever wrote it: ObjectIds become hex strings and dates RFC 3339
/// strings (the forms the record types read), then serde picks the fields it knows.
pub(super) fn record_from_doc<T: DeserializeOwned>(
    collection: &str,
    d: Document,
) -> StoreResult<T> {
    let json = normalize(Bson::Document(d)).into_relaxed_extjson();
    serde_json::from_value(json)
        .map_err(|e| StoreError::Internal(format!("corrupt {collection} record: {e}")))
}

fn normalize(b: Bson) -> Bson {
    match b {
        Bson::ObjectId(o) => Bson::String(o.to_hex()),
        Bson::DateTime(d) => Bson::String(Timestamp::from_millis(d.timestamp_millis()).to_string()),
        Bson::Document(d) => {
            Bson::Document(d.into_iter().map(|(k, v)| (k, normalize(v))).collect())
        }
        Bson::Array(a) => Bson::Array(a.into_iter().map(normalize).collect()),
        other => other,
    }
}

/// One tag as one string, `["key","value"]` or `["key",null]` (JSON, so no two tags share one):
/// the elements of `tag_pairs`, which tag filters match on.
pub(super) fn tag_pair(key: &str, value: Option<&str>) -> String {
    serde_json::json!([key, value]).to_string()
}

/// `""` while the unit test is active, its own id once deleted: the third key of the unique name
/// index, so only active unit tests can collide on a name.
fn name_guard(t: &UnitTest) -> String {
    if t.is_deleted {
        t.id.to_hex()
    } else {
        String::new()
    }
}

pub(super) fn user_info_doc(u: &UserInfo) -> Document {
    doc! {field::ORG_ID: &u.org_id, field::USER_ID: u.user_id.as_str()}
}

pub(super) fn user_info_of(d: &Document) -> Option<UserInfo> {
    Some(UserInfo {
        org_id: d.get_str(field::ORG_ID).ok()?.into(),
        user_id: d.get_str(field::USER_ID).ok()?.into(),
    })
}

/// Tags as stored: `{key, value}` documents, a missing value as `null`.
fn tags_bson(tags: &[Tag]) -> Vec<Bson> {
    tags.iter()
        .map(|tag| {
            Bson::Document(doc! {
                field::KEY: &tag.key,
                field::VALUE: tag.value.as_ref().map_or(Bson::Null, |v| Bson::String(v.clone())),
            })
        })
        .collect()
}

/// The `tag_pairs` of `tags` (see [`tag_pair`]).
fn tag_pairs(tags: &[Tag]) -> Vec<String> {
    tags.iter()
        .map(|tag| tag_pair(&tag.key, tag.value.as_deref()))
        .collect()
}

fn tags_of(stored: &[Bson], bad: &dyn Fn(&str) -> StoreError) -> StoreResult<Vec<Tag>> {
    stored
        .iter()
        .map(|b| {
            let tag = b.as_document().ok_or_else(|| bad(field::TAGS))?;
            let value = match tag.get(field::VALUE) {
                None | Some(Bson::Null) => None,
                Some(Bson::String(s)) => Some(s.clone()),
                Some(_) => return Err(bad("tags.value")),
            };
            Ok(Tag {
                key: tag
                    .get_str(field::KEY)
                    .map_err(|_| bad("tags.key"))?
                    .to_owned(),
                value,
            })
        })
        .collect()
}

/// A whole number stored as any BSON number type.
pub(super) fn int_of(b: Option<&Bson>) -> Option<i64> {
    match b {
        Some(Bson::Int32(n)) => Some(i64::from(*n)),
        Some(Bson::Int64(n)) => Some(*n),
        Some(Bson::Double(f)) if f.fract() == 0.0 => Some(*f as i64),
        _ => None,
    }
}

/// `""` while the set is not deleted, its own id once deleted (as [`name_guard`] for unit tests).
fn set_name_guard(s: &UnitTestSet) -> String {
    if s.is_deleted {
        s.id.to_hex()
    } else {
        String::new()
    }
}

/// The time an ObjectId was made: its first four bytes, seconds since the epoch.
pub(super) fn minted_at(id: ObjectIdHex) -> Timestamp {
    let b = id.bytes();
    Timestamp::from_millis(i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])) * 1000)
}

/// A set as stored (the protocol fields of `sets.rs` aside). Unit test ids in runs are hex
/// strings, as seeded sets have them and `unit_test_in_live_set` has always looked for them.
pub(super) fn unit_test_set_to_doc(s: &UnitTestSet) -> StoreResult<Document> {
    let runs = s
        .unit_test_runs
        .iter()
        .map(|r| {
            let run_count = i64::try_from(r.run_count).map_err(|_| {
                StoreError::Internal(format!("run_count {} is too large", r.run_count))
            })?;
            Ok(Bson::Document(doc! {
                set_field::UNIT_TEST_ID: r.unit_test_id.to_hex(),
                field::RUN_COUNT: run_count,
            }))
        })
        .collect::<StoreResult<Vec<Bson>>>()?;
    let text = s.search_text();
    Ok(doc! {
        field::ID: oid(s.id),
        field::ORG_ID: &s.org_id,
        field::NAME: &s.name,
        field::NAME_GUARD: set_name_guard(s),
        field::DESCRIPTION: s.description.as_ref().map_or(Bson::Null, |d| Bson::String(d.clone())),
        set_field::UNIT_TEST_RUNS: runs,
        set_field::LAST_TRIGGERED_RUN_ID: s
            .last_triggered_run_id
            .as_ref()
            .map_or(Bson::Null, |r| Bson::String(r.clone())),
        field::TAGS: tags_bson(&s.tags),
        field::TAG_PAIRS: tag_pairs(&s.tags),
        field::IS_DELETED: s.is_deleted,
        field::CREATOR: user_info_doc(&s.creator),
        field::UPDATED_BY: user_info_doc(&s.updated_by),
        field::CREATED_AT: datetime(s.created_at),
        field::UPDATED_AT: datetime(s.updated_at),
        field::SEARCH_TEXT: &text,
        field::SEARCH_GRAMS: distinct_trigrams([text.as_str()]),
    })
}

/// A set from its document. Sets seeded before sets had their own endpoints hold only `_id`,
/// `org_id`, `name`, `unit_test_runs` and `is_deleted`: the rest takes defaults (no description,
/// no tags, written by user `seed` of the set's org at the time of its ObjectId).
pub(super) fn unit_test_set_from_doc(d: &Document) -> StoreResult<UnitTestSet> {
    let id = d
        .get(field::ID)
        .and_then(id_of)
        .ok_or_else(|| corrupt(format!("set _id of {d}")))?;
    let bad = |field: &str| corrupt(format!("{field} of set {id}"));
    let org_id: OrgId = d
        .get_str(field::ORG_ID)
        .map_err(|_| bad(field::ORG_ID))?
        .into();
    let optional_string = |field: &str| match d.get(field) {
        None | Some(Bson::Null) => Ok(None),
        Some(Bson::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(field)),
    };
    let unit_test_runs = match d.get(set_field::UNIT_TEST_RUNS) {
        None | Some(Bson::Null) => Vec::new(),
        Some(Bson::Array(runs)) => runs
            .iter()
            .map(|b| {
                let run = b.as_document().ok_or_else(|| bad("unit_test_runs"))?;
                Ok(UnitTestRun {
                    unit_test_id: run
                        .get(set_field::UNIT_TEST_ID)
                        .and_then(id_of)
                        .ok_or_else(|| bad(set_field::RUN_UNIT_TEST_ID))?,
                    run_count: match run.get(field::RUN_COUNT) {
                        None => 1,
                        n => int_of(n)
                            .and_then(|n| u64::try_from(n).ok())
                            .ok_or_else(|| bad("unit_test_runs.run_count"))?,
                    },
                })
            })
            .collect::<StoreResult<Vec<_>>>()?,
        Some(_) => return Err(bad(set_field::UNIT_TEST_RUNS)),
    };
    let tags = match d.get(field::TAGS) {
        None | Some(Bson::Null) => Vec::new(),
        Some(Bson::Array(tags)) => tags_of(tags, &bad)?,
        Some(_) => return Err(bad(field::TAGS)),
    };
    let seed_user = || UserInfo {
        org_id: org_id.clone(),
        user_id: "seed".into(),
    };
    let who = |field: &str| match d.get(field) {
        None | Some(Bson::Null) => Ok(seed_user()),
        Some(Bson::Document(u)) => user_info_of(u).ok_or_else(|| bad(field)),
        Some(_) => Err(bad(field)),
    };
    let minted = minted_at(id);
    let time = |field: &str| match d.get(field) {
        None | Some(Bson::Null) => Ok(minted),
        Some(Bson::DateTime(t)) => Ok(Timestamp::from_millis(t.timestamp_millis())),
        Some(_) => Err(bad(field)),
    };
    Ok(UnitTestSet {
        id,
        name: d
            .get_str(field::NAME)
            .map_err(|_| bad(field::NAME))?
            .to_owned(),
        description: optional_string(field::DESCRIPTION)?,
        unit_test_runs,
        last_triggered_run_id: optional_string(set_field::LAST_TRIGGERED_RUN_ID)?,
        tags,
        is_deleted: match d.get(field::IS_DELETED) {
            None | Some(Bson::Null) => false,
            Some(Bson::Boolean(b)) => *b,
            Some(_) => return Err(bad(field::IS_DELETED)),
        },
        creator: who(field::CREATOR)?,
        updated_by: who(field::UPDATED_BY)?,
        created_at: time(field::CREATED_AT)?,
        updated_at: time(field::UPDATED_AT)?,
        org_id,
    })
}

pub(super) fn unit_test_to_doc(t: &UnitTest) -> StoreResult<Document> {
    let criteria = t
        .success_criterions
        .iter()
        .map(|sc| {
            let criterion = bson::to_bson(&sc.criterion)
                .map_err(|e| StoreError::Internal(format!("cannot encode a criterion: {e}")))?;
            Ok(Bson::Document(doc! {
                field::NAME: &sc.name,
                field::METRIC_ID: sc.metric_id.to_hex(),
                field::CRITERION: criterion,
            }))
        })
        .collect::<StoreResult<Vec<Bson>>>()?;
    let run_count = i64::try_from(t.run_count)
        .map_err(|_| StoreError::Internal(format!("run_count {} is too large", t.run_count)))?;
    Ok(doc! {
        field::ID: oid(t.id),
        field::ORG_ID: &t.org_id,
        field::NAME: &t.name,
        field::NAME_GUARD: name_guard(t),
        field::DESCRIPTION: &t.description,
        field::SERVICE_ID: t.service_id.to_hex(),
        field::SERVICE_VERSION_SET_NAME: &t.service_version_set_name,
        field::PERSONA_ID: t.persona_id.to_hex(),
        field::SCENARIO_ID: t.scenario_id.to_hex(),
        field::MAX_INTERACTIONS: i32::try_from(t.max_interactions)
            .map_or(Bson::Int64(i64::from(t.max_interactions)), Bson::Int32),
        field::SUCCESS_CRITERIONS: criteria,
        field::RUN_COUNT: run_count,
        field::TAGS: tags_bson(&t.tags),
        field::TAG_PAIRS: tag_pairs(&t.tags),
        field::IS_DELETED: t.is_deleted,
        field::CREATOR: user_info_doc(&t.creator),
        field::UPDATED_BY: user_info_doc(&t.updated_by),
        field::CREATED_AT: datetime(t.created_at),
        field::UPDATED_AT: datetime(t.updated_at),
        field::SEARCH_TEXT: search_text(&t.name, &t.description),
        field::SEARCH_GRAMS: search_grams(&t.name, &t.description),
    })
}

/// The distinct 3-byte grams of the search text of a unit test of `name` and `description`
/// ([`crate::domain::search`]), ascending, as `Int32`s (every key fits). Search asks for documents
/// holding every 3-byte gram of its terms, through a multikey index on this field, then verifies
/// with regexes. 1- and 2-byte grams are left out: they would triple the index entries, and terms
/// that short keep the regexes alone.
pub(super) fn search_grams(name: &str, description: &str) -> Vec<i32> {
    distinct_trigrams([search_text(name, description).as_str()])
}

/// The distinct 3-byte grams of `texts`, ascending, as stored (`Int32`): what a document's
/// `search_grams` holds, and what a search asks of it.
pub(super) fn distinct_trigrams<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<i32> {
    let mut keys: Vec<i32> = texts.into_iter().flat_map(trigrams).map(gram_int).collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// A gram key as stored: keys are at most `0x03ff_ffff`.
pub(super) fn gram_int(key: u32) -> i32 {
    i32::try_from(key).expect("gram keys fit an i32")
}

pub(super) fn unit_test_from_doc(d: &Document) -> StoreResult<UnitTest> {
    let id = d
        .get(field::ID)
        .and_then(id_of)
        .ok_or_else(|| corrupt(format!("_id of {d}")))?;
    let bad = |field: &str| corrupt(format!("{field} of {id}"));
    let string = |field: &str| d.get_str(field).map(str::to_owned).map_err(|_| bad(field));
    let ref_id = |field: &str| d.get(field).and_then(id_of).ok_or_else(|| bad(field));
    let int = |field: &str| int_of(d.get(field)).ok_or_else(|| bad(field));
    let time = |field: &str| {
        d.get_datetime(field)
            .map(|t| Timestamp::from_millis(t.timestamp_millis()))
            .map_err(|_| bad(field))
    };
    let who = |field: &str| {
        d.get_document(field)
            .ok()
            .and_then(user_info_of)
            .ok_or_else(|| bad(field))
    };
    let success_criterions = d
        .get_array(field::SUCCESS_CRITERIONS)
        .map_err(|_| bad(field::SUCCESS_CRITERIONS))?
        .iter()
        .map(|b| {
            let sc = b
                .as_document()
                .ok_or_else(|| bad(field::SUCCESS_CRITERIONS))?;
            let criterion: Criterion = sc
                .get(field::CRITERION)
                .cloned()
                .and_then(|c| bson::from_bson(c).ok())
                .ok_or_else(|| bad("success_criterions.criterion"))?;
            Ok(SuccessCriterion {
                name: sc
                    .get_str(field::NAME)
                    .map_err(|_| bad("success_criterions.name"))?
                    .to_owned(),
                metric_id: sc
                    .get(field::METRIC_ID)
                    .and_then(id_of)
                    .ok_or_else(|| bad("success_criterions.metric_id"))?,
                criterion,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let tags = tags_of(
        d.get_array(field::TAGS).map_err(|_| bad(field::TAGS))?,
        &bad,
    )?;
    Ok(UnitTest {
        id,
        org_id: string(field::ORG_ID)?.into(),
        name: string(field::NAME)?,
        description: string(field::DESCRIPTION)?,
        service_id: ref_id(field::SERVICE_ID)?,
        service_version_set_name: string(field::SERVICE_VERSION_SET_NAME)?,
        persona_id: ref_id(field::PERSONA_ID)?,
        scenario_id: ref_id(field::SCENARIO_ID)?,
        max_interactions: u32::try_from(int(field::MAX_INTERACTIONS)?)
            .map_err(|_| bad(field::MAX_INTERACTIONS))?,
        success_criterions,
        run_count: u64::try_from(int(field::RUN_COUNT)?).map_err(|_| bad(field::RUN_COUNT))?,
        tags,
        is_deleted: d
            .get_bool(field::IS_DELETED)
            .map_err(|_| bad(field::IS_DELETED))?,
        creator: who(field::CREATOR)?,
        updated_by: who(field::UPDATED_BY)?,
        created_at: time(field::CREATED_AT)?,
        updated_at: time(field::UPDATED_AT)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::testgen::{id, sample};
    use crate::store::{ApiKey, Service};

    #[test]
    fn the_paths_into_sub_documents_are_built_of_the_field_names() {
        let path = |outer: &str, inner: &str| format!("{outer}.{inner}");
        assert_eq!(
            field::CRITERION_METRIC_ID,
            path(field::SUCCESS_CRITERIONS, field::METRIC_ID)
        );
        assert_eq!(field::TAG_KEY, path(field::TAGS, field::KEY));
        assert_eq!(field::CREATOR_ORG_ID, path(field::CREATOR, field::ORG_ID));
        assert_eq!(field::CREATOR_USER_ID, path(field::CREATOR, field::USER_ID));
    }

    #[test]
    fn a_unit_test_round_trips_through_its_document() {
        let t = sample();
        let d = unit_test_to_doc(&t).unwrap();
        assert_eq!(d.get_object_id("_id").unwrap(), oid(t.id));
        assert_eq!(d.get_str("service_id").unwrap(), t.service_id.to_hex());
        assert_eq!(d.get_i32("max_interactions").unwrap(), 10);
        assert_eq!(d.get_i64("run_count").unwrap(), 3);
        assert_eq!(
            d.get_datetime("updated_at").unwrap().timestamp_millis(),
            1_700_000_000_456
        );
        assert_eq!(d.get_str("name_guard").unwrap(), "");
        assert_eq!(unit_test_from_doc(&d).unwrap(), t);
    }

    #[test]
    fn a_deleted_unit_test_guards_its_name_with_its_own_id() {
        let mut t = sample();
        t.is_deleted = true;
        let d = unit_test_to_doc(&t).unwrap();
        assert_eq!(d.get_str("name_guard").unwrap(), t.id.to_hex());
        assert_eq!(unit_test_from_doc(&d).unwrap(), t);
    }

    #[test]
    fn reference_records_are_read_whichever_way_ids_and_dates_are_stored() {
        let hex = id(7).to_hex();
        for stored_id in [Bson::ObjectId(oid(id(7))), Bson::String(hex.clone())] {
            let d = doc! {"_id": stored_id, "org_id": "acme", "version_sets": {"release": {"n": 1_i64}},
            "owner": "someone else", "created": bson::DateTime::from_millis(5)};
            let s: Service = record_from_doc("service", d).unwrap();
            assert_eq!(s.id, id(7));
            assert!(s.is_active && !s.is_deleted, "missing flags take defaults");
            assert!(s.version_sets.contains_key("release"));
        }
        let d = doc! {"_id": ObjectId::new(), "org_id": "acme", "key_id": "k", "secret_hash": "h",
        "expires_at": bson::DateTime::from_millis(1_700_000_000_000)};
        let k: ApiKey = record_from_doc("api_key", d).unwrap();
        assert_eq!(
            k.expires_at,
            Some(Timestamp::from_millis(1_700_000_000_000))
        );
        assert!(!k.is_deleted);
    }

    #[test]
    fn api_key_expiry_is_written_as_a_date() {
        let k = ApiKey {
            org_id: "acme".into(),
            key_id: "k".into(),
            secret_hash: "h".into(),
            expires_at: Some(Timestamp::from_millis(42)),
            is_deleted: false,
        };
        let d = record_to_doc(&k).unwrap();
        assert_eq!(d.get_datetime("expires_at").unwrap().timestamp_millis(), 42);
        assert_eq!(d.get_str("secret_hash").unwrap(), "h");
    }

    #[test]
    fn tags_are_also_stored_as_unambiguous_pairs() {
        let mut t = sample();
        t.tags.push(Tag {
            key: r"a\".into(),
            value: Some(r#""b"#.into()),
        });
        let d = unit_test_to_doc(&t).unwrap();
        let pairs: Vec<&str> = d
            .get_array("tag_pairs")
            .unwrap()
            .iter()
            .map(|b| b.as_str().unwrap())
            .collect();
        assert_eq!(
            pairs,
            [
                r#"["flaky",null]"#,
                r#"["team","growth"]"#,
                r#"["a\\","\"b"]"#
            ]
        );
    }
}
