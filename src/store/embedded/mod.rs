//! The embedded store: one redb file in the data dir. ACID transactions, fsync on every commit
//! (`Durability::Immediate`, redb's default), so an acknowledged write survives a crash.
//!
//! Writes share commits (group commit): one writer thread takes every write queued while it was
//! busy and applies them in one redb transaction, each checked against the state the ones before it
//! left (a taken name, a stale version), so a refused write changes nothing and fails no other.
//! Each write is answered once its batch is committed, so concurrent writers share one fsync
//! instead of queueing for one each; a lone write is committed at once (no timer).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::deadline::Deadline;
use super::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreError, StoreResult, User, Written,
};
use crate::domain::idempotency::{Claim, KeyRecord};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::search::search_text;
use crate::domain::unit_test_set::{SetPage, UnitTestSet, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, OrgId, Timestamp, UnitTest, UserId};
use catalog::Catalog;
use rows::RowRecord;

mod catalog;
mod grams;
mod history;
mod keys;
mod rows;
mod sets;
mod snapshot;

type Id = [u8; 12];
type DocCache = quick_cache::sync::Cache<ObjectIdHex, CachedDoc, ByBytes>;

/// A decoded unit test in [`DocCache`], with its weight taken once.
#[derive(Clone)]
struct CachedDoc {
    doc: Arc<UnitTest>,
    bytes: u64,
}

impl CachedDoc {
    fn new(doc: Arc<UnitTest>) -> Self {
        let bytes = doc.approx_bytes() as u64;
        Self { doc, bytes }
    }
}

#[derive(Clone)]
struct ByBytes;

impl quick_cache::Weighter<ObjectIdHex, CachedDoc> for ByBytes {
    fn weight(&self, _: &ObjectIdHex, cached: &CachedDoc) -> u64 {
        cached.bytes.max(1)
    }
}

const ORGANIZATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("organization");
const USERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("user");
const ROLES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("role");
const API_KEYS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("api_key");
const SERVICES: TableDefinition<(&str, Id), &[u8]> = TableDefinition::new("service");
const PERSONAS: TableDefinition<(&str, Id), &[u8]> = TableDefinition::new("simulation_persona");
const SCENARIOS: TableDefinition<(&str, Id), &[u8]> = TableDefinition::new("simulation_scenario");
const METRICS: TableDefinition<(&str, Id), &[u8]> = TableDefinition::new("metric");
const UNIT_TEST_SETS: TableDefinition<(&str, Id), &[u8]> =
    TableDefinition::new("simulation_unit_test_set");
const UNIT_TESTS: TableDefinition<(&str, Id), &[u8]> = TableDefinition::new("simulation_unit_test");
/// What the catalog needs of each unit test ([`RowRecord`]), written in the same transaction as
/// the document, so the two always agree; start-up reads these instead of the documents.
const UNIT_TEST_ROWS: TableDefinition<(&str, Id), &[u8]> =
    TableDefinition::new("simulation_unit_test_row");
/// The store's own bookkeeping. [`ROWS_COMPLETE`] holds the [`RowRecord`] version once
/// [`UNIT_TEST_ROWS`] holds a row for every unit test (a store written before rows existed has
/// none until its first start with them).
const META: TableDefinition<&str, u64> = TableDefinition::new("simtest_meta");
const ROWS_COMPLETE: &str = "unit_test_rows_complete";
/// The mark of the catalog's snapshot ([`snapshot`]) while nothing has been written since it was
/// taken: every write transaction removes it.
const CATALOG_SNAPSHOT: &str = "catalog_snapshot_mark";
/// Active unit test names: (org, name) → id. Holds exactly the unit tests with `is_deleted: false`.
const ACTIVE_NAMES: TableDefinition<(&str, &str), Id> =
    TableDefinition::new("simulation_unit_test_active_name");

const FILE_NAME: &str = "simtest.redb";

/// redb's page cache. Its default (1 GiB) would hold the whole file after a few deep pages; the
/// queries run on the catalog, so the cache only serves the documents of a page and the small
/// reference tables, and the OS page cache does the rest.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How many bytes of decoded unit tests are kept (by [`UnitTest::approx_bytes`]; a few thousand
/// of ~1 KiB): the pages people keep asking for (the first ones, the newest) are then served
/// without redb or JSON decoding. Budgeted in bytes, not entries: a unit test may be up to the
/// request body limit, so a count of entries would bound nothing.
const DOC_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// At most this many writes share a commit: enough to cover every client of a busy server, small
/// enough that a batch's transaction stays a few milliseconds.
const MAX_BATCH: usize = 256;

/// Writes waiting for the writer; when full, writers wait to queue (backpressure, not memory).
const QUEUE: usize = 4 * MAX_BATCH;

/// Counter of redb write transactions committed by the writer.
pub const COMMITS_METRIC: &str = "simtest_embedded_commits_total";
/// Counter of writes committed (creates, updates, deletes, seed upserts); divided by
/// [`COMMITS_METRIC`] it gives the writes per commit.
pub const WRITES_METRIC: &str = "simtest_embedded_writes_total";

pub struct EmbeddedStore {
    db: Arc<Database>,
    /// The data dir: the catalog's snapshot is saved there on closing.
    dir: std::path::PathBuf,
    /// The catalog was loaded from its snapshot.
    from_snapshot: bool,
    /// A batch of writes panicked: the catalog may lack a committed write.
    writer_panicked: Arc<AtomicBool>,
    /// Recently read or written unit tests by id. An entry is used only when its org and version
    /// are those the catalog planned, so a stale or overwritten entry is a miss, never an error.
    docs: Arc<DocCache>,
    /// The unit tests' index; lists and searches are answered from it. Only the writer changes
    /// it, after each commit, so it sees the writes in the order redb committed them and never
    /// holds anything redb does not.
    catalog: Arc<RwLock<Catalog>>,
    /// The unit test sets, held whole (see [`sets::Sets`]); changed only by the writer.
    sets: Arc<RwLock<sets::Sets>>,
    /// The queue of the writer thread (`None` only while dropping).
    writes: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
}

impl Drop for EmbeddedStore {
    /// Closes the queue and waits for the writer to finish what was queued, so the file is closed
    /// when the store is gone (it can be opened again at once, e.g. by a restart in a test).
    fn drop(&mut self) {
        self.writes.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
            self.save_catalog();
        }
    }
}

impl EmbeddedStore {
    /// Saves the catalog's snapshot once the writer has stopped (see [`snapshot`]): the file
    /// first, then its mark; a failure only costs the next start its speed.
    fn save_catalog(&self) {
        if self.snapshot_holds_the_store() {
            return;
        }
        // A batch that panicked may have been committed without the catalog taking it in; the
        // next start then reads the rows.
        if self.writer_panicked.load(Ordering::Relaxed) {
            tracing::warn!("the unit test catalog is not saved: a write failed part-way");
            return;
        }
        let started = Instant::now();
        let mark: u64 = rand::random();
        // Poisoned: a panic while changing it may have left it half changed.
        let Ok(catalog) = self.catalog.read() else {
            tracing::warn!("the unit test catalog is not saved: a change to it failed");
            return;
        };
        let saved = snapshot::write(&self.dir, mark, &catalog);
        drop(catalog);
        let marked = saved.map_err(|e| e.to_string()).and_then(|count| {
            mark_snapshot(&self.db, mark)
                .map(|()| count)
                .map_err(|failure| failure.into_store_error().to_string())
        });
        match marked {
            Ok(count) => tracing::info!(
                unit_tests = count,
                ms = started.elapsed().as_millis() as u64,
                "unit test catalog saved for the next start"
            ),
            Err(error) => tracing::warn!(%error, "cannot save the unit test catalog"),
        }
    }

    /// Whether the snapshot the catalog was loaded from still holds what the store does: its
    /// mark is there (nothing was written since) and so is its file. Closing then need not save
    /// it again.
    fn snapshot_holds_the_store(&self) -> bool {
        if !self.from_snapshot {
            return false;
        }
        let marked = (self.db.begin_read().map_err(Failure::from))
            .and_then(|txn| snapshot_mark(&txn))
            .is_ok_and(|mark| mark.is_some());
        marked && self.dir.join(snapshot::FILE_NAME).exists()
    }
}

/// Why the embedded store could not be opened, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create data dir {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("data dir {0} is in use by another simtest process (stop it first)")]
    InUse(String),
    #[error("cannot open the store in {path}: {source}")]
    Open { path: String, source: redb::Error },
    #[error("cannot read the unit tests in {path}: {detail}")]
    Corrupt { path: String, detail: String },
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Self, OpenError> {
        let shown = data_dir.display().to_string();
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(data_dir)
            .map_err(|source| OpenError::CreateDir {
                path: shown.clone(),
                source,
            })?;
        // The store holds API key hashes: the dir is the owner's alone (so the file is never
        // reachable by others, even in the moment before its own mode is set), and so is the file.
        make_private(data_dir, 0o700).map_err(|source| OpenError::CreateDir {
            path: shown.clone(),
            source,
        })?;
        // A new store file is created owner-only; redb then initialises the empty file.
        let file = data_dir.join(FILE_NAME);
        let created = std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new().write(true).create_new(true),
            0o600,
        )
        .open(&file);
        if let Err(source) = created.as_ref().map(|_| ())
            && source.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(OpenError::Open {
                path: shown,
                source: std::io::Error::new(source.kind(), source.to_string()).into(),
            });
        }
        drop(created);
        let db = match Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&file)
        {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => return Err(OpenError::InUse(shown)),
            Err(e) => {
                return Err(OpenError::Open {
                    path: shown,
                    source: e.into(),
                });
            }
        };
        make_private(&file, 0o600).map_err(|source| OpenError::Open {
            path: shown.clone(),
            source: source.into(),
        })?;
        create_tables(&db).map_err(|source| OpenError::Open {
            path: shown.clone(),
            source,
        })?;
        let (catalog, from_snapshot) =
            load_catalog(&db, data_dir).map_err(|failure| OpenError::Corrupt {
                path: shown.clone(),
                detail: failure.into_store_error().to_string(),
            })?;
        let sets = sets::prepare(&db)
            .and_then(|()| keys::create_table(&db))
            .and_then(|()| history::create_table(&db))
            .and_then(|()| sets::Sets::load(&db))
            .map_err(|failure| OpenError::Corrupt {
                path: shown.clone(),
                detail: failure.into_store_error().to_string(),
            })?;
        let sets = Arc::new(RwLock::new(sets));
        let db = Arc::new(db);
        let docs = Arc::new(DocCache::with_weighter(
            (DOC_CACHE_BYTES / 1024) as usize,
            DOC_CACHE_BYTES,
            ByBytes,
        ));
        let catalog = Arc::new(RwLock::new(catalog));
        index_in_background(&catalog);
        let (writes, queue) = mpsc::channel(QUEUE);
        let writer_panicked = Arc::new(AtomicBool::new(false));
        let writer = Writer {
            db: db.clone(),
            docs: docs.clone(),
            catalog: catalog.clone(),
            sets: sets.clone(),
            panicked: writer_panicked.clone(),
        };
        let writer = std::thread::Builder::new()
            .name("simtest-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| OpenError::Open {
                path: shown.clone(),
                source: e.into(),
            })?;
        Ok(Self {
            db,
            dir: data_dir.to_owned(),
            from_snapshot,
            writer_panicked,
            docs,
            catalog,
            sets,
            writes: Some(writes),
            writer: Some(writer),
        })
    }

    /// Whether the search grams of every unit test are built (searches are answered either way,
    /// by reading the texts until then).
    pub fn search_index_built(&self) -> bool {
        self.catalog
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .grams_built()
    }

    /// Queues `op` for the writer and waits for its answer: [`Written::Done`] once it is
    /// committed, another outcome (or [`StoreError::Duplicate`]) when it was refused and nothing
    /// was written.
    async fn write(&self, op: Op) -> StoreResult<Written> {
        let (answer, answered) = oneshot::channel();
        let pending = Pending {
            op,
            // The request's deadline goes along to the writer (see `store::deadline`).
            deadline: Deadline::current(),
            answer,
        };
        let stopped = || StoreError::Internal("the store's writer stopped".into());
        let writes = self.writes.as_ref().ok_or_else(stopped)?;
        writes.send(pending).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Runs a redb read on the calling thread. Reads take microseconds (their pages come from
    /// redb's cache or the OS page cache); a hop to the blocking pool for each cost more than the
    /// read itself (two context switches: half the CPU of a list request under load, by `perf`).
    fn read<T>(&self, work: impl FnOnce(&Database) -> Result<T, Failure>) -> StoreResult<T> {
        work(&self.db).map_err(Failure::into_store_error)
    }
}

/// A write waiting in the writer's queue.
struct Pending {
    op: Op,
    deadline: Option<Arc<Deadline>>,
    /// `Ok(Written::Done)`: committed; anything else: refused or failed, nothing written.
    answer: oneshot::Sender<StoreResult<Written>>,
}

/// What a write asks for.
enum Op {
    /// A new unit test; refused when an active one of its org has its name.
    Insert(UnitTest),
    /// New unit tests, all or none (refused when one's name is taken, also by one before it).
    InsertAll(Vec<UnitTest>),
    /// `next` replaces the stored unit test if that is active and still at `expected`; refused
    /// otherwise. `next.is_deleted` frees the name, and is refused while a live set lists it.
    Replace { expected: Timestamp, next: UnitTest },
    /// A new set (see [`sets::decide_insert`]).
    InsertSet(UnitTestSet),
    /// `next` replaces the stored set (see [`sets::decide_replace`]).
    ReplaceSet {
        expected: Timestamp,
        next: UnitTestSet,
    },
    /// A hard delete: refused unless the unit test is deleted and no set (deleted or not) lists it.
    Purge { org_id: OrgId, id: ObjectIdHex },
    /// Seed records, upserted by their natural keys; never refused.
    Records(Box<Records>),
}

/// A write decided against the batch's state so far, not yet applied.
enum Change<'a> {
    Insert(&'a UnitTest, Vec<u8>),
    InsertAll(Vec<(&'a UnitTest, Vec<u8>)>),
    /// The document, its bytes, and the name it frees (a delete).
    Replace(&'a UnitTest, Vec<u8>, Option<String>),
    Set(Box<sets::SetChange<'a>>),
    Purge(&'a OrgId, ObjectIdHex),
    Records(&'a Records),
}

/// What the writer makes of one write: a change to apply, or its answer without writing.
enum Decision<'a> {
    Write(Change<'a>),
    Refuse(StoreResult<Written>),
}

/// Why a batch did not commit as it was.
enum BatchFailure {
    /// Applying the write at this index failed part-way: the transaction is dropped (nothing of
    /// it written) and the batch is tried again without that write.
    Write(usize, Failure),
    /// The transaction could not begin or commit: no write of the batch was stored.
    Commit(Failure),
}

/// The one thread that writes: it owns redb's write transactions and the catalog's updates.
struct Writer {
    db: Arc<Database>,
    docs: Arc<DocCache>,
    catalog: Arc<RwLock<Catalog>>,
    sets: Arc<RwLock<sets::Sets>>,
    /// Set when a batch panicked (see [`EmbeddedStore::save_catalog`]).
    panicked: Arc<AtomicBool>,
}

impl Writer {
    /// Takes whatever is queued when it becomes free (at most [`MAX_BATCH`]), writes it as one
    /// batch, and so on until the store is dropped and the queue is empty.
    fn run(self, mut queue: mpsc::Receiver<Pending>) {
        while let Some(first) = queue.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH
                && let Ok(next) = queue.try_recv()
            {
                batch.push(next);
            }
            // A bug in one batch must not stop every later write: its writers are answered with
            // an error (their answer senders are dropped) and the writer goes on.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.write_batch(batch);
            }));
            if outcome.is_err() {
                self.panicked.store(true, Ordering::Relaxed);
                tracing::error!("the store's writer panicked while writing a batch");
            }
        }
    }

    /// Commits `batch` and answers each of its writes. A write that fails part-way is answered with
    /// its error and the rest are written again without it.
    fn write_batch(&self, mut batch: Vec<Pending>) {
        while !batch.is_empty() {
            match self.commit(&batch) {
                Ok(answers) => {
                    self.committed(batch, answers);
                    return;
                }
                Err(BatchFailure::Write(index, failure)) => {
                    let failed = batch.remove(index);
                    let _ = failed.answer.send(Err(failure.into_store_error()));
                }
                Err(BatchFailure::Commit(failure)) => {
                    let detail = failure.into_store_error().to_string();
                    for pending in batch {
                        let _ = pending
                            .answer
                            .send(Err(StoreError::Internal(detail.clone())));
                    }
                    return;
                }
            }
        }
    }

    /// Applies the writes of `batch` in order in one transaction and commits it if any wrote: each
    /// write's answer, in batch order.
    fn commit(&self, batch: &[Pending]) -> Result<Vec<StoreResult<Written>>, BatchFailure> {
        let mut txn = self
            .db
            .begin_write()
            .map_err(|e| BatchFailure::Commit(e.into()))?;
        // Saves the allocator state with each commit, so opening after a crash is quick instead
        // of a walk over the whole file.
        txn.set_quick_repair(true);
        // The catalog's snapshot no longer holds what the store does once this commits.
        forget_snapshot(&txn).map_err(BatchFailure::Commit)?;
        let mut answers = Vec::with_capacity(batch.len());
        for (index, pending) in batch.iter().enumerate() {
            let change = match decide(&txn, &pending.op) {
                Ok(Decision::Write(change)) => change,
                Ok(Decision::Refuse(answer)) => {
                    answers.push(answer);
                    continue;
                }
                // Deciding only reads: nothing was changed, the others go on.
                Err(failure) => {
                    answers.push(Err(failure.into_store_error()));
                    continue;
                }
            };
            // Tests slow the write down here: the time can run out before the commit.
            fail::fail_point!("embedded::before_commit");
            if let Some(deadline) = &pending.deadline
                && deadline.begin_commit().is_err()
            {
                answers.push(Err(StoreError::Unavailable(
                    "the request's time ran out before the write".into(),
                )));
                continue;
            }
            apply(&txn, change).map_err(|failure| BatchFailure::Write(index, failure))?;
            answers.push(Ok(Written::Done));
        }
        if answers.iter().any(|a| matches!(a, Ok(Written::Done))) {
            // ...or here: the commit itself is slow, and its outcome must still be sent.
            fail::fail_point!("embedded::commit");
            txn.commit().map_err(|e| BatchFailure::Commit(e.into()))?;
        } else {
            txn.abort().map_err(|e| BatchFailure::Commit(e.into()))?;
        }
        Ok(answers)
    }

    /// After a commit: the catalog and the document cache learn what was written, in commit order,
    /// and then (so a writer's next read sees its write) each writer gets its answer.
    fn committed(&self, batch: Vec<Pending>, answers: Vec<StoreResult<Written>>) {
        // Tests fail here: committed, and not yet in the catalog.
        fail::fail_point!("embedded::after_commit");
        let written = answers
            .iter()
            .filter(|a| matches!(a, Ok(Written::Done)))
            .count();
        if written > 0 {
            metrics::counter!(COMMITS_METRIC).increment(1);
            metrics::counter!(WRITES_METRIC).increment(written as u64);
        }
        let mut to_cache = Vec::new();
        {
            let mut catalog = self.catalog.write().unwrap_or_else(PoisonError::into_inner);
            let mut sets = self.sets.write().unwrap_or_else(PoisonError::into_inner);
            for (pending, answer) in batch.iter().zip(&answers) {
                if !matches!(answer, Ok(Written::Done)) {
                    continue;
                }
                match &pending.op {
                    Op::Insert(doc) | Op::Replace { next: doc, .. } => {
                        catalog.upsert(doc);
                        to_cache.push(doc.clone());
                    }
                    Op::InsertAll(docs) => {
                        for doc in docs {
                            catalog.upsert(doc);
                        }
                    }
                    Op::Purge { org_id, id } => {
                        catalog.remove(org_id, *id);
                        self.docs.remove(id);
                    }
                    Op::InsertSet(set) | Op::ReplaceSet { next: set, .. } => {
                        sets.upsert(set.clone())
                    }
                    Op::Records(records) => {
                        for set in &records.unit_test_sets {
                            sets.upsert(set.clone());
                        }
                    }
                }
            }
        }
        for doc in to_cache {
            self.docs.insert(doc.id, CachedDoc::new(Arc::new(doc)));
        }
        for (pending, answer) in batch.into_iter().zip(answers) {
            let _ = pending.answer.send(answer);
        }
    }
}

/// Decides `op` against the transaction's state (the commits before and the batch's writes so
/// far). Only reads.
fn decide<'a>(txn: &redb::WriteTransaction, op: &'a Op) -> Result<Decision<'a>, Failure> {
    match op {
        Op::Insert(doc) => {
            let bytes = encode(doc)?;
            if !doc.is_deleted {
                let names = txn.open_table(ACTIVE_NAMES)?;
                if names
                    .get((doc.org_id.as_str(), doc.name.as_str()))?
                    .is_some()
                {
                    return Ok(Decision::Refuse(Err(StoreError::Duplicate)));
                }
            }
            Ok(Decision::Write(Change::Insert(doc, bytes)))
        }
        Op::InsertAll(docs) => {
            let names = txn.open_table(ACTIVE_NAMES)?;
            let mut seen = std::collections::HashSet::new();
            let mut changes = Vec::with_capacity(docs.len());
            for doc in docs {
                let key = (doc.org_id.as_str(), doc.name.as_str());
                if !doc.is_deleted && (!seen.insert(key) || names.get(key)?.is_some()) {
                    return Ok(Decision::Refuse(Err(StoreError::Duplicate)));
                }
                changes.push((doc, encode(doc)?));
            }
            Ok(Decision::Write(Change::InsertAll(changes)))
        }
        Op::Replace { expected, next } => {
            let bytes = encode(next)?;
            let docs = txn.open_table(UNIT_TESTS)?;
            let current: Option<UnitTest> = docs
                .get((next.org_id.as_str(), next.id.bytes()))?
                .map(|v| decode(v.value()))
                .transpose()?;
            Ok(match current {
                Some(current) if !current.is_deleted && current.updated_at == *expected => {
                    if next.is_deleted && sets::listed(txn, next.org_id.as_str(), next.id)? {
                        return Ok(Decision::Refuse(Ok(Written::InUse)));
                    }
                    let frees = next.is_deleted.then_some(current.name);
                    Decision::Write(Change::Replace(next, bytes, frees))
                }
                _ => Decision::Refuse(Ok(Written::Stale)),
            })
        }
        Op::InsertSet(set) => Ok(match sets::decide_insert(txn, set)? {
            Ok(change) => Decision::Write(Change::Set(Box::new(change))),
            Err(answer) => Decision::Refuse(answer),
        }),
        Op::ReplaceSet { expected, next } => {
            Ok(match sets::decide_replace(txn, *expected, next)? {
                Ok(change) => Decision::Write(Change::Set(Box::new(change))),
                Err(answer) => Decision::Refuse(answer),
            })
        }
        Op::Purge { org_id, id } => {
            let docs = txn.open_table(UNIT_TESTS)?;
            let current: Option<UnitTest> = docs
                .get((org_id.as_str(), id.bytes()))?
                .map(|v| decode(v.value()))
                .transpose()?;
            if !current.is_some_and(|c| c.is_deleted) {
                return Ok(Decision::Refuse(Ok(Written::Stale)));
            }
            if sets::listed_by_any(txn, org_id, *id)? {
                return Ok(Decision::Refuse(Ok(Written::InUse)));
            }
            Ok(Decision::Write(Change::Purge(org_id, *id)))
        }
        Op::Records(records) => Ok(Decision::Write(Change::Records(records))),
    }
}

/// Writes a decided change into the transaction.
fn apply(txn: &redb::WriteTransaction, change: Change<'_>) -> Result<(), Failure> {
    match change {
        Change::Insert(doc, bytes) => insert(txn, doc, &bytes)?,
        Change::InsertAll(changes) => {
            for (doc, bytes) in changes {
                insert(txn, doc, &bytes)?;
            }
        }
        Change::Replace(doc, bytes, frees) => {
            put_unit_test(txn, doc, &bytes)?;
            history::record(txn, doc, &bytes)?;
            if let Some(name) = frees {
                let mut names = txn.open_table(ACTIVE_NAMES)?;
                names.remove((doc.org_id.as_str(), name.as_str()))?;
            }
        }
        Change::Set(change) => sets::apply(txn, *change)?,
        Change::Purge(org_id, id) => {
            let key = (org_id.as_str(), id.bytes());
            txn.open_table(UNIT_TESTS)?.remove(key)?;
            txn.open_table(UNIT_TEST_ROWS)?.remove(key)?;
            history::forget(txn, org_id, id)?;
        }
        Change::Records(r) => upsert_records(txn, r)?,
    }
    Ok(())
}

/// Writes a new unit test: its document and row, its active name, its first version.
fn insert(txn: &redb::WriteTransaction, doc: &UnitTest, bytes: &[u8]) -> Result<(), Failure> {
    if !doc.is_deleted {
        let mut names = txn.open_table(ACTIVE_NAMES)?;
        names.insert((doc.org_id.as_str(), doc.name.as_str()), doc.id.bytes())?;
    }
    put_unit_test(txn, doc, bytes)?;
    history::record(txn, doc, bytes)
}

/// Writes the document `doc` (encoded as `bytes`) and its catalog row, in one transaction so that
/// no crash can leave one without the other.
fn put_unit_test(
    txn: &redb::WriteTransaction,
    doc: &UnitTest,
    bytes: &[u8],
) -> Result<(), Failure> {
    let key = (doc.org_id.as_str(), doc.id.bytes());
    txn.open_table(UNIT_TESTS)?.insert(key, bytes)?;
    // In this transaction, not a later one: a crash between two would leave a row older than its
    // document, and lists and searches would answer from it (`crash.rs`,
    // `lists_and_searches_agree_with_the_documents_after_sigkill_embedded`, fails then).
    txn.open_table(UNIT_TEST_ROWS)?
        .insert(key, RowRecord::encode_doc(doc).as_slice())?;
    Ok(())
}

/// Upserts seed records by their natural keys.
fn upsert_records(txn: &redb::WriteTransaction, r: &Records) -> Result<(), Failure> {
    let mut t = txn.open_table(ORGANIZATIONS)?;
    for o in &r.organizations {
        t.insert(o.org_id.as_str(), encode(o)?.as_slice())?;
    }
    let mut t = txn.open_table(USERS)?;
    for u in &r.users {
        t.insert(
            (u.org_id.as_str(), u.user_id.as_str()),
            encode(u)?.as_slice(),
        )?;
    }
    let mut t = txn.open_table(ROLES)?;
    for x in &r.roles {
        t.insert((x.org_id.as_str(), x.name.as_str()), encode(x)?.as_slice())?;
    }
    let mut t = txn.open_table(API_KEYS)?;
    for k in &r.api_keys {
        t.insert(
            (k.org_id.as_str(), k.key_id.as_str()),
            encode(k)?.as_slice(),
        )?;
    }
    put_by_id(
        txn,
        SERVICES,
        r.services.iter().map(|s| (s.org_id.as_str(), s.id, s)),
    )?;
    put_by_id(
        txn,
        PERSONAS,
        r.personas.iter().map(|s| (s.org_id.as_str(), s.id, s)),
    )?;
    put_by_id(
        txn,
        SCENARIOS,
        r.scenarios.iter().map(|s| (s.org_id.as_str(), s.id, s)),
    )?;
    put_by_id(
        txn,
        METRICS,
        r.metrics.iter().map(|s| (s.org_id.as_str(), s.id, s)),
    )?;
    sets::upsert(txn, &r.unit_test_sets)?;
    Ok(())
}

/// The catalog of every unit test in the store (and whether it came from its snapshot), from the
/// snapshot if it holds what the store does, else from their rows; when those are missing (a store
/// written before rows existed) or do not add up, from the documents, writing their rows anew.
fn load_catalog(db: &Database, dir: &Path) -> Result<(Catalog, bool), Failure> {
    let started = Instant::now();
    if let Some(catalog) = load_snapshot(db, dir)? {
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "unit test catalog loaded from its snapshot"
        );
        return Ok((catalog, true));
    }
    if let Some(catalog) = load_rows(db)? {
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "unit test catalog loaded"
        );
        return Ok((catalog, false));
    }
    let catalog = rebuild_rows(db)?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        "unit test catalog rebuilt from the documents"
    );
    Ok((catalog, false))
}

/// The mark of the catalog snapshot the store holds, if nothing was written since it was saved.
fn snapshot_mark(txn: &redb::ReadTransaction) -> Result<Option<u64>, Failure> {
    Ok(txn
        .open_table(META)?
        .get(CATALOG_SNAPSHOT)?
        .map(|v| v.value()))
}

/// Records `mark` as that of the snapshot just saved (see [`snapshot`]).
fn mark_snapshot(db: &Database, mark: u64) -> Result<(), Failure> {
    let txn = db.begin_write()?;
    txn.open_table(META)?.insert(CATALOG_SNAPSHOT, mark)?;
    txn.commit()?;
    Ok(())
}

/// Removes the catalog snapshot's mark in `txn`: once it commits, the snapshot is not used.
fn forget_snapshot(txn: &redb::WriteTransaction) -> Result<(), Failure> {
    txn.open_table(META)?.remove(CATALOG_SNAPSHOT)?;
    Ok(())
}

/// The catalog from its snapshot, or `None` when there is none that holds what the store does.
fn load_snapshot(db: &Database, dir: &Path) -> Result<Option<Catalog>, Failure> {
    let txn = db.begin_read()?;
    let complete = txn.open_table(META)?.get(ROWS_COMPLETE)?.map(|v| v.value());
    let Some(mark) = snapshot_mark(&txn)? else {
        return Ok(None);
    };
    if complete != Some(u64::from(rows::VERSION)) {
        return Ok(None);
    }
    let doc_count = txn.open_table(UNIT_TESTS)?.len()?;
    match snapshot::read(dir, mark) {
        Ok(Some((catalog, count))) if count == doc_count => Ok(Some(catalog)),
        Ok(found) => {
            if found.is_some() {
                tracing::warn!("the unit test catalog's snapshot does not match the store");
            }
            Ok(None)
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read the unit test catalog's snapshot");
            Ok(None)
        }
    }
}

/// The catalog from the stored rows, or `None` when they cannot be trusted to be complete.
fn load_rows(db: &Database) -> Result<Option<Catalog>, Failure> {
    let txn = db.begin_read()?;
    let complete = txn.open_table(META)?.get(ROWS_COMPLETE)?.map(|v| v.value());
    if complete != Some(u64::from(rows::VERSION)) {
        return Ok(None);
    }
    let rows = txn.open_table(UNIT_TEST_ROWS)?;
    let (row_count, doc_count) = (rows.len()?, txn.open_table(UNIT_TESTS)?.len()?);
    // Every write of a document writes its row in the same transaction, so the counts can only
    // differ if something else (an older simtest) wrote the file since. An update by an older
    // simtest keeps the counts and is not seen: a data dir is not to go back to an older version.
    if row_count != doc_count {
        tracing::warn!(
            row_count,
            doc_count,
            "unit test rows do not match the documents"
        );
        return Ok(None);
    }
    let mut catalog = Catalog::default();
    for entry in rows.iter()? {
        let (key, value) = entry?;
        let (org_id, id) = key.value();
        let Some(row) = RowRecord::decode(value.value()) else {
            tracing::warn!(org_id, "unreadable unit test row");
            return Ok(None);
        };
        catalog.load_row(org_id, ObjectIdHex::from_bytes(id), &row);
    }
    catalog.loaded();
    Ok(Some(catalog))
}

/// The catalog from the documents; writes every unit test's row anew, and marks them complete,
/// in one transaction (before the writer starts, so no write can come between).
fn rebuild_rows(db: &Database) -> Result<Catalog, Failure> {
    let read = db.begin_read()?;
    let docs = read.open_table(UNIT_TESTS)?;
    let mut write = db.begin_write()?;
    write.set_quick_repair(true);
    write.delete_table(UNIT_TEST_ROWS)?;
    forget_snapshot(&write)?;
    let mut catalog = Catalog::default();
    {
        let mut rows = write.open_table(UNIT_TEST_ROWS)?;
        // One document at a time: decoding them all first would double the memory at start.
        for entry in docs.iter()? {
            let (_, value) = entry?;
            let doc: UnitTest = decode(value.value())?;
            let text = search_text(&doc.name, &doc.description);
            let row = RowRecord::of(&doc, &text);
            rows.insert(
                (doc.org_id.as_str(), doc.id.bytes()),
                row.encode().as_slice(),
            )?;
            catalog.load_row(&doc.org_id, doc.id, &row);
        }
        write
            .open_table(META)?
            .insert(ROWS_COMPLETE, u64::from(rows::VERSION))?;
    }
    write.commit()?;
    catalog.loaded();
    Ok(catalog)
}

/// Rows whose search grams are built per hold of the catalog's lock: about 6 ms on a busy machine
/// (~117 grams a row of bench/'s unit tests, ~0.4 µs each), so lists and writes wait no longer
/// than that while the index is built.
const GRAMS_STEP: usize = 128;

/// The pause after each step of the build, in which waiting readers take the catalog's lock
/// (about 1.5 s more in all at 1M: 7,800 steps).
const READERS_WINDOW: Duration = Duration::from_micros(200);

/// Builds the search grams of the unit tests loaded at start on a thread of its own, a step at a
/// time, so the store serves from the moment it is open (searches read the texts until the index
/// is complete). Stops early when the store is dropped.
fn index_in_background(catalog: &Arc<RwLock<Catalog>>) {
    let catalog = Arc::downgrade(catalog);
    let started = Instant::now();
    let spawned = std::thread::Builder::new()
        .name("simtest-search-index".into())
        .spawn(move || {
            let mut rows = 0;
            while let Some(catalog) = catalog.upgrade() {
                let step = catalog
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .index_grams(GRAMS_STEP);
                if step == 0 {
                    tracing::info!(
                        rows,
                        ms = started.elapsed().as_millis() as u64,
                        "search index built"
                    );
                    return;
                }
                rows += step;
                // Readers woken by the unlock need a moment to take the lock: without one, this
                // thread took it back first, again and again, and at 1M a search or a list sent
                // during the build waited 3 to 21 s for it (measured), not one step.
                std::thread::sleep(READERS_WINDOW);
            }
        });
    if let Err(error) = spawned {
        // Searches stay correct without the index, only slower.
        tracing::error!(%error, "cannot start building the search index");
    }
}

fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(ORGANIZATIONS)?;
    txn.open_table(USERS)?;
    txn.open_table(ROLES)?;
    txn.open_table(API_KEYS)?;
    for def in [
        SERVICES,
        PERSONAS,
        SCENARIOS,
        METRICS,
        UNIT_TEST_SETS,
        UNIT_TESTS,
    ] {
        txn.open_table(def)?;
    }
    txn.open_table(ACTIVE_NAMES)?;
    txn.open_table(UNIT_TEST_ROWS)?;
    let mut meta = txn.open_table(META)?;
    // A new store: its rows are complete from its first write on.
    if meta.get(ROWS_COMPLETE)?.is_none() && txn.open_table(UNIT_TESTS)?.is_empty()? {
        meta.insert(ROWS_COMPLETE, u64::from(rows::VERSION))?;
    }
    drop(meta);
    txn.commit()?;
    Ok(())
}

/// A failure inside a store task: a redb error, or an answer already decided (duplicate, corrupt).
enum Failure {
    Redb(redb::Error),
    Store(StoreError),
}

impl Failure {
    fn into_store_error(self) -> StoreError {
        match self {
            Failure::Store(e) => e,
            Failure::Redb(e) => StoreError::Internal(e.to_string()),
        }
    }
}

impl<E: Into<redb::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Redb(e.into())
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Failure> {
    serde_json::to_vec(value)
        .map_err(|e| Failure::Store(StoreError::Internal(format!("encode: {e}"))))
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes)
        .map_err(|e| Failure::Store(StoreError::Internal(format!("corrupt record: {e}"))))
}

/// Takes away group and other permissions from `path` if it has any, saying so in the log.
fn make_private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        tracing::warn!(path = %path.display(), from = format!("{current:o}"), to = format!("{mode:o}"), "tightened permissions");
    }
    Ok(())
}

fn get_by_str<T: DeserializeOwned>(
    db: &Database,
    def: TableDefinition<(&str, &str), &[u8]>,
    a: &str,
    b: &str,
) -> Result<Option<T>, Failure> {
    let txn = db.begin_read()?;
    let table = txn.open_table(def)?;
    table.get((a, b))?.map(|v| decode(v.value())).transpose()
}

fn get_by_id<T: DeserializeOwned>(
    db: &Database,
    def: TableDefinition<(&str, Id), &[u8]>,
    org_id: &str,
    id: ObjectIdHex,
) -> Result<Option<T>, Failure> {
    let txn = db.begin_read()?;
    let table = txn.open_table(def)?;
    table
        .get((org_id, id.bytes()))?
        .map(|v| decode(v.value()))
        .transpose()
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|db| {
            db.begin_read()?;
            Ok(())
        })
    }

    async fn organization(&self, org_id: &OrgId) -> StoreResult<Option<Organization>> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ORGANIZATIONS)?;
            table
                .get(org_id.as_str())?
                .map(|v| decode(v.value()))
                .transpose()
        })
    }

    async fn user(&self, org_id: &OrgId, user_id: &UserId) -> StoreResult<Option<User>> {
        self.read(|db| get_by_str(db, USERS, org_id, user_id.as_str()))
    }

    async fn role(&self, org_id: &OrgId, name: &str) -> StoreResult<Option<Role>> {
        self.read(|db| get_by_str(db, ROLES, org_id, name))
    }

    async fn api_key(&self, org_id: &OrgId, key_id: &str) -> StoreResult<Option<ApiKey>> {
        self.read(|db| get_by_str(db, API_KEYS, org_id, key_id))
    }

    async fn service(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        self.read(|db| get_by_id(db, SERVICES, org_id, id))
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        let def = match kind {
            NamedKind::Persona => PERSONAS,
            NamedKind::Scenario => SCENARIOS,
        };
        self.read(|db| get_by_id(db, def, org_id, id))
    }

    async fn metrics(&self, org_id: &OrgId, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(METRICS)?;
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = table.get((org_id.as_str(), id.bytes()))? {
                    found.push(decode(v.value())?);
                }
            }
            Ok(found)
        })
    }

    async fn unit_test_in_live_set(
        &self,
        org_id: &OrgId,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        self.read(|db| sets::listed_in(db, org_id, unit_test_id))
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        match self.write(Op::Insert(doc.clone())).await? {
            Written::Done => Ok(()),
            other => Err(StoreError::Internal(format!(
                "a unit test insert answered {other:?}"
            ))),
        }
    }

    async fn insert_unit_tests(&self, docs: &[UnitTest]) -> StoreResult<()> {
        if docs.is_empty() {
            return Ok(());
        }
        match self.write(Op::InsertAll(docs.to_vec())).await? {
            Written::Done => Ok(()),
            other => Err(StoreError::Internal(format!(
                "a unit test insert answered {other:?}"
            ))),
        }
    }

    async fn unit_test(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        self.read(|db| get_by_id(db, UNIT_TESTS, org_id, id))
    }

    async fn replace_unit_test(
        &self,
        previous: &UnitTest,
        next: &UnitTest,
    ) -> StoreResult<Written> {
        // The writer checks and writes in one step: of two racing replaces one wins, and a
        // delete and a set listing the unit test are decided in one order.
        self.write(Op::Replace {
            expected: previous.updated_at,
            next: next.clone(),
        })
        .await
    }

    async fn insert_unit_test_set(&self, set: &UnitTestSet) -> StoreResult<Written> {
        self.write(Op::InsertSet(set.clone())).await
    }

    async fn unit_test_set(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
    ) -> StoreResult<Option<UnitTestSet>> {
        let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        Ok(sets.get(org_id, id).map(|s| s.as_ref().clone()))
    }

    async fn replace_unit_test_set(
        &self,
        previous: &UnitTestSet,
        next: &UnitTestSet,
    ) -> StoreResult<Written> {
        self.write(Op::ReplaceSet {
            expected: previous.updated_at,
            next: next.clone(),
        })
        .await
    }

    async fn purge_unit_test(&self, org_id: &OrgId, id: ObjectIdHex) -> StoreResult<Written> {
        self.write(Op::Purge {
            org_id: org_id.clone(),
            id,
        })
        .await
    }

    async fn unit_test_versions(
        &self,
        org_id: &OrgId,
        id: ObjectIdHex,
        up_to: Timestamp,
        limit: u32,
    ) -> StoreResult<Vec<UnitTest>> {
        self.read(|db| history::versions(db, org_id, id, up_to, limit as usize))
    }

    async fn claim_key(&self, record: &KeyRecord) -> StoreResult<Claim> {
        let (db, record) = (self.db.clone(), record.clone());
        // A write transaction waits for the writer's; on the blocking pool, not a runtime thread.
        tokio::task::spawn_blocking(move || keys::claim(&db, &record))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
            .map_err(Failure::into_store_error)
    }

    async fn finish_key(&self, record: &KeyRecord) -> StoreResult<()> {
        let (db, record) = (self.db.clone(), record.clone());
        tokio::task::spawn_blocking(move || keys::finish(&db, &record))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))?
            .map_err(Failure::into_store_error)
    }

    async fn list_unit_test_sets(&self, query: &UnitTestSetQuery) -> StoreResult<SetPage> {
        let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
        Ok(sets.page(query))
    }

    async fn list_unit_tests(&self, query: &ListQuery) -> StoreResult<ListPage> {
        self.read(|db| {
            // The snapshot is taken while the catalog cannot change, so it holds at least what the
            // plan saw; a write committed since may have changed a planned unit test, which is
            // then checked again below.
            let (plan, txn) = {
                let catalog = self.catalog.read().unwrap_or_else(PoisonError::into_inner);
                (catalog.plan(query), db.begin_read()?)
            };
            let table = txn.open_table(UNIT_TESTS)?;
            let org_id = query.filter.org_id.as_str();
            let mut items = Vec::with_capacity(plan.ids.len());
            for (id, version) in plan.ids {
                let cached = self.docs.get(&id).map(|c| c.doc);
                if let Some(doc) = cached.filter(|d| d.org_id == org_id && d.updated_at == version)
                {
                    items.push(doc);
                    continue;
                }
                let Some(value) = table.get((org_id, id.bytes()))? else {
                    continue;
                };
                let doc: Arc<UnitTest> = Arc::new(decode(value.value())?);
                self.docs.insert(id, CachedDoc::new(doc.clone()));
                // Changed by a write committed after the plan: keep it only if it still matches.
                if doc.updated_at == version || query.filter.matches(&doc) {
                    items.push(doc);
                }
            }
            Ok(ListPage {
                items,
                has_more: plan.has_more,
                filter_values: plan.filter_values,
            })
        })
    }

    async fn upsert_records(&self, records: &Records) -> StoreResult<()> {
        self.write(Op::Records(Box::new(records.clone())))
            .await
            .map(drop)
    }
}

fn put_by_id<'a, T: Serialize + 'a>(
    txn: &redb::WriteTransaction,
    def: TableDefinition<(&str, Id), &[u8]>,
    rows: impl Iterator<Item = (&'a str, ObjectIdHex, &'a T)>,
) -> Result<(), Failure> {
    let mut table = txn.open_table(def)?;
    for (org_id, id, row) in rows {
        table.insert((org_id, id.bytes()), encode(row)?.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::query::{SortField, SortKey, UnitTestFilter};
    use crate::store::tests::testgen::{id, random_doc, random_query, random_terms, sample};

    fn unit_test(n: u8, name: &str) -> UnitTest {
        UnitTest {
            id: id(n),
            name: name.into(),
            ..sample()
        }
    }

    fn pending(
        op: Op,
        deadline: Option<Arc<Deadline>>,
    ) -> (Pending, oneshot::Receiver<StoreResult<Written>>) {
        let (answer, answered) = oneshot::channel();
        (
            Pending {
                op,
                deadline,
                answer,
            },
            answered,
        )
    }

    /// The active unit tests' (id, name) as a list answers them, and as redb holds them.
    async fn active(store: &EmbeddedStore) -> (Vec<(u8, String)>, Vec<(u8, String)>) {
        let query = ListQuery {
            filter: UnitTestFilter {
                is_deleted: Some(false),
                ..UnitTestFilter::for_org(&"acme".into())
            },
            sort: vec![SortKey {
                field: SortField::CreatedAt,
                descending: false,
            }],
            offset: 0,
            limit: 100,
            with_facets: false,
            after: None,
        };
        let mut listed: Vec<_> = (store.list_unit_tests(&query).await.unwrap().items.iter())
            .map(|t| (t.id.bytes()[0], t.name.clone()))
            .collect();
        listed.sort();
        let mut stored = Vec::new();
        for n in 1..=9 {
            if let Some(t) = store.unit_test(&"acme".into(), id(n)).await.unwrap()
                && !t.is_deleted
            {
                stored.push((n, t.name));
            }
        }
        (listed, stored)
    }

    /// Random unit tests in a few orgs, some of them deleted, rewritten and hard deleted.
    async fn store_of_random_unit_tests(dir: &Path) -> Vec<UnitTest> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let store = EmbeddedStore::open(dir).unwrap();
        let mut docs: Vec<UnitTest> = (0..300).map(|n| random_doc(&mut rng, n)).collect();
        for doc in &docs {
            store.insert_unit_test(doc).await.unwrap();
        }
        for i in (0..docs.len()).step_by(7) {
            let mut next = random_doc(&mut rng, 1000 + i);
            (next.id, next.org_id) = (docs[i].id, docs[i].org_id.clone());
            (next.name, next.is_deleted) = (docs[i].name.clone(), rng.gen_bool(0.5));
            next.created_at = docs[i].created_at;
            next.updated_at = Timestamp::after(docs[i].updated_at);
            if store
                .replace_unit_test(&docs[i], &next)
                .await
                .is_ok_and(|w| w == Written::Done)
            {
                docs[i] = next;
            }
        }
        for i in (0..docs.len()).rev().step_by(23) {
            if docs[i].is_deleted {
                store
                    .purge_unit_test(&docs[i].org_id, docs[i].id)
                    .await
                    .unwrap();
                docs.remove(i);
            }
        }
        docs
    }

    /// Closing saves the catalog; the next open loads it from that file, and it answers every
    /// query as the catalog read from the stored rows does.
    #[tokio::test]
    async fn a_clean_close_saves_the_catalog_the_next_open_loads() {
        use rand::SeedableRng;
        let dir = tempfile::tempdir().unwrap();
        let docs = store_of_random_unit_tests(dir.path()).await;
        assert!(dir.path().join(snapshot::FILE_NAME).exists());
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        let saved = load_snapshot(&db, dir.path())
            .ok()
            .unwrap()
            .expect("the snapshot is used");
        assert!(saved.grams_built(), "the search grams were saved too");
        let stored = load_rows(&db).ok().flatten().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(6);
        let ids: Vec<ObjectIdHex> = docs.iter().map(|d| d.id).collect();
        for round in 0..500 {
            let mut query = random_query(&mut rng, &ids);
            if round % 2 == 1 {
                query.filter.terms = random_terms(&mut rng, &docs);
            }
            assert_eq!(saved.plan(&query), stored.plan(&query), "{query:?}");
        }
    }

    /// A snapshot taken before a write is never used: the write removed its mark, so the catalog
    /// is read from the rows and holds the write.
    #[tokio::test]
    async fn a_snapshot_older_than_a_write_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .insert_unit_test(&unit_test(1, "before"))
            .await
            .unwrap();
        drop(store);
        let saved = dir.path().join(snapshot::FILE_NAME);
        let kept = dir.path().join("kept");
        std::fs::copy(&saved, &kept).unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store
            .insert_unit_test(&unit_test(2, "after"))
            .await
            .unwrap();
        let mut renamed = unit_test(1, "before, renamed");
        renamed.updated_at = Timestamp::after(renamed.updated_at);
        let first = store
            .unit_test(&"acme".into(), id(1))
            .await
            .unwrap()
            .unwrap();
        store.replace_unit_test(&first, &renamed).await.unwrap();
        // A crash now would leave the snapshot without its mark.
        let txn = store.db.begin_read().unwrap();
        assert_eq!(snapshot_mark(&txn).ok(), Some(None));
        drop(txn);
        drop(store);
        // And had the close found no time to save its own, the snapshot would be the old one.
        std::fs::copy(&kept, &saved).unwrap();
        let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
        assert!(load_snapshot(&db, dir.path()).ok().unwrap().is_none());
        drop(db);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let (listed, stored) = active(&store).await;
        assert_eq!(listed, [(1, "before, renamed".into()), (2, "after".into())]);
        assert_eq!(listed, stored);
    }

    /// Closing saves the snapshot again only when it no longer holds the store: not after a
    /// start from it without writes, but after a start that could not use it.
    #[tokio::test]
    async fn a_close_saves_the_snapshot_only_when_it_is_not_current() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(snapshot::FILE_NAME);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.insert_unit_test(&unit_test(1, "a")).await.unwrap();
        drop(store);
        let saved = std::fs::read(&path).unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(store.from_snapshot);
        drop(store);
        // A new save would carry a new random mark.
        assert_eq!(std::fs::read(&path).unwrap(), saved, "saved again");
        let mut damaged = saved.clone();
        let middle = damaged.len() / 2;
        damaged[middle] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(!store.from_snapshot);
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert!(
            store.from_snapshot,
            "saved anew after a start that could not use it"
        );
        assert_eq!(active(&store).await.0, [(1, "a".into())]);
    }

    /// Unit tests far larger than usual: the decoded ones kept stay within the byte budget (a
    /// count of entries would have kept all of them), and reads still answer them whole.
    #[tokio::test]
    async fn the_document_cache_keeps_to_its_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let description = "x".repeat(200 * 1024);
        for n in 1..=60 {
            let doc = UnitTest {
                description: description.clone(),
                ..unit_test(n, &format!("large {n}"))
            };
            store.insert_unit_test(&doc).await.unwrap();
        }
        let query = ListQuery {
            filter: UnitTestFilter::for_org(&"acme".into()),
            sort: vec![SortKey {
                field: SortField::CreatedAt,
                descending: true,
            }],
            offset: 0,
            limit: 100,
            with_facets: false,
            after: None,
        };
        let page = store.list_unit_tests(&query).await.unwrap();
        assert_eq!(page.items.len(), 60);
        assert!(page.items.iter().all(|t| t.description == description));
        let kept: u64 = store
            .docs
            .iter()
            .map(|(_, c)| c.doc.approx_bytes() as u64)
            .sum();
        assert!(kept <= DOC_CACHE_BYTES, "{kept} bytes kept");
        assert!(!store.docs.is_empty(), "something is kept");
    }

    /// One batch holding writes that depend on each other: each is decided against the state the
    /// writes before it left, a refused or timed-out write changes nothing and fails no other, and
    /// the catalog ends up holding exactly what redb committed.
    #[tokio::test]
    async fn a_batch_decides_each_write_against_the_writes_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let a = unit_test(1, "a");
        store.insert_unit_test(&a).await.unwrap();
        let mut deleted_a = a.clone();
        deleted_a.is_deleted = true;
        deleted_a.updated_at = Timestamp::after(a.updated_at);
        let mut renamed_a = a.clone();
        renamed_a.description = "stale".into();
        renamed_a.updated_at = Timestamp::after(a.updated_at);
        let passed = Deadline::new(Duration::ZERO);
        let replace = |expected: Timestamp, next: &UnitTest| Op::Replace {
            expected,
            next: next.clone(),
        };
        let (batch, answers): (Vec<_>, Vec<_>) = [
            pending(Op::Insert(unit_test(2, "b")), None),
            // The name the write before took, in the same batch.
            pending(Op::Insert(unit_test(3, "b")), None),
            // A version that is not the stored one.
            pending(replace(Timestamp::from_millis(1), &renamed_a), None),
            pending(replace(a.updated_at, &deleted_a), None),
            // The name the delete before freed, in the same batch.
            pending(Op::Insert(unit_test(4, "a")), None),
            // Stale now: the delete in this batch changed it.
            pending(replace(a.updated_at, &renamed_a), None),
            // Its time ran out before the commit: left out.
            pending(Op::Insert(unit_test(5, "c")), Some(passed.clone())),
            // So the name is still free.
            pending(Op::Insert(unit_test(6, "c")), None),
        ]
        .into_iter()
        .unzip();
        let writer = Writer {
            db: store.db.clone(),
            docs: store.docs.clone(),
            catalog: store.catalog.clone(),
            sets: store.sets.clone(),
            panicked: store.writer_panicked.clone(),
        };
        tokio::task::spawn_blocking(move || writer.write_batch(batch))
            .await
            .unwrap();
        let mut got = Vec::new();
        for answer in answers {
            got.push(match answer.await.unwrap() {
                Ok(written) => format!("{written:?}"),
                Err(e) => e.to_string(),
            });
        }
        assert_eq!(
            got,
            [
                "Done",
                "duplicate key",
                "Stale",
                "Done",
                "Done",
                "Stale",
                "store unavailable: the request's time ran out before the write",
                "Done"
            ]
        );
        assert!(passed.expired(), "the late write is answered 503");
        let expected = vec![(2, "b".into()), (4, "a".into()), (6, "c".into())];
        assert_eq!(active(&store).await, (expected.clone(), expected.clone()));
        assert!(
            store
                .unit_test(&"acme".into(), id(3))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .unit_test(&"acme".into(), id(5))
                .await
                .unwrap()
                .is_none()
        );
        // The names table agrees: each active name is taken, and stays so after a reopen.
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(active(&store).await, (expected.clone(), expected));
        for (n, name) in [(7, "a"), (8, "b"), (9, "c")] {
            assert!(matches!(
                store.insert_unit_test(&unit_test(n, name)).await,
                Err(StoreError::Duplicate)
            ));
        }
    }
}

/// Start-up at scale, on unit tests shaped as bench/'s (bench/src/fixtures.rs), written straight
/// into redb (seeding 1M over HTTP takes minutes). Run twice with the same dir: the first run
/// writes the unit tests, the second (a fresh process, so its RSS is the store's) opens the store
/// and prints the time and memory each step takes:
/// `SIMTEST_SCALE_DIR=/tmp/s1m SIMTEST_SCALE_N=1000000 cargo test --release --lib open_at_scale -- --ignored --nocapture`.
#[cfg(test)]
mod scale {
    use std::time::Instant;

    use super::*;
    use crate::domain::{Criterion, SuccessCriterion, Tag, UserInfo, Verb};

    const WORDS: [&str; 8] = [
        "signup",
        "billing",
        "refund",
        "password",
        "onboarding",
        "upgrade",
        "cancel",
        "shipping",
    ];
    const TEAMS: [&str; 4] = ["growth", "billing", "support", "platform"];

    fn ref_id(kind: u8, i: usize) -> ObjectIdHex {
        let mut b = [0u8; 12];
        b[0] = kind;
        b[8..].copy_from_slice(&(i as u32).to_be_bytes());
        ObjectIdHex::from_bytes(b)
    }

    /// The `n`th unit test as bench/ creates it.
    pub fn bench_doc(n: usize) -> UnitTest {
        let (w1, w2) = (WORDS[n % 8], WORDS[(n / 8 + 3) % 8]);
        let criterion = |name: &str, metric: usize| SuccessCriterion {
            name: name.into(),
            metric_id: ref_id(0xa4, metric),
            criterion: Criterion::Numerical {
                verb: Verb::Le,
                threshold: (n % 9 + 2) as f64,
            },
        };
        let mut criteria = vec![criterion("completed", 0)];
        if n.is_multiple_of(2) {
            criteria.push(criterion("quick", 1));
        }
        if n.is_multiple_of(3) {
            criteria.push(criterion("tone", 2));
        }
        let mut tags = vec![
            Tag {
                key: "priority".into(),
                value: Some(format!("p{}", n % 3)),
            },
            Tag {
                key: "team".into(),
                value: Some(TEAMS[(n / 3) % 4].into()),
            },
        ];
        if n.is_multiple_of(10) {
            tags.insert(
                0,
                Tag {
                    key: "flaky".into(),
                    value: None,
                },
            );
        }
        let user = UserInfo {
            org_id: "bench".into(),
            user_id: format!("u{}", n % 8).as_str().into(),
        };
        let mut id = [0u8; 12];
        id[0] = 0x65;
        id[4..].copy_from_slice(&(n as u64).to_be_bytes());
        let at = Timestamp::from_millis(1_700_000_000_000 + n as i64);
        UnitTest {
            id: ObjectIdHex::from_bytes(id),
            org_id: "bench".into(),
            name: format!("seed-{n} {w1} {w2}"),
            description: format!(
                "A user walks through {w1}, then {w2}; case {n} of the benchmark set."
            ),
            service_id: ref_id(0xa1, n % 5),
            service_version_set_name: if n.is_multiple_of(4) {
                "edge"
            } else {
                "release"
            }
            .into(),
            persona_id: ref_id(0xa2, (n / 5) % 10),
            scenario_id: ref_id(0xa3, (n / 7) % 10),
            max_interactions: 5 + (n % 20) as u32,
            success_criterions: criteria,
            run_count: 0,
            tags,
            is_deleted: false,
            creator: user.clone(),
            updated_by: user,
            created_at: at,
            updated_at: at,
        }
    }

    pub fn rss_mib() -> f64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: f64 = statm
            .split(' ')
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0.0);
        pages * 4096.0 / (1 << 20) as f64
    }

    /// Writes `count` unit tests as the writer does, in large transactions.
    pub fn write_docs(db: &Database, count: usize) {
        for start in (0..count).step_by(50_000) {
            let txn = db.begin_write().unwrap();
            for n in start..(start + 50_000).min(count) {
                let doc = bench_doc(n);
                let bytes = encode(&doc).ok().unwrap();
                assert!(apply(&txn, Change::Insert(&doc, bytes)).is_ok());
            }
            txn.commit().unwrap();
        }
    }

    #[test]
    #[ignore = "a measurement on a million unit tests"]
    fn open_at_scale() {
        let dir = std::path::PathBuf::from(std::env::var("SIMTEST_SCALE_DIR").expect("a dir"));
        let n: usize = std::env::var("SIMTEST_SCALE_N")
            .map(|n| n.parse().expect("a count"))
            .unwrap_or(1_000_000);
        if !dir.join(FILE_NAME).exists() {
            let started = Instant::now();
            let store = EmbeddedStore::open(&dir).unwrap();
            write_docs(&store.db, n);
            println!(
                "wrote {n} unit tests in {} ms",
                started.elapsed().as_millis()
            );
            return;
        }
        let before = rss_mib();
        let started = Instant::now();
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(dir.join(FILE_NAME))
            .unwrap();
        {
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(UNIT_TESTS).unwrap();
            let mut count = 0;
            for entry in table.iter().unwrap() {
                let (_, value) = entry.unwrap();
                count += value.value().len() / 1024;
            }
            std::hint::black_box(count);
            println!("read every document: {} ms", started.elapsed().as_millis());
            let started = Instant::now();
            for entry in table.iter().unwrap() {
                let (_, value) = entry.unwrap();
                std::hint::black_box(decode::<UnitTest>(value.value()).ok());
            }
            println!(
                "read and decode every document: {} ms",
                started.elapsed().as_millis()
            );
        }
        if std::env::var("SIMTEST_SCALE_STEP").as_deref() == Ok("breakdown") {
            let started = Instant::now();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(UNIT_TESTS).unwrap();
            let mut catalog = Catalog::default();
            for entry in table.iter().unwrap() {
                let (_, value) = entry.unwrap();
                catalog.load(&decode::<UnitTest>(value.value()).ok().unwrap());
            }
            println!(
                "read, decode and load: {} ms, {:.0} MiB",
                started.elapsed().as_millis(),
                rss_mib() - before
            );
            let started = Instant::now();
            catalog.loaded();
            println!(
                "sort the orders: {} ms, {:.0} MiB",
                started.elapsed().as_millis(),
                rss_mib() - before
            );
            let started = Instant::now();
            while catalog.index_grams(usize::MAX) > 0 {}
            println!(
                "grams: {} ms, {:.0} MiB",
                started.elapsed().as_millis(),
                rss_mib() - before
            );
            return;
        }
        drop(db);
        let started = Instant::now();
        let store = EmbeddedStore::open(&dir).unwrap();
        let ready = started.elapsed();
        let ready_rss = rss_mib() - before;
        println!(
            "open: {} ms, {ready_rss:.0} MiB resident",
            ready.as_millis()
        );
        loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let catalog = store.catalog.read().unwrap();
            if catalog.grams_built() {
                break;
            }
        }
        println!(
            "search index built {} ms after the start, {:.0} MiB resident",
            started.elapsed().as_millis(),
            rss_mib() - before
        );
        // bench/'s `list filtered` and `list facets`, first pages with facets.
        for raw in [
            format!("service_id={}&tag=team:growth", ref_id(0xa1, 1)),
            format!("persona_id={}", ref_id(0xa2, 3)),
            String::new(),
        ] {
            let params = crate::domain::query_string::QueryParams::parse(Some(&raw));
            let query = crate::service::list_query_for(&"bench".into(), &params).unwrap();
            let catalog = store.catalog.read().unwrap();
            let mut times: Vec<std::time::Duration> = (0..2000)
                .map(|_| {
                    let started = Instant::now();
                    std::hint::black_box(catalog.plan(&query));
                    started.elapsed()
                })
                .collect();
            times.sort();
            println!(
                "plan {raw}: p50 {:.1} µs, p99 {:.1} µs",
                times[1000].as_secs_f64() * 1e6,
                times[1980].as_secs_f64() * 1e6
            );
        }
    }
}

#[cfg(test)]
mod rows_tests {
    use super::scale::{bench_doc, write_docs};
    use super::*;
    use crate::domain::query::UnitTestFilter;

    async fn listed(store: &EmbeddedStore) -> Vec<(ObjectIdHex, String)> {
        let query = ListQuery {
            filter: UnitTestFilter::for_org(&"bench".into()),
            sort: Vec::new(),
            offset: 0,
            limit: 1000,
            with_facets: false,
            after: None,
        };
        let page = store.list_unit_tests(&query).await.unwrap();
        page.items.iter().map(|d| (d.id, d.name.clone())).collect()
    }

    fn rows_complete(store: &EmbeddedStore) -> (Option<u64>, u64) {
        let txn = store.db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let complete = meta.get(ROWS_COMPLETE).unwrap().map(|v| v.value());
        (
            complete,
            txn.open_table(UNIT_TEST_ROWS).unwrap().len().unwrap(),
        )
    }

    /// A store written before rows existed (documents only) opens with every unit test, and its
    /// rows are written then; rows that do not add up are written anew the same way.
    #[tokio::test]
    async fn missing_or_partial_rows_are_rebuilt_from_the_documents() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(rows_complete(&store), (Some(1), 0), "a new store");
        write_docs(&store.db, 300);
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let want = listed(&store).await;
        assert_eq!(want.len(), 300);
        // As a store from before: no rows table, no mark.
        let txn = store.db.begin_write().unwrap();
        txn.delete_table(UNIT_TEST_ROWS).unwrap();
        txn.open_table(META).unwrap().remove(ROWS_COMPLETE).unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        assert_eq!(listed(&store).await, want);
        assert_eq!(rows_complete(&store), (Some(1), 300));
        // A document written without its row (by an older simtest): the counts differ.
        let txn = store.db.begin_write().unwrap();
        let extra = bench_doc(300);
        txn.open_table(UNIT_TESTS)
            .unwrap()
            .insert(
                (extra.org_id.as_str(), extra.id.bytes()),
                encode(&extra).ok().unwrap().as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
        drop(store);
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let mut want = want;
        want.push((extra.id, extra.name));
        assert_eq!(listed(&store).await, want);
        assert_eq!(rows_complete(&store), (Some(1), 301));
    }
}
