//! The MongoDB store. It answers exactly as the embedded store does: the query model of
//! `domain::query` is translated to BSON here, and the results (filter, order, paging, facets) are the
//! ones `UnitTestFilter::matches`, `compare` and offset/limit give there.
//!
//! It supports MongoDB 6+ and FerretDB 2 (on PostgreSQL with DocumentDB): single-document updates
//! are atomic, `$facet` answers a first page's facets in one round trip. The unique active name is a
//! plain unique index over `(org_id, name, name_guard)`, where `name_guard` is `""` while a unit test
//! is active and its own id once it is deleted: every active unit test of a name collides, deleted
//! ones never do (it predates partial indexes here and existing databases rely on it). Tag filters
//! match `tag_pairs`, each tag stored once more as one string, behind one multikey index.
//!
//! Reference collections may hold documents other systems wrote: their `_id` is read whether it is an
//! ObjectId or a 24-hex string, missing flags take their defaults, unknown fields are ignored.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use mongodb::bson::{self, Bson, Document, doc, oid::ObjectId};
use mongodb::error::{ErrorKind, WriteFailure};
use mongodb::options::{Acknowledgment, ClientOptions, IndexOptions, WriteConcern};
use mongodb::{Client, Collection, Database, IndexModel};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::deadline::Deadline;
use super::migrate::{MIGRATIONS, Migration};
use super::round_trips;
use super::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreError, StoreResult, User,
};
use crate::domain::query::{
    FilterValues, ListPage, ListQuery, SortField, SortKey, TagValueFilter, UnitTestFilter,
};
use crate::domain::{Criterion, ObjectIdHex, SuccessCriterion, Tag, Timestamp, UnitTest, UserInfo};

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

/// Server error codes that mean "not reachable or not answering now", worth a retry: shutdown,
/// stepdown, not primary, host unreachable, network timeout, socket errors, time limits.
const UNAVAILABLE_CODES: &[i32] = &[
    6, 7, 50, 64, 89, 91, 134, 189, 262, 9001, 10058, 10107, 11600, 11602, 13435, 13436,
];
const DUPLICATE_KEY_CODES: &[i32] = &[11000, 11001];
const NAMESPACE_EXISTS: i32 = 48;

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
    async fn migrate(&self) -> StoreResult<Vec<String>> {
        // Every step is idempotent, so a race with another process migrating the same database
        // (which surfaces as a duplicate key on a collection, an index or the record) is settled by
        // going through the list again.
        let mut attempts = 0;
        loop {
            match self.migrate_once().await {
                Err(StoreError::Duplicate) if attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempts)).await;
                }
                Err(StoreError::Duplicate) => {
                    return Err(StoreError::Internal(
                        "migrations kept racing with another process".into(),
                    ));
                }
                other => return other,
            }
        }
    }

    async fn migrate_once(&self) -> StoreResult<Vec<String>> {
        let recorded: HashSet<String> = self
            .db
            .collection::<Document>(c::MIGRATIONS)
            .distinct("_id", doc! {})
            .await
            .map_err(store_error)?
            .into_iter()
            .filter_map(|b| b.as_str().map(str::to_owned))
            .collect();
        let mut applied = Vec::new();
        for (name, text) in MIGRATIONS {
            if recorded.contains(*name) {
                continue;
            }
            let migration = Migration::parse(text)
                .map_err(|e| StoreError::Internal(format!("migration {name}: {e}")))?;
            self.apply(&migration).await?;
            // Another process migrating at the same time may have run the same idempotent steps;
            // the one whose upsert inserts the record is the one that applied it.
            let recorded = self
                .db
                .collection::<Document>(c::MIGRATIONS)
                .update_one(
                    doc! {"_id": *name},
                    doc! {"$setOnInsert": {"applied_at": bson::DateTime::now()}},
                )
                .upsert(true)
                .await
                .map_err(store_error)?;
            if recorded.upserted_id.is_some() {
                tracing::info!(
                    migration = name,
                    database = self.db.name(),
                    "migration applied"
                );
                applied.push((*name).to_owned());
            }
        }
        Ok(applied)
    }

    async fn apply(&self, migration: &Migration) -> StoreResult<()> {
        let existing: HashSet<String> = self
            .db
            .list_collection_names()
            .await
            .map_err(store_error)?
            .into_iter()
            .collect();
        for name in &migration.collections {
            if existing.contains(name) {
                continue;
            }
            match self.db.create_collection(name).await {
                Ok(()) => {}
                // Created meanwhile by another process: just as good.
                Err(e) if command_code(&e) == Some(NAMESPACE_EXISTS) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        for index in &migration.indexes {
            let mut keys = Document::new();
            for (field, direction) in &index.keys {
                keys.insert(field.clone(), *direction);
            }
            let model = IndexModel::builder()
                .keys(keys)
                .options(
                    IndexOptions::builder()
                        .name(index.name.clone())
                        .unique(index.unique.then_some(true))
                        .build(),
                )
                .build();
            self.collection(&index.collection)
                .create_index(model)
                .await
                .map_err(|e| match store_error(e) {
                    StoreError::Internal(cause) => StoreError::Internal(format!(
                        "cannot create index {} on {}: {cause}",
                        index.name, index.collection
                    )),
                    other => other,
                })?;
        }
        Ok(())
    }

    fn collection(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
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
        let command = bounded_write(command, self.write_concern, deadline.as_deref())?;
        // ...or here: the server is slow, and its answer must still be sent.
        fail::fail_point!("mongo::write");
        let reply = self.db.run_command(command).await.map_err(store_error)?;
        command_write_outcome(&reply)?;
        Ok(reply)
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

    /// Upserts records keyed by their `_id`, which is written as an ObjectId.
    async fn upsert_by_id<T: Serialize + Sync>(
        &self,
        collection: &str,
        rows: &[T],
        id_of_row: impl Fn(&T) -> ObjectIdHex,
    ) -> StoreResult<()> {
        for row in rows {
            let id = id_of_row(row);
            let mut d = record_to_doc(row)?;
            d.insert("_id", oid(id));
            self.upsert(collection, doc! {"_id": oid(id)}, d).await?;
        }
        Ok(())
    }

    /// The facets of every unit test `filter` selects, in one round trip (see [`facets_pipeline`]).
    async fn filter_values(&self, filter: &Document) -> StoreResult<FilterValues> {
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

/// The facets of the unit tests `filter` selects, as one document (none when nothing matches): one
/// `$group` collecting each field's distinct values in a single pass, the array fields' values then
/// merged into one set each. (A `$facet` with one `$group` per field answers the same in one round
/// trip too, but FerretDB 2 on DocumentDB runs it as six passes over the matches, ~3× slower.)
fn facets_pipeline(filter: &Document) -> Vec<Document> {
    let merged = |field: &str| {
        doc! {"$reduce": {"input": format!("${field}"), "initialValue": [], "in": {"$setUnion": ["$$value", "$$this"]}}}
    };
    vec![
        doc! {"$match": filter.clone()},
        doc! {"$group": {
            "_id": Bson::Null,
            "creators": {"$addToSet": {"org_id": "$creator.org_id", "user_id": "$creator.user_id"}},
            "tags": {"$addToSet": "$tags.key"},
            "service_ids": {"$addToSet": "$service_id"},
            "persona_ids": {"$addToSet": "$persona_id"},
            "scenario_ids": {"$addToSet": "$scenario_id"},
            "metric_ids": {"$addToSet": "$success_criterions.metric_id"},
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

// ---- errors ------------------------------------------------------------------------------------

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

/// A write command answers `ok: 1` even when its write failed: the failure is in `writeErrors`
/// (not applied) or `writeConcernError` (applied, not confirmed at the asked level in time).
fn command_write_outcome(reply: &Document) -> StoreResult<()> {
    if let Some(first) = reply
        .get_array("writeErrors")
        .ok()
        .and_then(|errors| errors.first())
        .and_then(Bson::as_document)
    {
        let code = reply_code(first);
        let message = first.get_str("errmsg").unwrap_or("write error");
        return Err(if DUPLICATE_KEY_CODES.contains(&code) {
            StoreError::Duplicate
        } else if UNAVAILABLE_CODES.contains(&code) {
            StoreError::Unavailable(format!("write not applied: {message} (code {code})"))
        } else {
            StoreError::Internal(format!("write error: {message} (code {code})"))
        });
    }
    if let Ok(wce) = reply.get_document("writeConcernError") {
        let message = wce.get_str("errmsg").unwrap_or("write concern error");
        return Err(StoreError::Unavailable(format!(
            "the write may have been applied but was not confirmed in time: {message} (code {})",
            reply_code(wce)
        )));
    }
    Ok(())
}

fn reply_code(d: &Document) -> i32 {
    match d.get("code") {
        Some(Bson::Int32(c)) => *c,
        Some(Bson::Int64(c)) => i32::try_from(*c).unwrap_or(-1),
        Some(Bson::Double(c)) => *c as i32,
        _ => -1,
    }
}

/// A count in a command reply (`n`, `nModified`), whatever number type the server used.
fn reply_count(reply: &Document, field: &str) -> i64 {
    match reply.get(field) {
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

/// Duplicate keys become [`StoreError::Duplicate`]; an unreachable or unanswering server becomes
/// [`StoreError::Unavailable`]; the rest is internal.
fn store_error(e: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&e) {
        return StoreError::Duplicate;
    }
    let unavailable = match e.kind.as_ref() {
        ErrorKind::ServerSelection { .. }
        | ErrorKind::Io(_)
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => true,
        ErrorKind::Command(ce) => {
            UNAVAILABLE_CODES.contains(&ce.code) || backend_unavailable(ce.code, &ce.message)
        }
        ErrorKind::Write(WriteFailure::WriteConcernError(wce)) => {
            UNAVAILABLE_CODES.contains(&wce.code)
        }
        _ => e.contains_label("RetryableWriteError"),
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

/// FerretDB 2 reports its PostgreSQL being restarted or unreachable as code 1 (`InternalError`)
/// with PostgreSQL's own words; those mean "not answering now", like a MongoDB shutdown, not a bug.
fn backend_unavailable(code: i32, message: &str) -> bool {
    const POSTGRES_UNAVAILABLE: &[&str] = &[
        "terminating connection due to administrator command",
        "the database system is shutting down",
        "the database system is starting up",
        "the database system is in recovery mode",
        "failed to connect to",
        "connection refused",
        "conn closed",
    ];
    code == 1 && POSTGRES_UNAVAILABLE.iter().any(|m| message.contains(m))
}

/// Code 11000, wherever the driver reports it: a command error, a write error, or one of the
/// write errors of a bulk or insert-many.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    let dup = |code: i32| DUPLICATE_KEY_CODES.contains(&code);
    match e.kind.as_ref() {
        ErrorKind::Command(ce) => dup(ce.code),
        ErrorKind::Write(WriteFailure::WriteError(we)) => dup(we.code),
        ErrorKind::InsertMany(ime) => ime
            .write_errors
            .as_ref()
            .is_some_and(|errors| errors.iter().any(|we| dup(we.code))),
        ErrorKind::BulkWrite(bwe) => bwe.write_errors.values().any(|we| dup(we.code)),
        _ => false,
    }
}

fn command_code(e: &mongodb::error::Error) -> Option<i32> {
    match e.kind.as_ref() {
        ErrorKind::Command(ce) => Some(ce.code),
        _ => None,
    }
}

fn corrupt(what: String) -> StoreError {
    StoreError::Internal(format!("corrupt unit test document: {what}"))
}

// ---- documents -----------------------------------------------------------------------------------

fn oid(id: ObjectIdHex) -> ObjectId {
    ObjectId::from_bytes(id.bytes())
}

/// An id stored either way: as an ObjectId or as its 24-hex string.
fn id_of(b: &Bson) -> Option<ObjectIdHex> {
    match b {
        Bson::ObjectId(o) => Some(ObjectIdHex::from_bytes(o.bytes())),
        Bson::String(s) => ObjectIdHex::parse(s),
        _ => None,
    }
}

/// The filter value matching `id` in whichever form another system stored it.
fn id_either_way(id: ObjectIdHex) -> Bson {
    Bson::Array(vec![Bson::ObjectId(oid(id)), Bson::String(id.to_hex())])
}

fn ids_either_way(ids: &[ObjectIdHex]) -> Bson {
    Bson::Array(
        ids.iter()
            .flat_map(|id| [Bson::ObjectId(oid(*id)), Bson::String(id.to_hex())])
            .collect(),
    )
}

fn datetime(t: Timestamp) -> bson::DateTime {
    bson::DateTime::from_millis(t.millis())
}

/// A reference record as BSON: its serde form, with `expires_at` as a BSON date.
fn record_to_doc<T: Serialize>(record: &T) -> StoreResult<Document> {
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
fn record_from_doc<T: DeserializeOwned>(collection: &str, d: Document) -> StoreResult<T> {
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
fn tag_pair(key: &str, value: Option<&str>) -> String {
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

fn user_info_doc(u: &UserInfo) -> Document {
    doc! {"org_id": &u.org_id, "user_id": &u.user_id}
}

fn user_info_of(d: &Document) -> Option<UserInfo> {
    Some(UserInfo {
        org_id: d.get_str("org_id").ok()?.to_owned(),
        user_id: d.get_str("user_id").ok()?.to_owned(),
    })
}

fn unit_test_to_doc(t: &UnitTest) -> StoreResult<Document> {
    let criteria = t
        .success_criterions
        .iter()
        .map(|sc| {
            let criterion = bson::to_bson(&sc.criterion)
                .map_err(|e| StoreError::Internal(format!("cannot encode a criterion: {e}")))?;
            Ok(Bson::Document(doc! {
                "name": &sc.name,
                "metric_id": sc.metric_id.to_hex(),
                "criterion": criterion,
            }))
        })
        .collect::<StoreResult<Vec<Bson>>>()?;
    let tags: Vec<Bson> = t
        .tags
        .iter()
        .map(|tag| {
            Bson::Document(doc! {
                "key": &tag.key,
                "value": tag.value.as_ref().map_or(Bson::Null, |v| Bson::String(v.clone())),
            })
        })
        .collect();
    let run_count = i64::try_from(t.run_count)
        .map_err(|_| StoreError::Internal(format!("run_count {} is too large", t.run_count)))?;
    Ok(doc! {
        "_id": oid(t.id),
        "org_id": &t.org_id,
        "name": &t.name,
        "name_guard": name_guard(t),
        "description": &t.description,
        "service_id": t.service_id.to_hex(),
        "service_version_set_name": &t.service_version_set_name,
        "persona_id": t.persona_id.to_hex(),
        "scenario_id": t.scenario_id.to_hex(),
        "max_interactions": i32::try_from(t.max_interactions)
            .map_or(Bson::Int64(i64::from(t.max_interactions)), Bson::Int32),
        "success_criterions": criteria,
        "run_count": run_count,
        "tags": tags,
        "tag_pairs": t
            .tags
            .iter()
            .map(|tag| tag_pair(&tag.key, tag.value.as_deref()))
            .collect::<Vec<_>>(),
        "is_deleted": t.is_deleted,
        "creator": user_info_doc(&t.creator),
        "updated_by": user_info_doc(&t.updated_by),
        "created_at": datetime(t.created_at),
        "updated_at": datetime(t.updated_at),
    })
}

fn unit_test_from_doc(d: &Document) -> StoreResult<UnitTest> {
    let id = d
        .get("_id")
        .and_then(id_of)
        .ok_or_else(|| corrupt(format!("_id of {d}")))?;
    let bad = |field: &str| corrupt(format!("{field} of {id}"));
    let string = |field: &str| d.get_str(field).map(str::to_owned).map_err(|_| bad(field));
    let ref_id = |field: &str| d.get(field).and_then(id_of).ok_or_else(|| bad(field));
    let int = |field: &str| match d.get(field) {
        Some(Bson::Int32(n)) => Ok(i64::from(*n)),
        Some(Bson::Int64(n)) => Ok(*n),
        Some(Bson::Double(f)) if f.fract() == 0.0 => Ok(*f as i64),
        _ => Err(bad(field)),
    };
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
        .get_array("success_criterions")
        .map_err(|_| bad("success_criterions"))?
        .iter()
        .map(|b| {
            let sc = b.as_document().ok_or_else(|| bad("success_criterions"))?;
            let criterion: Criterion = sc
                .get("criterion")
                .cloned()
                .and_then(|c| bson::from_bson(c).ok())
                .ok_or_else(|| bad("success_criterions.criterion"))?;
            Ok(SuccessCriterion {
                name: sc
                    .get_str("name")
                    .map_err(|_| bad("success_criterions.name"))?
                    .to_owned(),
                metric_id: sc
                    .get("metric_id")
                    .and_then(id_of)
                    .ok_or_else(|| bad("success_criterions.metric_id"))?,
                criterion,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    let tags = d
        .get_array("tags")
        .map_err(|_| bad("tags"))?
        .iter()
        .map(|b| {
            let tag = b.as_document().ok_or_else(|| bad("tags"))?;
            let value = match tag.get("value") {
                None | Some(Bson::Null) => None,
                Some(Bson::String(s)) => Some(s.clone()),
                Some(_) => return Err(bad("tags.value")),
            };
            Ok(Tag {
                key: tag.get_str("key").map_err(|_| bad("tags.key"))?.to_owned(),
                value,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(UnitTest {
        id,
        org_id: string("org_id")?,
        name: string("name")?,
        description: string("description")?,
        service_id: ref_id("service_id")?,
        service_version_set_name: string("service_version_set_name")?,
        persona_id: ref_id("persona_id")?,
        scenario_id: ref_id("scenario_id")?,
        max_interactions: u32::try_from(int("max_interactions")?)
            .map_err(|_| bad("max_interactions"))?,
        success_criterions,
        run_count: u64::try_from(int("run_count")?).map_err(|_| bad("run_count"))?,
        tags,
        is_deleted: d.get_bool("is_deleted").map_err(|_| bad("is_deleted"))?,
        creator: who("creator")?,
        updated_by: who("updated_by")?,
        created_at: time("created_at")?,
        updated_at: time("updated_at")?,
    })
}

// ---- the query model as BSON ---------------------------------------------------------------------

/// Escapes every character a regular expression gives a meaning to, so a search term is literal in
/// PCRE (MongoDB) and RE2 (FerretDB) alike.
fn escape_regex(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for ch in term.chars() {
        if matches!(
            ch,
            '\\' | '.'
                | '+'
                | '*'
                | '?'
                | '('
                | ')'
                | '|'
                | '['
                | ']'
                | '{'
                | '}'
                | '^'
                | '$'
                | '#'
                | '&'
                | '-'
                | '~'
                | '/'
        ) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn contains_ignoring_case(term: &str) -> Document {
    doc! {"$regex": escape_regex(term), "$options": "i"}
}

/// The filter of [`UnitTestFilter::matches`] as a MongoDB query.
pub fn filter_document(f: &UnitTestFilter) -> Document {
    fn any_of(ids: &[ObjectIdHex]) -> Document {
        doc! {"$in": ids.iter().map(|id| id.to_hex()).collect::<Vec<_>>()}
    }
    let mut d = doc! {"org_id": &f.org_id};
    if let Some(deleted) = f.is_deleted {
        d.insert("is_deleted", deleted);
    }
    if !f.ids.is_empty() {
        let ids: Vec<Bson> = f.ids.iter().map(|id| Bson::ObjectId(oid(*id))).collect();
        d.insert("_id", doc! {"$in": ids});
    }
    if !f.service_ids.is_empty() {
        d.insert("service_id", any_of(&f.service_ids));
    }
    if !f.persona_ids.is_empty() {
        d.insert("persona_id", any_of(&f.persona_ids));
    }
    if !f.scenario_ids.is_empty() {
        d.insert("scenario_id", any_of(&f.scenario_ids));
    }
    if !f.metric_ids.is_empty() {
        d.insert("success_criterions.metric_id", any_of(&f.metric_ids));
    }
    // Clauses that are themselves `$or`s go under one `$and`, one per creator list, tag key and term.
    let mut all: Vec<Document> = Vec::new();
    if !f.creators.is_empty() {
        // Dotted fields, not `creator: {org_id, user_id}`: embedded-document equality depends on
        // field order, which documents written elsewhere need not share.
        let creators: Vec<Document> = f
            .creators
            .iter()
            .map(|u| doc! {"creator.org_id": &u.org_id, "creator.user_id": &u.user_id})
            .collect();
        all.push(one_or_any(creators));
    }
    for (key, wanted) in &f.tags {
        // `key:*` asks only for the key. A value (or null) must sit in the same tag as the key:
        // each tag is also stored as one string, so that is one equality on a multikey index (it
        // dates from FerretDB 1.x, which had no `$elemMatch` on fields; stored documents rely on it).
        let condition = if wanted.contains(&TagValueFilter::Any) {
            doc! {"tags.key": key}
        } else {
            let pairs: Vec<String> = wanted
                .iter()
                .map(|w| match w {
                    TagValueFilter::Exact(v) => tag_pair(key, Some(v)),
                    _ => tag_pair(key, None),
                })
                .collect();
            match <[String; 1]>::try_from(pairs) {
                Ok([one]) => doc! {"tag_pairs": one},
                Err(pairs) => doc! {"tag_pairs": {"$in": pairs}},
            }
        };
        all.push(condition);
    }
    for term in &f.terms {
        all.push(doc! {"$or": [
            {"name": contains_ignoring_case(term)},
            {"description": contains_ignoring_case(term)},
        ]});
    }
    if !all.is_empty() {
        d.insert("$and", all);
    }
    d
}

/// One condition as is, several as an `$or`.
fn one_or_any(mut conditions: Vec<Document>) -> Document {
    if conditions.len() == 1 {
        conditions.remove(0)
    } else {
        doc! {"$or": conditions}
    }
}

/// The order of [`crate::domain::query::compare`]: the requested keys (a repeated field counts
/// once, its first time, as in `compare`), then `_id` ascending.
pub fn sort_document(sort: &[SortKey]) -> Document {
    let mut d = Document::new();
    for key in sort {
        let field = match key.field {
            SortField::UpdatedAt => "updated_at",
            SortField::CreatedAt => "created_at",
            SortField::Name => "name",
        };
        if !d.contains_key(field) {
            d.insert(field, if key.descending { -1 } else { 1 });
        }
    }
    d.insert("_id", 1);
    d
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

    async fn organization(&self, org_id: &str) -> StoreResult<Option<Organization>> {
        self.find_record(c::ORGANIZATION, doc! {"org_id": org_id})
            .await
    }

    async fn user(&self, org_id: &str, user_id: &str) -> StoreResult<Option<User>> {
        self.find_record(c::USER, doc! {"org_id": org_id, "user_id": user_id})
            .await
    }

    async fn role(&self, org_id: &str, name: &str) -> StoreResult<Option<Role>> {
        self.find_record(c::ROLE, doc! {"org_id": org_id, "name": name})
            .await
    }

    async fn api_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<ApiKey>> {
        self.find_record(c::API_KEY, doc! {"org_id": org_id, "key_id": key_id})
            .await
    }

    async fn service(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        self.find_record(
            c::SERVICE,
            doc! {"_id": {"$in": id_either_way(id)}, "org_id": org_id},
        )
        .await
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &str,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        let collection = match kind {
            NamedKind::Persona => c::PERSONA,
            NamedKind::Scenario => c::SCENARIO,
        };
        self.find_record(
            collection,
            doc! {"_id": {"$in": id_either_way(id)}, "org_id": org_id},
        )
        .await
    }

    async fn metrics(&self, org_id: &str, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.find_records(
            c::METRIC,
            doc! {"_id": {"$in": ids_either_way(ids)}, "org_id": org_id},
        )
        .await
    }

    async fn unit_test_in_live_set(
        &self,
        org_id: &str,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        let found = self
            .collection(c::UNIT_TEST_SET)
            .find_one(doc! {
                "org_id": org_id,
                "is_deleted": {"$ne": true},
                "unit_test_runs.unit_test_id": {"$in": id_either_way(unit_test_id)},
            })
            .projection(doc! {"_id": 1})
            .await
            .map_err(store_error)?;
        Ok(found.is_some())
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        self.write_unit_test_command(doc! {
            "insert": c::UNIT_TEST,
            "documents": [unit_test_to_doc(doc)?],
        })
        .await?;
        Ok(())
    }

    async fn unit_test(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        self.collection(c::UNIT_TEST)
            .find_one(doc! {"_id": oid(id), "org_id": org_id})
            .await
            .map_err(store_error)?
            .map(|d| unit_test_from_doc(&d))
            .transpose()
    }

    async fn replace_unit_test(&self, previous: &UnitTest, next: &UnitTest) -> StoreResult<bool> {
        // MongoDB (and FerretDB 2 on DocumentDB) applies a filtered update to one document
        // atomically, so the filter on the previous `updated_at` settles races between writers,
        // across processes. Only the changed fields are written, with `updated_at` through `$max`
        // so it only moves forward.
        let before = unit_test_to_doc(previous)?;
        let after = unit_test_to_doc(next)?;
        let mut changed = Document::new();
        for (key, value) in &after {
            if key != "updated_at" && before.get(key) != Some(value) {
                changed.insert(key.clone(), value.clone());
            }
        }
        let mut update = doc! {"$max": {"updated_at": datetime(next.updated_at)}};
        if !changed.is_empty() {
            update.insert("$set", changed);
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
        Ok(reply_count(&reply, "n") == 1)
    }

    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage> {
        let filter = filter_document(&query.filter);
        let page = async {
            // One more than asked tells whether anything follows (and makes `limit: 0` a real query).
            let mut cursor = self
                .collection(c::UNIT_TEST)
                .find(filter.clone())
                .sort(sort_document(&query.sort))
                .skip(query.offset.min(i64::MAX as u64))
                .limit(i64::from(query.limit) + 1)
                // The whole page in the first batch: no getMore round trip (the default first batch
                // is 101 documents).
                .batch_size(query.limit + 1)
                .await
                .map_err(store_error)?;
            let mut items = Vec::new();
            while cursor.advance().await.map_err(store_error)? {
                let d = cursor.deserialize_current().map_err(store_error)?;
                items.push(std::sync::Arc::new(unit_test_from_doc(&d)?));
            }
            let has_more = items.len() > query.limit as usize;
            items.truncate(query.limit as usize);
            Ok::<_, StoreError>((items, has_more))
        };
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
        for o in &r.organizations {
            self.upsert(
                c::ORGANIZATION,
                doc! {"org_id": &o.org_id},
                record_to_doc(o)?,
            )
            .await?;
        }
        for x in &r.roles {
            self.upsert(
                c::ROLE,
                doc! {"org_id": &x.org_id, "name": &x.name},
                record_to_doc(x)?,
            )
            .await?;
        }
        for u in &r.users {
            self.upsert(
                c::USER,
                doc! {"org_id": &u.org_id, "user_id": &u.user_id},
                record_to_doc(u)?,
            )
            .await?;
        }
        for k in &r.api_keys {
            self.upsert(
                c::API_KEY,
                doc! {"org_id": &k.org_id, "key_id": &k.key_id},
                record_to_doc(k)?,
            )
            .await?;
        }
        self.upsert_by_id(c::SERVICE, &r.services, |s| s.id).await?;
        self.upsert_by_id(c::PERSONA, &r.personas, |s| s.id).await?;
        self.upsert_by_id(c::SCENARIO, &r.scenarios, |s| s.id)
            .await?;
        self.upsert_by_id(c::METRIC, &r.metrics, |s| s.id).await?;
        self.upsert_by_id(c::UNIT_TEST_SET, &r.unit_test_sets, |s| s.id)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn ping(&self) -> StoreResult<()> {
        self.detached("ping", |db| async move { db.ping().await })
            .await
    }

    async fn shared_token_secret(&self, proposal: &str) -> StoreResult<Option<String>> {
        let proposal = proposal.to_owned();
        self.detached("shared_token_secret", |db| async move {
            db.shared_token_secret(&proposal).await
        })
        .await
    }

    async fn organization(&self, org_id: &str) -> StoreResult<Option<Organization>> {
        let org_id = org_id.to_owned();
        self.detached("organization", |db| async move {
            db.organization(&org_id).await
        })
        .await
    }

    async fn user(&self, org_id: &str, user_id: &str) -> StoreResult<Option<User>> {
        let (org_id, user_id) = (org_id.to_owned(), user_id.to_owned());
        self.detached("user", |db| async move { db.user(&org_id, &user_id).await })
            .await
    }

    async fn role(&self, org_id: &str, name: &str) -> StoreResult<Option<Role>> {
        let (org_id, name) = (org_id.to_owned(), name.to_owned());
        self.detached("role", |db| async move { db.role(&org_id, &name).await })
            .await
    }

    async fn api_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<ApiKey>> {
        let (org_id, key_id) = (org_id.to_owned(), key_id.to_owned());
        self.detached(
            "api_key",
            |db| async move { db.api_key(&org_id, &key_id).await },
        )
        .await
    }

    async fn service(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        let org_id = org_id.to_owned();
        self.detached("service", |db| async move { db.service(&org_id, id).await })
            .await
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &str,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        let org_id = org_id.to_owned();
        self.detached(
            "named",
            |db| async move { db.named(kind, &org_id, id).await },
        )
        .await
    }

    async fn metrics(&self, org_id: &str, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        let (org_id, ids) = (org_id.to_owned(), ids.to_vec());
        self.detached(
            "metrics",
            |db| async move { db.metrics(&org_id, &ids).await },
        )
        .await
    }

    async fn unit_test_in_live_set(
        &self,
        org_id: &str,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        let org_id = org_id.to_owned();
        self.detached("unit_test_in_live_set", |db| async move {
            db.unit_test_in_live_set(&org_id, unit_test_id).await
        })
        .await
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        let doc = doc.clone();
        self.detached("insert_unit_test", |db| async move {
            db.insert_unit_test(&doc).await
        })
        .await
    }

    async fn unit_test(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        let org_id = org_id.to_owned();
        self.detached(
            "unit_test",
            |db| async move { db.unit_test(&org_id, id).await },
        )
        .await
    }

    async fn replace_unit_test(&self, previous: &UnitTest, next: &UnitTest) -> StoreResult<bool> {
        let (previous, next) = (previous.clone(), next.clone());
        self.detached("replace_unit_test", |db| async move {
            db.replace_unit_test(&previous, &next).await
        })
        .await
    }

    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage> {
        let query = query.clone();
        self.detached("list_unit_tests", |db| async move {
            db.list_unit_tests(&query).await
        })
        .await
    }

    async fn upsert_records(&self, records: &Records) -> StoreResult<()> {
        let records = records.clone();
        self.detached("upsert_records", |db| async move {
            db.upsert_records(&records).await
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query_string::QueryParams;
    use crate::service::{
        list_query_for as parse_list_query, search_query_for as parse_search_query,
    };
    use crate::store::testgen::{id, sample};

    fn list(query: &str) -> ListQuery {
        parse_list_query("acme", &QueryParams::parse(Some(query))).expect("valid query")
    }

    fn search(text: &str) -> ListQuery {
        let raw = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", text)
            .finish();
        parse_search_query("acme", &QueryParams::parse(Some(&raw))).expect("valid search")
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
    fn an_empty_filter_selects_the_org() {
        assert_eq!(filter_document(&list("").filter), doc! {"org_id": "acme"});
    }

    #[test]
    fn id_filters_become_in_lists_and_deleted_an_equality() {
        let q = format!(
            "id={}&service_id={}&service_id={}&persona_id={}&scenario_id={}&metric_id={}&is_deleted=false",
            id(1),
            id(2),
            id(9),
            id(3),
            id(4),
            id(5)
        );
        assert_eq!(
            filter_document(&list(&q).filter),
            doc! {
                "org_id": "acme",
                "is_deleted": false,
                "_id": {"$in": [oid(id(1))]},
                "service_id": {"$in": [id(2).to_hex(), id(9).to_hex()]},
                "persona_id": {"$in": [id(3).to_hex()]},
                "scenario_id": {"$in": [id(4).to_hex()]},
                "success_criterions.metric_id": {"$in": [id(5).to_hex()]},
            }
        );
    }

    #[test]
    fn creators_match_on_dotted_fields() {
        assert_eq!(
            filter_document(&list("creator=acme,alice").filter),
            doc! {"org_id": "acme", "$and": [{"creator.org_id": "acme", "creator.user_id": "alice"}]}
        );
        assert_eq!(
            filter_document(&list("creator=acme,alice&creator=globex,gary").filter),
            doc! {"org_id": "acme", "$and": [{"$or": [
                {"creator.org_id": "acme", "creator.user_id": "alice"},
                {"creator.org_id": "globex", "creator.user_id": "gary"},
            ]}]}
        );
    }

    #[test]
    fn tag_filters_or_within_a_key_and_and_across_keys() {
        assert_eq!(
            filter_document(
                &list("tag=team:growth&tag=team:core&tag=flaky:&tag=owner:x&tag=any:1&tag=any:*")
                    .filter
            ),
            doc! {"org_id": "acme", "$and": [
                {"tags.key": "any"},
                {"tag_pairs": r#"["flaky",null]"#},
                {"tag_pairs": r#"["owner","x"]"#},
                {"tag_pairs": {"$in": [r#"["team","growth"]"#, r#"["team","core"]"#]}},
            ]}
        );
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

    #[test]
    fn search_terms_are_escaped_case_insensitive_regexes_on_name_or_description() {
        let f = search("Sign (v2.0)").filter;
        let either = |pattern: &str| {
            doc! {"$or": [
                {"name": {"$regex": pattern, "$options": "i"}},
                {"description": {"$regex": pattern, "$options": "i"}},
            ]}
        };
        assert_eq!(
            filter_document(&f),
            doc! {"org_id": "acme", "is_deleted": false, "$and": [either("sign"), either(r"\(v2\.0\)")]}
        );
    }

    #[test]
    fn every_regex_metacharacter_is_escaped() {
        assert_eq!(
            escape_regex(r"a.b*c+d?e(f)g[h]i{j}k|l^m$n\o-p#q&r~s/t"),
            r"a\.b\*c\+d\?e\(f\)g\[h\]i\{j\}k\|l\^m\$n\\o\-p\#q\&r\~s\/t"
        );
        assert_eq!(escape_regex("über_ß"), "über_ß");
    }

    #[test]
    fn sort_keeps_the_first_of_repeated_fields_then_breaks_ties_on_id() {
        assert_eq!(sort_document(&list("").sort), doc! {"_id": 1});
        assert_eq!(
            sort_document(&list("sort_by=-updated_at&sort_by=name&sort_by=%2Bupdated_at").sort),
            doc! {"updated_at": -1, "name": 1, "_id": 1}
        );
        assert_eq!(
            sort_document(&search("x").sort),
            doc! {"updated_at": -1, "_id": 1}
        );
    }

    #[test]
    fn a_restarting_postgres_behind_ferretdb_is_unavailable_not_a_bug() {
        assert!(backend_unavailable(
            1,
            "terminating connection due to administrator command"
        ));
        assert!(backend_unavailable(
            1,
            "the database system is shutting down"
        ));
        assert!(!backend_unavailable(1, "invalid $regex"));
        assert!(!backend_unavailable(
            2,
            "the database system is shutting down"
        ));
    }

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
    fn write_command_replies_tell_duplicates_and_unconfirmed_writes_apart() {
        assert!(command_write_outcome(&doc! {"ok": 1, "n": 1}).is_ok());
        let duplicate =
            doc! {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "dup"}]};
        assert!(matches!(
            command_write_outcome(&duplicate),
            Err(StoreError::Duplicate)
        ));
        let timed_out = doc! {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 50, "errmsg": "MaxTimeMSExpired"}]};
        assert!(matches!(
            command_write_outcome(&timed_out),
            Err(StoreError::Unavailable(_))
        ));
        let unconfirmed = doc! {"ok": 1, "n": 1, "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"}};
        match command_write_outcome(&unconfirmed) {
            Err(StoreError::Unavailable(m)) => assert!(m.contains("may have been applied"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(reply_count(&doc! {"n": 1_i64}, "n"), 1);
        assert_eq!(reply_count(&doc! {"n": 1.0}, "n"), 1);
    }

    #[test]
    fn bad_database_names_are_refused_up_front() {
        for bad in ["", "a.b", "a/b", "has space", &"x".repeat(64)] {
            assert!(check_database_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_database_name("simtest_5f2c-9a").is_ok());
    }

    /// Against a live MongoDB or FerretDB (`SIMTEST_TEST_MONGODB_URI`), in a database of its own that
    /// is dropped afterwards: the same unit tests in both stores give the same answers to the same
    /// queries. Without the variable the test says SKIPPED and passes.
    mod live {
        use std::sync::Arc;

        use rand::SeedableRng;
        use rand::rngs::StdRng;

        use super::*;
        use crate::domain::query::FilterValues;
        use crate::domain::query_string::QueryParams;
        use crate::service::{
            list_query_for as parse_list_query, search_query_for as parse_search_query,
        };
        use crate::store::embedded::EmbeddedStore;
        use crate::store::testgen::{random_query, random_unit_test};
        use crate::store::{UnitTestSet, records::UnitTestRun};

        async fn mongo() -> Option<MongoStore> {
            let Ok(uri) = std::env::var("SIMTEST_TEST_MONGODB_URI") else {
                static SAID: std::sync::Once = std::sync::Once::new();
                // A direct write: the test harness captures `eprintln!`.
                SAID.call_once(|| {
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "SKIPPED: MongoDB store tests (set SIMTEST_TEST_MONGODB_URI)"
                    );
                });
                return None;
            };
            let database = format!("simtest_unit_{}", uuid::Uuid::new_v4().simple());
            let store = MongoStore::connect(&uri, &database, MongoWriteConcern::Majority)
                .await
                .expect("connect");
            store.migrate().await.expect("migrate");
            Some(store)
        }

        fn summary(p: &ListPage) -> (Vec<(String, ObjectIdHex)>, bool, Option<FilterValues>) {
            (
                p.items.iter().map(|t| (t.name.clone(), t.id)).collect(),
                p.has_more,
                p.filter_values.clone(),
            )
        }

        #[tokio::test]
        async fn answers_match_the_embedded_store() {
            let Some(mongo) = mongo().await else { return };
            let dir = tempfile::tempdir().unwrap();
            let embedded = EmbeddedStore::open(dir.path()).unwrap();
            let mut rng = StdRng::seed_from_u64(7);
            let docs: Vec<UnitTest> = (0..150).map(|n| random_unit_test(&mut rng, n)).collect();
            for d in &docs {
                embedded.insert_unit_test(d).await.unwrap();
                mongo.insert_unit_test(d).await.unwrap();
            }
            let ids: Vec<ObjectIdHex> = docs.iter().map(|d| d.id).collect();
            let mut non_empty = 0;
            for round in 0..200 {
                let q = random_query(&mut rng, &ids);
                let want = embedded.list_unit_tests(&q).await.unwrap();
                let got = mongo.list_unit_tests(&q).await.unwrap();
                assert_eq!(
                    got.items,
                    want.items,
                    "round {round}: {q:?}\n{:?}\nvs\n{:?}",
                    summary(&got),
                    summary(&want)
                );
                assert_eq!(got.has_more, want.has_more, "round {round}: {q:?}");
                assert_eq!(
                    got.filter_values, want.filter_values,
                    "round {round}: {q:?}"
                );
                non_empty += usize::from(!want.items.is_empty());
            }
            assert!(
                non_empty > 50,
                "queries too selective to prove much: {non_empty}"
            );
            mongo.drop_database().await.unwrap();
        }

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
            assert!(!mongo.replace_unit_test(&stale, &next).await.unwrap());
            assert!(mongo.replace_unit_test(&first, &next).await.unwrap());
            assert_eq!(
                mongo.unit_test("acme", first.id).await.unwrap(),
                Some(next.clone())
            );
            first = next.clone();
            next.is_deleted = true;
            next.updated_at = Timestamp::from_millis(first.updated_at.millis() + 1);
            assert!(mongo.replace_unit_test(&first, &next).await.unwrap());
            assert!(
                !mongo.replace_unit_test(&next, &next).await.unwrap(),
                "deleted stays deleted"
            );
            assert_eq!(
                mongo.unit_test("globex", first.id).await.unwrap(),
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
            assert_eq!(mongo.service("globex", s.id).await.unwrap(), None);
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
            assert_eq!(mongo.metrics("acme", &ids).await.unwrap().len(), ids.len());

            // Written by another system: string id, no flags, extra fields.
            mongo
                .collection(c::SERVICE)
                .insert_one(doc! {"_id": id(77).to_hex(), "org_id": "acme", "version_sets": {"v": 1}, "extra": true})
                .await
                .unwrap();
            let other = mongo
                .service("acme", id(77))
                .await
                .unwrap()
                .expect("found by hex _id");
            assert!(other.is_live());

            let set = UnitTestSet {
                id: id(50),
                org_id: "acme".into(),
                name: "nightly".into(),
                unit_test_runs: vec![UnitTestRun {
                    unit_test_id: id(1),
                    run_count: 2,
                }],
                is_deleted: false,
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
            assert!(mongo.unit_test_in_live_set("acme", id(1)).await.unwrap());
            assert!(
                !mongo.unit_test_in_live_set("acme", id(2)).await.unwrap(),
                "only in a deleted set"
            );
            assert!(!mongo.unit_test_in_live_set("globex", id(1)).await.unwrap());
            mongo
                .collection(c::UNIT_TEST_SET)
                .insert_one(doc! {"_id": ObjectId::new(), "org_id": "acme", "unit_test_runs": [{"unit_test_id": oid(id(3))}]})
                .await
                .unwrap();
            assert!(
                mongo.unit_test_in_live_set("acme", id(3)).await.unwrap(),
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
                parse_list_query("acme", &QueryParams::parse(Some(raw))).expect("valid query")
            };
            let s = |raw: &str| {
                parse_search_query("acme", &QueryParams::parse(Some(raw))).expect("valid search")
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
                        format!("org{}", n % 97)
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
                "org1",
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
        fn plan_nodes(explain: &Document) -> Vec<String> {
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

        fn assert_indexed(what: &str, explain: &Document) {
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
                store.unit_test("acme", id(1)).await,
                Err(StoreError::Unavailable(_))
            ));
            assert!(started.elapsed() < Duration::from_secs(5));
        }
    }
}
