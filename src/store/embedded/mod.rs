//! The embedded store: one redb file in the data dir. ACID transactions, fsync on every commit
//! (`Durability::Immediate`, redb's default), so an acknowledged write survives a crash. Writes are
//! serialized by redb, which makes the name check and the insert one atomic step.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::deadline::Deadline;
use super::{
    ApiKey, Metric, NamedKind, NamedRecord, Organization, Records, Role, Service, Store,
    StoreError, StoreResult, UnitTestSet, User,
};
use crate::domain::query::{ListPage, ListQuery};
use crate::domain::{ObjectIdHex, UnitTest, UserId};
use catalog::Catalog;

mod catalog;
mod grams;

type Id = [u8; 12];
type DocCache = quick_cache::sync::Cache<ObjectIdHex, Arc<UnitTest>>;

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
/// Active unit test names: (org, name) → id. Holds exactly the unit tests with `is_deleted: false`.
const ACTIVE_NAMES: TableDefinition<(&str, &str), Id> =
    TableDefinition::new("simulation_unit_test_active_name");

const FILE_NAME: &str = "simtest.redb";

/// redb's page cache. Its default (1 GiB) would hold the whole file after a few deep pages; the
/// queries run on the catalog, so the cache only serves the documents of a page and the small
/// reference tables, and the OS page cache does the rest.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How many decoded unit tests are kept (about 1 KiB each): the pages people keep asking for
/// (the first ones, the newest) are then served without redb or JSON decoding.
const DOC_CACHE_ENTRIES: usize = 8 * 1024;

pub struct EmbeddedStore {
    db: Arc<Database>,
    /// Recently read or written unit tests by id. An entry is used only when its org and version
    /// are those the catalog planned, so a stale or overwritten entry is a miss, never an error.
    docs: Arc<DocCache>,
    /// The unit tests' index; lists and searches are answered from it.
    catalog: Arc<RwLock<Catalog>>,
    /// Held from a unit test write's transaction to its catalog update, so the catalog sees the
    /// writes in the order redb committed them.
    writer: Arc<Mutex<()>>,
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
        let catalog = load_catalog(&db).map_err(|failure| OpenError::Corrupt {
            path: shown,
            detail: failure.into_store_error().to_string(),
        })?;
        let catalog = Arc::new(RwLock::new(catalog));
        index_in_background(&catalog);
        Ok(Self {
            db: Arc::new(db),
            docs: Arc::new(DocCache::new(DOC_CACHE_ENTRIES)),
            catalog,
            writer: Arc::default(),
        })
    }

    /// Runs a unit test write: `work` gets the open transaction and says what to commit (`Some`
    /// of the document written) or to abort (`None`); the catalog learns of what was committed.
    async fn write_unit_test<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> Result<(T, Option<UnitTest>), Failure>
            + Send
            + 'static,
    {
        let (catalog, writer, docs) =
            (self.catalog.clone(), self.writer.clone(), self.docs.clone());
        // The request's deadline, taken along to the blocking pool (see `store::deadline`).
        let deadline = Deadline::current();
        self.run(move |db| {
            let _turn = writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mut txn = db.begin_write()?;
            // Saves the allocator state with each commit, so opening after a crash is quick
            // instead of a walk over the whole file.
            txn.set_quick_repair(true);
            let (answer, written) = work(&txn)?;
            match written {
                Some(doc) => {
                    // Tests slow the write down here: the time can run out before the commit.
                    fail::fail_point!("embedded::before_commit");
                    if deadline.as_ref().is_some_and(|d| d.begin_commit().is_err()) {
                        txn.abort()?;
                        return Err(Failure::Store(StoreError::Unavailable(
                            "the request's time ran out before the write".into(),
                        )));
                    }
                    // ...or here: the commit itself is slow, and its outcome must still be sent.
                    fail::fail_point!("embedded::commit");
                    txn.commit()?;
                    catalog
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .upsert(&doc);
                    docs.insert(doc.id, Arc::new(doc));
                }
                None => txn.abort()?,
            }
            Ok(answer)
        })
        .await
    }

    /// Runs a redb read on the calling thread. Reads take microseconds (their pages come from
    /// redb's cache or the OS page cache); a hop to the blocking pool for each cost more than the
    /// read itself (two context switches: half the CPU of a list request under load, by `perf`).
    fn read<T>(&self, work: impl FnOnce(&Database) -> Result<T, Failure>) -> StoreResult<T> {
        work(&self.db).map_err(Failure::into_store_error)
    }

    /// Runs blocking redb work (a write: its commit waits for the disk) off the async runtime.
    async fn run<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Database) -> Result<T, Failure> + Send + 'static,
    {
        let db = self.db.clone();
        match tokio::task::spawn_blocking(move || work(&db)).await {
            Ok(done) => done.map_err(Failure::into_store_error),
            Err(join) => Err(StoreError::Internal(format!("store task failed: {join}"))),
        }
    }
}

/// The catalog of every unit test in the store.
fn load_catalog(db: &Database) -> Result<Catalog, Failure> {
    let txn = db.begin_read()?;
    let table = txn.open_table(UNIT_TESTS)?;
    let mut catalog = Catalog::default();
    // One document at a time: decoding them all first would double the memory at start.
    for entry in table.iter()? {
        let (_, value) = entry?;
        catalog.load(&decode::<UnitTest>(value.value())?);
    }
    catalog.loaded();
    Ok(catalog)
}

/// Rows whose search grams are built per hold of the catalog's lock: about 6 ms on a busy machine
/// (~117 grams a row of bench/'s unit tests, ~0.4 µs each), so lists and writes wait no longer
/// than that while the index is built.
const GRAMS_STEP: usize = 128;

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

/// Every record of `org_id` in a table keyed by (org, id), in id order.
fn scan_org<T: DeserializeOwned>(
    table: &impl ReadableTable<(&'static str, Id), &'static [u8]>,
    org_id: &str,
    mut visit: impl FnMut(T) -> Result<(), Failure>,
) -> Result<(), Failure> {
    for entry in table.range((org_id, [0u8; 12])..=(org_id, [0xffu8; 12]))? {
        let (_, value) = entry?;
        visit(decode(value.value())?)?;
    }
    Ok(())
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|db| {
            db.begin_read()?;
            Ok(())
        })
    }

    async fn organization(&self, org_id: &str) -> StoreResult<Option<Organization>> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(ORGANIZATIONS)?;
            table.get(org_id)?.map(|v| decode(v.value())).transpose()
        })
    }

    async fn user(&self, org_id: &str, user_id: &UserId) -> StoreResult<Option<User>> {
        self.read(|db| get_by_str(db, USERS, org_id, user_id.as_str()))
    }

    async fn role(&self, org_id: &str, name: &str) -> StoreResult<Option<Role>> {
        self.read(|db| get_by_str(db, ROLES, org_id, name))
    }

    async fn api_key(&self, org_id: &str, key_id: &str) -> StoreResult<Option<ApiKey>> {
        self.read(|db| get_by_str(db, API_KEYS, org_id, key_id))
    }

    async fn service(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<Service>> {
        self.read(|db| get_by_id(db, SERVICES, org_id, id))
    }

    async fn named(
        &self,
        kind: NamedKind,
        org_id: &str,
        id: ObjectIdHex,
    ) -> StoreResult<Option<NamedRecord>> {
        let def = match kind {
            NamedKind::Persona => PERSONAS,
            NamedKind::Scenario => SCENARIOS,
        };
        self.read(|db| get_by_id(db, def, org_id, id))
    }

    async fn metrics(&self, org_id: &str, ids: &[ObjectIdHex]) -> StoreResult<Vec<Metric>> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(METRICS)?;
            let mut found = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(v) = table.get((org_id, id.bytes()))? {
                    found.push(decode(v.value())?);
                }
            }
            Ok(found)
        })
    }

    async fn unit_test_in_live_set(
        &self,
        org_id: &str,
        unit_test_id: ObjectIdHex,
    ) -> StoreResult<bool> {
        self.read(|db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(UNIT_TEST_SETS)?;
            let mut listed = false;
            scan_org(&table, org_id, |set: UnitTestSet| {
                listed |= !set.is_deleted
                    && set
                        .unit_test_runs
                        .iter()
                        .any(|r| r.unit_test_id == unit_test_id);
                Ok(())
            })?;
            Ok(listed)
        })
    }

    async fn insert_unit_test(&self, doc: &UnitTest) -> StoreResult<()> {
        let doc = doc.clone();
        self.write_unit_test(move |txn| {
            let bytes = encode(&doc)?;
            let mut names = txn.open_table(ACTIVE_NAMES)?;
            if !doc.is_deleted {
                if names
                    .get((doc.org_id.as_str(), doc.name.as_str()))?
                    .is_some()
                {
                    return Err(Failure::Store(StoreError::Duplicate));
                }
                names.insert((doc.org_id.as_str(), doc.name.as_str()), doc.id.bytes())?;
            }
            let mut docs = txn.open_table(UNIT_TESTS)?;
            docs.insert((doc.org_id.as_str(), doc.id.bytes()), bytes.as_slice())?;
            Ok(((), Some(doc.clone())))
        })
        .await
    }

    async fn unit_test(&self, org_id: &str, id: ObjectIdHex) -> StoreResult<Option<UnitTest>> {
        self.read(|db| get_by_id(db, UNIT_TESTS, org_id, id))
    }

    async fn replace_unit_test(&self, previous: &UnitTest, next: &UnitTest) -> StoreResult<bool> {
        // redb serializes write transactions: the check and the write below are one atomic step.
        let expected_updated_at = previous.updated_at;
        let doc = next.clone();
        self.write_unit_test(move |txn| {
            let bytes = encode(&doc)?;
            let key = (doc.org_id.as_str(), doc.id.bytes());
            let mut docs = txn.open_table(UNIT_TESTS)?;
            let current: Option<UnitTest> =
                docs.get(key)?.map(|v| decode(v.value())).transpose()?;
            match current {
                Some(current)
                    if !current.is_deleted && current.updated_at == expected_updated_at =>
                {
                    docs.insert(key, bytes.as_slice())?;
                    if doc.is_deleted {
                        let mut names = txn.open_table(ACTIVE_NAMES)?;
                        names.remove((current.org_id.as_str(), current.name.as_str()))?;
                    }
                    Ok((true, Some(doc.clone())))
                }
                _ => Ok((false, None)),
            }
        })
        .await
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
                let cached = self.docs.get(&id);
                if let Some(doc) = cached.filter(|d| d.org_id == org_id && d.updated_at == version)
                {
                    items.push(doc);
                    continue;
                }
                let Some(value) = table.get((org_id, id.bytes()))? else {
                    continue;
                };
                let doc: Arc<UnitTest> = Arc::new(decode(value.value())?);
                self.docs.insert(id, doc.clone());
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
        let r = records.clone();
        self.run(move |db| {
            let txn = db.begin_write()?;
            {
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
                    &txn,
                    SERVICES,
                    r.services.iter().map(|s| (s.org_id.as_str(), s.id, s)),
                )?;
                put_by_id(
                    &txn,
                    PERSONAS,
                    r.personas.iter().map(|s| (s.org_id.as_str(), s.id, s)),
                )?;
                put_by_id(
                    &txn,
                    SCENARIOS,
                    r.scenarios.iter().map(|s| (s.org_id.as_str(), s.id, s)),
                )?;
                put_by_id(
                    &txn,
                    METRICS,
                    r.metrics.iter().map(|s| (s.org_id.as_str(), s.id, s)),
                )?;
                put_by_id(
                    &txn,
                    UNIT_TEST_SETS,
                    r.unit_test_sets
                        .iter()
                        .map(|s| (s.org_id.as_str(), s.id, s)),
                )?;
            }
            txn.commit()?;
            Ok(())
        })
        .await
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
