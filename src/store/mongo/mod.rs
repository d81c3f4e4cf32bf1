//! The MongoDB store. It answers exactly as the embedded store does: the query model of
//! `domain::query` is translated to BSON here, and the results (filter, order, paging, facets) are the
//! ones `UnitTestFilter::matches`, `compare` and offset/limit give there.
//!
//! It supports MongoDB 6+ and FerretDB 2 (on PostgreSQL with DocumentDB): single-document updates
//! are atomic, one aggregation answers a first page's facets in one round trip. The unique active
//! name is a plain unique index over `(org_id, name, name_guard)`, where `name_guard` is `""` while a
//! unit test is active and its own id once it is deleted: every active unit test of a name
//! collides, deleted ones never do (it predates partial indexes here and existing databases rely on
//! it). Tag filters match `tag_pairs`, each tag stored once more as one string, behind one multikey
//! index.
//!
//! Reference collections may hold documents other systems wrote: their `_id` is read whether it is an
//! ObjectId or a 24-hex string, missing flags take their defaults, unknown fields are ignored.
//!
//! Here: connecting, the write concern and its bounds, and the store operations, each run
//! detached from the request ([`MongoStore::detached`]). Beside it: `codec` (documents and the
//! field-name table), `query` (filters and sorts), `facets`, `sets` (unit test sets, and how a
//! unit test delete and a set write listing it never both succeed), `errors` (MongoDB's answers as
//! `StoreError`s) and `migrate` (the migrations and their runner).

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{Document, doc};
use mongodb::options::{Acknowledgment, ClientOptions, WriteConcern};
use mongodb::{Client, Collection, Database};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::deadline::Deadline;
use super::round_trips;
use super::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreError, StoreResult, User, Written,
};
use crate::domain::idempotency::{Claim, KeyRecord};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserId};
use codec::{
    datetime, field, id_either_way, ids_either_way, oid, record_from_doc, record_to_doc,
    unit_test_from_doc, unit_test_to_doc,
};
use errors::{command_write_outcome, is_deadlock, is_duplicate_key, reply_count, store_error};
use query::{filter_document, sort_document};

mod codec;
mod errors;
mod facets;
mod history;
mod keys;
pub mod migrate;
mod purge;
mod query;
mod sets;

/// Collection names (SPEC §4).
pub mod collections {
    pub const ORGANIZATION: &str = "organization";
    pub const USER: &str = "user";
    pub const ROLE: &str = "role";
    pub const API_KEY: &str = "api_key";
    pub const SERVICE: &str = "service";
    pub const PERSONA: &str = "simulation_persona";
    pub const SCENARIO: &str = "simulation_scenario";
    pub const METRIC: &str = "metric";
    pub const UNIT_TEST_SET: &str = "simulation_unit_test_set";
    pub const UNIT_TEST: &str = "simulation_unit_test";
    /// Which migrations have been applied: `{_id: name, applied_at}`.
    pub const MIGRATIONS: &str = "simtest_migrations";
}
use collections as c;

/// How long the driver looks for a server, and how long it waits for a connection, unless the URI
/// says otherwise: short, so requests fail fast with 503 while MongoDB is away.
const SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The write concern every write uses: `majority` (the default) or a number of nodes (1 or more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MongoWriteConcern {
    Majority,
    Nodes(u32),
}

impl FromStr for MongoWriteConcern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("majority") {
            return Ok(Self::Majority);
        }
        match s.parse::<u32>() {
            Ok(0) => {
                Err("a write concern of 0 would not report duplicate names; use 1 or more".into())
            }
            Ok(n) => Ok(Self::Nodes(n)),
            Err(_) => Err(format!(
                "{s:?} is not a write concern: use `majority` or a number of nodes"
            )),
        }
    }
}

impl fmt::Display for MongoWriteConcern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Majority => f.write_str("majority"),
            Self::Nodes(n) => write!(f, "{n}"),
        }
    }
}

impl MongoWriteConcern {
    fn to_driver(self) -> WriteConcern {
        let w = match self {
            Self::Majority => Acknowledgment::Majority,
            Self::Nodes(n) => Acknowledgment::Nodes(n),
        };
        WriteConcern::builder().w(w).build()
    }
}

/// Why the MongoDB store could not be set up, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid MongoDB URI: {0}")]
    Uri(String),
    #[error("invalid MongoDB database name {name:?}: {reason}")]
    Database { name: String, reason: &'static str },
}

/// simtest's own settings (the shared token secret).
const SETTINGS: &str = "simtest_settings";
const TOKEN_SECRET_ID: &str = "token_secret";

/// The unit tests and reference records in one MongoDB database.
///
/// Every store operation runs to completion in a task of its own, even when the request that asked
/// for it is abandoned (a client disconnecting, a timeout): the driver closes a pooled connection
/// whose command was interrupted, and a burst of them leaves the pool empty and the server busy
/// with the interrupted queries while every following request opens new connections. Letting the
/// operation finish returns its connection to the pool.
pub struct MongoStore {
    inner: Db,
}

/// The client and database: cheap to clone (the driver shares its pool), so each operation's task
/// owns one.
#[derive(Clone)]
struct Db {
    client: Client,
    db: Database,
    /// Unit test writes are sent as commands (see `write_unit_test_command`), which name it.
    write_concern: MongoWriteConcern,
}

impl MongoStore {
    /// Sets up a client for `uri` and `database`. The driver connects lazily and reconnects by itself:
    /// this does not wait for MongoDB, the first operation does (at most the server selection timeout).
    pub async fn connect(
        uri: &str,
        database: &str,
        write_concern: MongoWriteConcern,
    ) -> Result<Self, ConnectError> {
        check_database_name(database)?;
        let mut options = ClientOptions::parse(uri)
            .await
            .map_err(|e| ConnectError::Uri(e.kind.to_string()))?;
        options.app_name.get_or_insert_with(|| "simtest".into());
        options
            .server_selection_timeout
            .get_or_insert(SERVER_SELECTION_TIMEOUT);
        options.connect_timeout.get_or_insert(CONNECT_TIMEOUT);
        options.write_concern = Some(write_concern.to_driver());
        options.command_event_handler = Some(round_trips::handler());
        let client =
            Client::with_options(options).map_err(|e| ConnectError::Uri(e.kind.to_string()))?;
        let db = client.database(database);
        Ok(Self {
            inner: Db {
                client,
                db,
                write_concern,
            },
        })
    }

    pub fn database_name(&self) -> &str {
        self.inner.db.name()
    }

    /// Applies the migrations not yet recorded in `simtest_migrations`, in order; returns the names
    /// of those it applied (empty when the database is up to date).
    pub async fn migrate(&self) -> StoreResult<Vec<String>> {
        self.inner.migrate().await
    }

    /// Writes the search grams into unit test documents written before they existed (see
    /// [`migrate::Backfill`]); returns at once when an earlier pass finished the job.
    pub async fn backfill_search_grams(&self) -> StoreResult<migrate::Backfill> {
        self.inner.backfill_search_grams().await
    }

    /// Runs [`Self::backfill_search_grams`] in the background, logging what it did: searches are
    /// right meanwhile (they keep documents without grams for the regexes), only slower. Then
    /// sweeps the unit test sets (crashed writers' leftovers; seeded sets rewritten once, see
    /// `sets.rs`).
    pub fn spawn_search_grams_backfill(&self) {
        let db = self.inner.clone();
        tokio::spawn(async move {
            match db.backfill_search_grams().await {
                Ok(done) if done == migrate::Backfill::default() => {}
                Ok(done) => tracing::info!(
                    written = done.written,
                    left = done.left,
                    "search grams backfilled"
                ),
                Err(error) => {
                    tracing::warn!(%error, "search grams backfill failed; the next start retries")
                }
            }
            match db.sweep_unit_test_sets().await {
                Ok(0) => {}
                Ok(changed) => tracing::info!(changed, "unit test sets swept"),
                Err(error) => tracing::warn!(%error, "unit test set sweep failed"),
            }
        });
    }

    /// Drops the whole database (tests give each run a database of its own and drop it after).
    pub async fn drop_database(&self) -> StoreResult<()> {
        self.inner.db.drop().await.map_err(store_error)
    }

    /// The driver client, e.g. to shut it down or to inspect the database in a test.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// The database, e.g. to inspect it in a test.
    pub fn database(&self) -> &Database {
        &self.inner.db
    }

    #[cfg(test)]
    fn collection(&self, name: &str) -> Collection<Document> {
        self.inner.collection(name)
    }

    /// Runs `work` on a clone of the client in a task of its own, counting its round trips under
    /// `operation`; the caller may stop waiting, the operation still completes (see [`MongoStore`]).
    async fn detached<T, Fut>(
        &self,
        operation: &'static str,
        work: impl FnOnce(Db) -> Fut,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        Fut: Future<Output = StoreResult<T>> + Send + 'static,
    {
        // The request's deadline (a task-local) goes along: writes check it before they commit.
        let deadline = Deadline::current();
        let work = round_trips::counted(operation, work(self.inner.clone()));
        let task = tokio::spawn(async move {
            match deadline {
                Some(deadline) => deadline.scope(work).await,
                None => work.await,
            }
        });
        match task.await {
            Ok((result, _)) => result,
            Err(e) => Err(StoreError::Internal(format!(
                "the {operation} task failed: {e}"
            ))),
        }
    }
}

impl Db {
    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    /// One page of `collection` (unit tests or sets): the documents `filter` selects in the order
    /// of `sort`, from `offset`, at most `limit`, decoded; and whether more follow.
    async fn find_page<T>(
        &self,
        collection: &str,
        filter: Document,
        sort: Document,
        (offset, limit): (u64, u32),
        decode: impl Fn(&Document) -> StoreResult<T>,
    ) -> StoreResult<(Vec<std::sync::Arc<T>>, bool)> {
        // One more than asked tells whether anything follows (and makes `limit: 0` a real query).
        let mut cursor = self
            .collection(collection)
            .find(filter)
            .sort(sort)
            .skip(offset.min(i64::MAX as u64))
            .limit(i64::from(limit) + 1)
            // The whole page in the first batch: no getMore round trip (the default first batch
            // is 101 documents).
            .batch_size(limit + 1)
            .await
            .map_err(store_error)?;
        let mut items = Vec::new();
        while cursor.advance().await.map_err(store_error)? {
            let d = cursor.deserialize_current().map_err(store_error)?;
            items.push(std::sync::Arc::new(decode(&d)?));
        }
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        Ok((items, has_more))
    }

    /// Sends a unit test write (an `insert` or `update` command). Within a request it is sent only
    /// if the request's time is not up, and with that time left as its limit (`maxTimeMS`, and
    /// `wtimeout` for the write concern): MongoDB then either applies it before the request's
    /// deadline or answers an error, and the request waits for that answer (see `store::deadline`).
    /// The driver's `insert_one` and `update_one` take no time limit, hence commands.
    async fn write_unit_test_command(&self, command: Document) -> StoreResult<Document> {
        // Tests slow the write down here: the time can run out before it is sent.
        fail::fail_point!("mongo::before_write");
        let deadline = Deadline::current();
        self.send_write(command, deadline.as_deref()).await
    }

    /// Sends a write command bounded by `deadline` (see [`bounded_write`]) and reads its outcome.
    /// A write PostgreSQL chose as a deadlock's victim (DocumentDB, two writes to the same
    /// documents at once; seen with concurrent set creates) was not applied: it is sent again, a
    /// few times with a growing pause, and then reported as unavailable (503), not as a bug.
    pub(super) async fn send_write(
        &self,
        command: Document,
        deadline: Option<&Deadline>,
    ) -> StoreResult<Document> {
        const DEADLOCK_RETRIES: u32 = 4;
        let mut retries = 0;
        loop {
            let bounded = bounded_write(command.clone(), self.write_concern, deadline)?;
            // ...or here: the server is slow, and its answer must still be sent.
            fail::fail_point!("mongo::write");
            let outcome = match self.db.run_command(bounded).await.map_err(store_error) {
                Ok(reply) => command_write_outcome(&reply).map(|()| reply),
                Err(e) => Err(e),
            };
            match outcome {
                Err(e) if is_deadlock(&e) && retries < DEADLOCK_RETRIES => {
                    retries += 1;
                    tokio::time::sleep(Duration::from_millis(5 << retries)).await;
                }
                Err(e) if is_deadlock(&e) => {
                    return Err(StoreError::Unavailable(format!("write not applied: {e}")));
                }
                other => return other,
            }
        }
    }

    async fn find_record<T: DeserializeOwned>(
        &self,
        collection: &str,
        filter: Document,
    ) -> StoreResult<Option<T>> {
        self.collection(collection)
            .find_one(filter)
            .await
            .map_err(store_error)?
            .map(|d| record_from_doc(collection, d))
            .transpose()
    }

    /// The record of `org_id` whose `_id` is `id` (stored either way).
    async fn find_by_id<T: DeserializeOwned>(
        &self,
        collection: &str,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<T>> {
        let filter = doc! {"_id": {"$in": id_either_way(id)}, "org_id": org_id};
        self.find_record(collection, filter).await
    }

    async fn find_records<T: DeserializeOwned>(
        &self,
        collection: &str,
        filter: Document,
    ) -> StoreResult<Vec<T>> {
        let mut cursor = self
            .collection(collection)
            .find(filter)
            .await
            .map_err(store_error)?;
        let mut found = Vec::new();
        while cursor.advance().await.map_err(store_error)? {
            let d = cursor.deserialize_current().map_err(store_error)?;
            found.push(record_from_doc(collection, d)?);
        }
        Ok(found)
    }

    /// Replaces (or inserts) the record `filter` selects with `replacement`.
    async fn upsert(
        &self,
        collection: &str,
        filter: Document,
        replacement: Document,
    ) -> StoreResult<()> {
        self.collection(collection)
            .replace_one(filter, replacement)
            .upsert(true)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Upserts `rows`, each by the filter `key` makes of it (its natural key, or its `_id`); the
    /// key's fields are written as the filter has them (an `_id` as an ObjectId).
    async fn upsert_by<T: Serialize + Sync>(
        &self,
        collection: &str,
        rows: &[T],
        key: impl Fn(&T) -> Document,
    ) -> StoreResult<()> {
        for row in rows {
            let filter = key(row);
            let mut d = record_to_doc(row)?;
            d.extend(filter.clone());
            self.upsert(collection, filter, d).await?;
        }
        Ok(())
    }
}

/// MongoDB's rules for database names, checked up front so a typo fails at start-up.
fn check_database_name(name: &str) -> Result<(), ConnectError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 63 {
        Some("it is longer than 63 bytes")
    } else if name.chars().any(|ch| {
        matches!(
            ch,
            '/' | '\\' | '.' | ' ' | '"' | '$' | '*' | '<' | '>' | ':' | '|' | '?' | '\0'
        )
    }) {
        Some("it contains one of / \\ . space \" $ * < > : | ? NUL")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ConnectError::Database {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A write command made ready to send: with the write concern, and, within a request whose time
/// is not up, bounded by the time left (`maxTimeMS`, `wtimeout`). Once the request's time is up it
/// is refused: the request is answered 503 and this write must not happen.
fn bounded_write(
    mut command: Document,
    concern: MongoWriteConcern,
    deadline: Option<&Deadline>,
) -> StoreResult<Document> {
    let limit = match deadline {
        Some(deadline) => {
            deadline.begin_commit().map_err(|_| {
                StoreError::Unavailable("the request's time ran out before the write".into())
            })?;
            Some(deadline.remaining())
        }
        None => None,
    };
    command.insert("writeConcern", write_concern_document(concern, limit));
    if let Some(limit) = limit {
        command.insert("maxTimeMS", limit_millis(limit));
    }
    Ok(command)
}

/// The `writeConcern` of a write command: the configured one, bounded by `limit` when given.
fn write_concern_document(concern: MongoWriteConcern, limit: Option<Duration>) -> Document {
    let mut wc = match concern {
        MongoWriteConcern::Majority => doc! {"w": "majority"},
        MongoWriteConcern::Nodes(n) => doc! {"w": i64::from(n)},
    };
    if let Some(limit) = limit {
        wc.insert("wtimeout", limit_millis(limit));
    }
    wc
}

/// A time limit in whole milliseconds, at least 1 (0 would mean "no limit" to MongoDB).
fn limit_millis(limit: Duration) -> i64 {
    i64::try_from(limit.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// The store operations, run inside [`MongoStore::detached`].
impl Db {
    async fn ping(&self) -> StoreResult<()> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn shared_token_secret(&self, proposal: &str) -> StoreResult<Option<String>> {
        let settings = self.db.collection::<Document>(SETTINGS);
        // The first instance to insert wins; the others read what it wrote.
        let first = doc! {"_id": TOKEN_SECRET_ID, "value": proposal};
        match settings.insert_one(first).await {
            Ok(_) => {}
            Err(e) if is_duplicate_key(&e) => {}
            Err(e) => return Err(store_error(e)),
        }
        let stored = settings
            .find_one(doc! {"_id": TOKEN_SECRET_ID})
            .await
            .map_err(store_error)?;
        let value = stored.and_then(|d| d.get_str("value").ok().map(str::to_owned));
        value
            .map(Some)
            .ok_or_else(|| StoreError::Internal("the shared token secret is missing".into()))
    }

    async fn organization(&self, org_id: &OrgId) -> StoreResult<Option<Organization>> {
        self.find_record(c::ORGANIZATION, doc! {"org_id": org_id})
            .await
    }

    async fn user(&self, org_id: &OrgId, user_id: &UserId) -> StoreResult<Option<User>> {
        self.find_record(
            c::USER,
            doc! {"org_id": org_id, "user_id": user_id.as_str()},
        )
        .await
    }

    async fn role(&self, org_id: &OrgId, name: &str) -> StoreResult<Option<Role>> {
        self.find_record(c::ROLE, doc! {"org_id": org_id, "name": name})
            .await
    }

    async fn api_key(&self, org_id: &OrgId, key_id: &str) -> StoreResult<Option<ApiKey>> {
        self.find_record(c::API_KEY, doc! {"org_id": org_id, "key_id": key_id})
            .await
    }

    async fn service(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        self.find_by_id(c::SERVICE, org_id, id).await
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        let collection = match kind {
            NamedKind::Persona => c::PERSONA,
            NamedKind::Scenario => c::SCENARIO,
        };
        self.find_by_id(collection, org_id, id).await
    }

    async fn metrics(&self, org_id: &OrgId, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.find_records(
            c::METRIC,
            doc! {"_id": {"$in": ids_either_way(ids)}, "org_id": org_id},
        )
        .await
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        self.write_unit_test_command(doc! {
            "insert": c::UNIT_TEST,
            "documents": [unit_test_to_doc(doc)?],
        })
        .await?;
        self.record_version(doc).await;
        Ok(())
    }

    async fn insert_unit_tests(&self, docs: &[UnitTest]) -> StoreResult<()> {
        if docs.is_empty() {
            return Ok(());
        }
        let documents = docs
            .iter()
            .map(unit_test_to_doc)
            .collect::<StoreResult<Vec<_>>>()?;
        // Ordered: on a taken name MongoDB stops there, and the ones before are removed again, so
        // the answer is all or none.
        let inserted = self
            .write_unit_test_command(doc! {
                "insert": c::UNIT_TEST,
                "documents": documents,
                "ordered": true,
            })
            .await;
        if let Err(e) = inserted {
            let ids: Vec<_> = docs.iter().map(|d| oid(d.id)).collect();
            let org_id = &docs[0].org_id;
            self.collection(c::UNIT_TEST)
                .delete_many(doc! {"_id": {"$in": ids}, "org_id": org_id})
                .await
                .map_err(store_error)?;
            return Err(e);
        }
        for doc in docs {
            self.record_version(doc).await;
        }
        Ok(())
    }

    async fn unit_test(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        self.collection(c::UNIT_TEST)
            .find_one(doc! {"_id": oid(id), "org_id": org_id})
            .await
            .map_err(store_error)?
            .map(|d| unit_test_from_doc(&d))
            .transpose()
    }

    async fn replace_unit_test(
        &self,
        previous: &UnitTest,
        next: &UnitTest,
    ) -> StoreResult<Written> {
        // MongoDB (and FerretDB 2 on DocumentDB) applies a filtered update to one document
        // atomically, so the filter on the previous `updated_at` settles races between writers,
        // across processes. Only the changed fields are written, with `updated_at` through `$max`
        // so it only moves forward.
        let before = unit_test_to_doc(previous)?;
        let after = unit_test_to_doc(next)?;
        let mut changed = Document::new();
        for (key, value) in &after {
            // The grams go along every time: a document written before they existed (and not
            // backfilled yet) gets them with its first change.
            if key != "updated_at"
                && (before.get(key) != Some(value)
                    || key == field::SEARCH_GRAMS
                    || key == field::SEARCH_TEXT)
            {
                changed.insert(key.clone(), value.clone());
            }
        }
        let mut update = doc! {"$max": {"updated_at": datetime(next.updated_at)}};
        if !changed.is_empty() {
            update.insert("$set", changed);
        }
        if next.is_deleted {
            // Refused while a set lists it, and settled against racing set writes (`sets.rs`).
            let written = self.delete_unit_test(previous, update).await?;
            if written == Written::Done {
                self.record_version(next).await;
            }
            return Ok(written);
        }
        let reply = self
            .write_unit_test_command(doc! {
                "update": c::UNIT_TEST,
                "updates": [{
                    "q": {
                        "_id": oid(previous.id),
                        "org_id": &previous.org_id,
                        "is_deleted": false,
                        "updated_at": datetime(previous.updated_at),
                    },
                    "u": update,
                }],
            })
            .await?;
        if reply_count(&reply, "n") != 1 {
            return Ok(Written::Stale);
        }
        self.record_version(next).await;
        Ok(Written::Done)
    }

    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage> {
        let filter = filter_document(&query.filter);
        let page_filter = match query.after {
            // Walks the (org_id, _id) index from `after` on.
            Some(after) => doc! {"$and": [filter.clone(), {"_id": {"$gt": oid(after)}}]},
            None => filter.clone(),
        };
        let page = self.find_page(
            c::UNIT_TEST,
            page_filter,
            sort_document(&query.sort),
            (query.offset, query.limit),
            unit_test_from_doc,
        );
        let facets = async {
            if query.with_facets {
                self.filter_values(&filter).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let ((items, has_more), filter_values) = tokio::try_join!(page, facets)?;
        Ok(ListPage {
            items,
            has_more,
            filter_values,
        })
    }

    async fn upsert_records(&self, r: &Records) -> StoreResult<()> {
        self.upsert_by(c::ORGANIZATION, &r.organizations, |o| {
            doc! {"org_id": &o.org_id}
        })
        .await?;
        self.upsert_by(c::ROLE, &r.roles, |x| {
            doc! {"org_id": &x.org_id, "name": &x.name}
        })
        .await?;
        self.upsert_by(c::USER, &r.users, |u| {
            doc! {"org_id": &u.org_id, "user_id": u.user_id.as_str()}
        })
        .await?;
        self.upsert_by(c::API_KEY, &r.api_keys, |k| {
            doc! {"org_id": &k.org_id, "key_id": &k.key_id}
        })
        .await?;
        self.upsert_by(c::SERVICE, &r.services, |s| doc! {"_id": oid(s.id)})
            .await?;
        self.upsert_by(c::PERSONA, &r.personas, |s| doc! {"_id": oid(s.id)})
            .await?;
        self.upsert_by(c::SCENARIO, &r.scenarios, |s| doc! {"_id": oid(s.id)})
            .await?;
        self.upsert_by(c::METRIC, &r.metrics, |s| doc! {"_id": oid(s.id)})
            .await?;
        self.upsert_unit_test_sets(&r.unit_test_sets).await?;
        Ok(())
    }
}

/// An argument of a store operation: owned for the operation's task, which may outlive the request
/// that asked (see [`MongoStore::detached`]), and lent back to the operation in the form it takes.
trait Detach<'a> {
    type Owned: Send + 'static;
    fn detach(self) -> Self::Owned;
    fn lend(owned: &'a Self::Owned) -> Self;
}

impl<'a> Detach<'a> for &'a str {
    type Owned = String;
    fn detach(self) -> String {
        self.to_owned()
    }
    fn lend(owned: &'a String) -> Self {
        owned
    }
}

impl<'a, T: Clone + Send + 'static> Detach<'a> for &'a [T] {
    type Owned = Vec<T>;
    fn detach(self) -> Vec<T> {
        self.to_vec()
    }
    fn lend(owned: &'a Vec<T>) -> Self {
        owned
    }
}

/// Arguments passed by reference and cloned, and small ones passed by value and copied.
macro_rules! detach_by {
    (clone: $($t:ty),*) => {$(
        impl<'a> Detach<'a> for &'a $t {
            type Owned = $t;
            fn detach(self) -> $t {
                self.clone()
            }
            fn lend(owned: &'a $t) -> Self {
                owned
            }
        }
    )*};
    (copy: $($t:ty),*) => {$(
        impl Detach<'_> for $t {
            type Owned = $t;
            fn detach(self) -> $t {
                self
            }
            fn lend(owned: &$t) -> Self {
                *owned
            }
        }
    )*};
}
detach_by!(clone: UnitTest, UnitTestSet, OrgId, UserId, ListQuery, UnitTestSetQuery, Records, KeyRecord);
detach_by!(copy: ObjectIdHex, NamedKind, Timestamp, u32);

/// The [`Store`] impl, given every operation's signature: each operation of [`Db`] (same name, same
/// arguments) run detached, its round trips counted under its name.
macro_rules! detached_store {
    ($(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl Store for MongoStore {
            $(async fn $name(&self, $($arg: $ty),*) -> StoreResult<$out> {
                $(let $arg = Detach::detach($arg);)*
                self.detached(stringify!($name), |db| async move {
                    db.$name($(<$ty as Detach>::lend(&$arg)),*).await
                })
                .await
            })*
        }
    };
}

super::for_each_store_operation!(detached_store);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_concerns_parse_from_majority_or_a_node_count() {
        assert_eq!(
            "majority".parse::<MongoWriteConcern>(),
            Ok(MongoWriteConcern::Majority)
        );
        assert_eq!(
            " 2 ".parse::<MongoWriteConcern>(),
            Ok(MongoWriteConcern::Nodes(2))
        );
        assert!("0".parse::<MongoWriteConcern>().is_err());
        assert!("all".parse::<MongoWriteConcern>().is_err());
        assert_eq!(MongoWriteConcern::Nodes(3).to_string(), "3");
    }

    #[test]
    fn a_write_within_a_request_is_bounded_by_the_time_it_has_left() {
        let command = || doc! {"insert": "x", "documents": [{"a": 1}]};
        let unbounded = bounded_write(command(), MongoWriteConcern::Majority, None).unwrap();
        assert_eq!(
            unbounded.get_document("writeConcern").unwrap(),
            &doc! {"w": "majority"}
        );
        assert!(unbounded.get("maxTimeMS").is_none());

        let deadline = Deadline::new(Duration::from_secs(30));
        let bounded =
            bounded_write(command(), MongoWriteConcern::Nodes(1), Some(&deadline)).unwrap();
        let max_time = bounded.get_i64("maxTimeMS").unwrap();
        assert!((29_000..=30_000).contains(&max_time), "{max_time}");
        let wc = bounded.get_document("writeConcern").unwrap();
        assert_eq!(wc.get_i64("w"), Ok(1));
        assert_eq!(wc.get_i64("wtimeout"), Ok(max_time));
        assert!(!deadline.expire(), "the request now waits for this write");

        let late = Deadline::new(Duration::ZERO);
        assert!(matches!(
            bounded_write(command(), MongoWriteConcern::Majority, Some(&late)),
            Err(StoreError::Unavailable(_))
        ));
        assert!(late.expired(), "refused, and the request answers 503");
    }

    #[test]
    fn bad_database_names_are_refused_up_front() {
        for bad in ["", "a.b", "a/b", "has space", &"x".repeat(64)] {
            assert!(check_database_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_database_name("simtest_5f2c-9a").is_ok());
    }

    /// Against a live MongoDB or FerretDB (`SIMTEST_TEST_MONGODB_URI`), in a database of its own that
    /// is dropped afterwards. Without the variable the tests say SKIPPED and pass.
    pub(super) mod live {
        use std::sync::Arc;

        use rand::SeedableRng;
        use rand::rngs::StdRng;

        use mongodb::bson::Bson;
        use mongodb::bson::oid::ObjectId;

        use super::*;
        use crate::domain::Timestamp;
        use crate::domain::query_string::QueryParams;
        use crate::domain::unit_test_set::{UnitTestRun, UnitTestSet};
        use crate::service::{
            list_query_for as parse_list_query, search_query_for as parse_search_query,
        };
        use crate::store::tests::live_mongo as mongo;
        use crate::store::tests::testgen::{id, random_unit_test, sample};
        use facets::facets_pipeline;

        #[tokio::test]
        async fn names_are_unique_among_active_unit_tests_even_under_concurrency() {
            let Some(mongo) = mongo().await else { return };
            let mongo = Arc::new(mongo);
            let mut first = sample();
            assert!(matches!(mongo.insert_unit_test(&first).await, Ok(())));
            let mut twin = sample();
            twin.id = id(99);
            assert!(matches!(
                mongo.insert_unit_test(&twin).await,
                Err(StoreError::Duplicate)
            ));
            let mut other_org = twin.clone();
            other_org.org_id = "globex".into();
            mongo.insert_unit_test(&other_org).await.unwrap();

            // Stale version: refused; current version: replaced; deleting frees the name.
            let mut next = first.clone();
            next.run_count = 9;
            next.updated_at = Timestamp::from_millis(first.updated_at.millis() + 1);
            let mut stale = first.clone();
            stale.updated_at = Timestamp::from_millis(1);
            assert_eq!(
                mongo.replace_unit_test(&stale, &next).await.unwrap(),
                Written::Stale
            );
            assert_eq!(
                mongo.replace_unit_test(&first, &next).await.unwrap(),
                Written::Done
            );
            assert_eq!(
                mongo.unit_test(&"acme".into(), first.id).await.unwrap(),
                Some(next.clone())
            );
            first = next.clone();
            next.is_deleted = true;
            next.updated_at = Timestamp::from_millis(first.updated_at.millis() + 1);
            assert_eq!(
                mongo.replace_unit_test(&first, &next).await.unwrap(),
                Written::Done
            );
            assert_eq!(
                mongo.replace_unit_test(&next, &next).await.unwrap(),
                Written::Stale,
                "deleted stays deleted"
            );
            assert_eq!(
                mongo.unit_test(&"globex".into(), first.id).await.unwrap(),
                None,
                "other org"
            );

            let attempts: Vec<_> = (0..8u8)
                .map(|n| {
                    let mongo = mongo.clone();
                    let mut t = sample();
                    t.id = id(100 + n);
                    tokio::spawn(async move { mongo.insert_unit_test(&t).await })
                })
                .collect();
            let mut ok = 0;
            for a in attempts {
                match a.await.unwrap() {
                    Ok(()) => ok += 1,
                    Err(StoreError::Duplicate) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            assert_eq!(ok, 1, "exactly one concurrent insert wins the freed name");
            mongo.drop_database().await.unwrap();
        }

        #[tokio::test]
        async fn reference_records_upsert_by_natural_key_and_read_back() {
            let Some(mongo) = mongo().await else { return };
            let records = crate::service::seed::parse(crate::service::seed::DEMO_SEED).unwrap();
            mongo.upsert_records(&records).await.unwrap();
            mongo.upsert_records(&records).await.unwrap();
            let users = mongo
                .collection(c::USER)
                .count_documents(doc! {})
                .await
                .unwrap();
            assert_eq!(
                users as usize,
                records.users.len(),
                "upserting twice adds nothing"
            );
            let u = &records.users[0];
            assert_eq!(
                mongo.user(&u.org_id, &u.user_id).await.unwrap().as_ref(),
                Some(u)
            );
            let k = &records.api_keys[0];
            assert_eq!(
                mongo
                    .api_key(&k.org_id, &k.key_id)
                    .await
                    .unwrap()
                    .map(|x| x.secret_hash),
                Some(k.secret_hash.clone())
            );
            let o = &records.organizations[0];
            assert_eq!(
                mongo.organization(&o.org_id).await.unwrap().as_ref(),
                Some(o)
            );
            let s = &records.services[0];
            assert_eq!(
                mongo.service(&s.org_id, s.id).await.unwrap().as_ref(),
                Some(s)
            );
            assert_eq!(mongo.service(&"globex".into(), s.id).await.unwrap(), None);
            let p = &records.personas[0];
            assert_eq!(
                mongo
                    .named(NamedKind::Persona, &p.org_id, p.id)
                    .await
                    .unwrap()
                    .as_ref(),
                Some(p)
            );
            assert_eq!(
                mongo
                    .named(NamedKind::Scenario, &p.org_id, p.id)
                    .await
                    .unwrap(),
                None
            );
            let ids: Vec<ObjectIdHex> = records.metrics.iter().map(|m| m.id).collect();
            assert_eq!(
                mongo.metrics(&"acme".into(), &ids).await.unwrap().len(),
                ids.len()
            );

            // Written by another system: string id, no flags, extra fields.
            mongo
                .collection(c::SERVICE)
                .insert_one(doc! {"_id": id(77).to_hex(), "org_id": "acme", "version_sets": {"v": 1}, "extra": true})
                .await
                .unwrap();
            let other = mongo
                .service(&"acme".into(), id(77))
                .await
                .unwrap()
                .expect("found by hex _id");
            assert!(other.is_live());

            let who = crate::domain::UserInfo {
                org_id: "acme".into(),
                user_id: "alice".into(),
            };
            let set = UnitTestSet {
                id: id(50),
                org_id: "acme".into(),
                name: "nightly".into(),
                description: None,
                unit_test_runs: vec![UnitTestRun {
                    unit_test_id: id(1),
                    run_count: 2,
                }],
                last_triggered_run_id: None,
                tags: Vec::new(),
                is_deleted: false,
                creator: who.clone(),
                updated_by: who,
                created_at: Timestamp::from_millis(1_700_000_000_000),
                updated_at: Timestamp::from_millis(1_700_000_000_000),
            };
            let deleted = UnitTestSet {
                id: id(51),
                is_deleted: true,
                unit_test_runs: vec![UnitTestRun {
                    unit_test_id: id(2),
                    run_count: 1,
                }],
                ..set.clone()
            };
            mongo
                .upsert_records(&Records {
                    unit_test_sets: vec![set, deleted],
                    ..Records::default()
                })
                .await
                .unwrap();
            assert!(
                mongo
                    .unit_test_in_live_set(&"acme".into(), id(1))
                    .await
                    .unwrap()
            );
            assert!(
                !mongo
                    .unit_test_in_live_set(&"acme".into(), id(2))
                    .await
                    .unwrap(),
                "only in a deleted set"
            );
            assert!(
                !mongo
                    .unit_test_in_live_set(&"globex".into(), id(1))
                    .await
                    .unwrap()
            );
            mongo
                .collection(c::UNIT_TEST_SET)
                .insert_one(doc! {"_id": ObjectId::new(), "org_id": "acme", "unit_test_runs": [{"unit_test_id": oid(id(3))}]})
                .await
                .unwrap();
            assert!(
                mongo
                    .unit_test_in_live_set(&"acme".into(), id(3))
                    .await
                    .unwrap(),
                "ObjectId reference, no is_deleted"
            );

            assert!(
                mongo.migrate().await.unwrap().is_empty(),
                "migrations are recorded"
            );
            mongo.ping().await.unwrap();
            mongo.drop_database().await.unwrap();
        }

        /// The queries of a first page, page 2, a filtered first page and a search, as the store
        /// sends them.
        fn typical_queries() -> Vec<(&'static str, ListQuery)> {
            let q = |raw: &str| {
                parse_list_query(&"acme".into(), &QueryParams::parse(Some(raw)))
                    .expect("valid query")
            };
            let s = |raw: &str| {
                parse_search_query(&"acme".into(), &QueryParams::parse(Some(raw)))
                    .expect("valid search")
            };
            vec![
                ("first page", q("limit=50")),
                ("page 2", q("limit=50&continuation_token=50")),
                (
                    "filtered first page",
                    q(&format!("limit=50&service_id={}", id(2))),
                ),
                ("tag filter", q("limit=50&tag=team:growth")),
                ("newest first", q("limit=20&sort_by=-updated_at")),
                ("by name", q("limit=20&sort_by=name")),
                ("search", s("query=signup")),
            ]
        }

        /// Unit tests in many orgs, `acme` holding a small share: the situation indexes are for.
        async fn seed_many_orgs(mongo: &MongoStore) {
            let mut rng = StdRng::seed_from_u64(11);
            let docs: Vec<Document> = (0..4000)
                .map(|n| {
                    let mut t = random_unit_test(&mut rng, n);
                    t.id = ObjectIdHex::from_bytes(ObjectId::new().bytes());
                    t.name = format!("{} {n}", t.name);
                    t.org_id = if n % 40 == 0 {
                        "acme".into()
                    } else {
                        format!("org{}", n % 97).into()
                    };
                    unit_test_to_doc(&t).unwrap()
                })
                .collect();
            mongo
                .collection(c::UNIT_TEST)
                .insert_many(docs)
                .await
                .unwrap();
        }

        #[tokio::test]
        async fn a_first_page_with_facets_takes_two_round_trips_and_other_pages_one() {
            let Some(mongo) = mongo().await else { return };
            seed_many_orgs(&mongo).await;
            for (what, query) in typical_queries() {
                let (page, trips) =
                    round_trips::counted("test", mongo.inner.list_unit_tests(&query)).await;
                let page = page.unwrap();
                let want = if query.with_facets { 2 } else { 1 };
                assert_eq!(trips, want, "{what}: {query:?}");
                assert_eq!(page.filter_values.is_some(), query.with_facets, "{what}");
            }
            // The largest page still comes in one batch.
            let query = parse_list_query(
                &"org1".into(),
                &QueryParams::parse(Some("limit=500&continuation_token=1")),
            )
            .unwrap();
            let (_, trips) =
                round_trips::counted("test", mongo.inner.list_unit_tests(&query)).await;
            assert_eq!(trips, 1);
            mongo.drop_database().await.unwrap();
        }

        /// Every plan node of an `explain` answer, whichever server wrote it: MongoDB's
        /// `queryPlanner.winningPlan` stages, or the PostgreSQL plan FerretDB 2 / DocumentDB show.
        pub(in crate::store::mongo) fn plan_nodes(explain: &Document) -> Vec<String> {
            fn walk(b: &Bson, out: &mut Vec<String>) {
                match b {
                    Bson::Document(d) => {
                        for key in ["stage", "Node Type"] {
                            if let Ok(v) = d.get_str(key) {
                                let index = ["indexName", "Index Name"]
                                    .iter()
                                    .find_map(|k| d.get_str(k).ok())
                                    .unwrap_or("");
                                out.push(format!("{v} {index}").trim().to_owned());
                            }
                        }
                        for (key, v) in d {
                            // MongoDB lists the plans it rejected too; only the winner counts.
                            if key != "rejectedPlans" {
                                walk(v, out);
                            }
                        }
                    }
                    Bson::Array(a) => a.iter().for_each(|v| walk(v, out)),
                    // Some servers put the PostgreSQL plan in as JSON text.
                    Bson::String(s) if s.contains("\"Node Type\"") => {
                        if let Ok(json) = serde_json::from_str::<serde_json::Value>(s)
                            && let Ok(b) = Bson::try_from(json)
                        {
                            walk(&b, out);
                        }
                    }
                    _ => {}
                }
            }
            let mut out = Vec::new();
            walk(&Bson::Document(explain.clone()), &mut out);
            out
        }

        pub(in crate::store::mongo) fn assert_indexed(what: &str, explain: &Document) {
            let nodes = plan_nodes(explain);
            let scans: Vec<&String> = nodes
                .iter()
                .filter(|n| n.starts_with("COLLSCAN") || n.starts_with("Seq Scan"))
                .collect();
            assert!(
                scans.is_empty(),
                "{what} scans the collection: {nodes:?}\n{explain}"
            );
            assert!(
                nodes.iter().any(|n| n.contains("IXSCAN")
                    || n.contains("Index Scan")
                    || n.contains("Index Only Scan")
                    || n.contains("Bitmap Index Scan")),
                "{what} uses no index: {nodes:?}\n{explain}"
            );
        }

        #[tokio::test]
        async fn list_search_and_facet_queries_use_an_index_and_scan_no_collection() {
            let Some(mongo) = mongo().await else { return };
            seed_many_orgs(&mongo).await;
            let db = mongo.database();
            for (what, query) in typical_queries() {
                let filter = filter_document(&query.filter);
                let find = doc! {
                    "find": c::UNIT_TEST,
                    "filter": filter.clone(),
                    "sort": sort_document(&query.sort),
                    "skip": query.offset as i64,
                    "limit": i64::from(query.limit) + 1,
                };
                let explain = db
                    .run_command(doc! {"explain": find, "verbosity": "queryPlanner"})
                    .await
                    .unwrap();
                assert_indexed(what, &explain);
                if query.with_facets {
                    let aggregate = doc! {
                        "aggregate": c::UNIT_TEST,
                        "pipeline": facets_pipeline(&filter),
                        "cursor": {},
                    };
                    let explain = db
                        .run_command(doc! {"explain": aggregate, "verbosity": "queryPlanner"})
                        .await
                        .unwrap();
                    assert_indexed(&format!("{what} facets"), &explain);
                }
            }
            mongo.drop_database().await.unwrap();
        }

        /// The winning plan of the search `text` in `acme`, as the store sends it.
        async fn search_plan(mongo: &MongoStore, text: &str) -> Vec<String> {
            let query = parse_search_query(
                &"acme".into(),
                &QueryParams::parse(Some(&format!("query={text}"))),
            )
            .unwrap();
            let find = doc! {
                "find": c::UNIT_TEST,
                "filter": filter_document(&query.filter),
                "sort": sort_document(&query.sort),
                "limit": i64::from(query.limit) + 1,
            };
            let explain = mongo
                .database()
                .run_command(doc! {"explain": find, "verbosity": "queryPlanner"})
                .await
                .unwrap();
            assert_indexed(text, &explain);
            plan_nodes(&explain)
        }

        #[tokio::test]
        async fn selective_searches_use_the_grams_index() {
            let Some(mongo) = mongo().await else { return };
            seed_many_orgs(&mongo).await;
            // A term no unit test holds, one a single unit test holds (names end in their
            // number), and two terms each frequent in `acme` but not together.
            for text in ["zqxj", "3960", "signup%20zeta"] {
                let plan = search_plan(&mongo, text).await;
                assert!(
                    plan.iter().any(|n| n.contains("org_id_search_grams_live")),
                    "{text}: {plan:?}"
                );
            }
            let grams_of = |text: &str| {
                let query = parse_search_query(
                    &"acme".into(),
                    &QueryParams::parse(Some(&format!("query={text}"))),
                )
                .unwrap();
                filter_document(&query.filter)
            };
            // A short term has no grams: the regexes alone, through the org's indexes.
            assert!(!grams_of("ze").to_string().contains("search_grams"));
            search_plan(&mongo, "ze").await;
            mongo.drop_database().await.unwrap();
        }

        #[tokio::test]
        async fn the_backfill_writes_the_grams_of_older_documents_once_even_from_two_instances() {
            let Some(mongo) = mongo().await else { return };
            let mut rng = StdRng::seed_from_u64(5);
            // Written as before migration 0003: no `search_grams`.
            let docs: Vec<UnitTest> = (0..1234)
                .map(|n| {
                    let mut t = random_unit_test(&mut rng, n);
                    t.id = ObjectIdHex::from_bytes(ObjectId::new().bytes());
                    t.name = format!("Ωmega {n}");
                    t
                })
                .collect();
            let older: Vec<Document> = docs
                .iter()
                .map(|t| {
                    let mut d = unit_test_to_doc(t).unwrap();
                    d.remove(field::SEARCH_GRAMS).unwrap();
                    d.remove(field::SEARCH_TEXT).unwrap();
                    d
                })
                .collect();
            let unit_tests = mongo.collection(c::UNIT_TEST);
            unit_tests.insert_many(older).await.unwrap();
            let live_named = |n: usize| {
                docs.iter()
                    .filter(|t| {
                        !t.is_deleted && t.org_id == "acme" && t.name == format!("Ωmega {n}")
                    })
                    .count()
            };
            let search = |text: &str| {
                parse_search_query(
                    &"acme".into(),
                    &QueryParams::parse(Some(&format!("query={text}"))),
                )
                .unwrap()
            };
            // Before the backfill, searches find the older documents all the same.
            let found = mongo
                .list_unit_tests(&search("%CE%A9MEGA%201000"))
                .await
                .unwrap();
            assert_eq!(found.items.len(), live_named(1000));
            let found = mongo.list_unit_tests(&search("ωmega%20777")).await.unwrap();
            assert_eq!(found.items.len(), live_named(777));
            // Two instances at once: every document written once, by one of them.
            let (a, b) = tokio::join!(
                mongo.backfill_search_grams(),
                mongo.inner.backfill_search_grams()
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert_eq!(a.written + b.written, docs.len() as u64, "{a:?} {b:?}");
            assert_eq!((a.left, b.left), (0, 0));
            for t in &docs {
                let d = unit_tests
                    .find_one(doc! {"_id": oid(t.id)})
                    .await
                    .unwrap()
                    .unwrap();
                let grams: Vec<i32> = d
                    .get_array(field::SEARCH_GRAMS)
                    .unwrap()
                    .iter()
                    .map(|g| g.as_i32().unwrap())
                    .collect();
                assert_eq!(grams, codec::search_grams(&t.name, &t.description));
            }
            let found = mongo.list_unit_tests(&search("ωmega%20777")).await.unwrap();
            assert_eq!(found.items.len(), live_named(777));
            // Done, and recorded: later starts do nothing.
            assert_eq!(
                mongo.backfill_search_grams().await.unwrap(),
                migrate::Backfill::default()
            );
            mongo.drop_database().await.unwrap();
        }

        #[tokio::test]
        async fn an_unreachable_server_is_unavailable_quickly() {
            // A loopback port nobody listens on.
            let store = MongoStore::connect(
                "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300",
                "simtest",
                MongoWriteConcern::Majority,
            )
            .await
            .unwrap();
            let started = std::time::Instant::now();
            assert!(matches!(
                store.ping().await,
                Err(StoreError::Unavailable(_))
            ));
            assert!(matches!(
                store.unit_test(&"acme".into(), id(1)).await,
                Err(StoreError::Unavailable(_))
            ));
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
}
