//! The scenarios, each twice: over HTTP against the server, and as the same store operations
//! called directly (the store ceiling).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use simtest::domain::query_string::QueryParams;
use simtest::domain::{ObjectIdHex, Timestamp, UnitTest, UserInfo};
use simtest::service::{list_query_for, search_query_for};
use simtest::store::{NamedKind, Store};

use crate::fixtures::{self, ORG};
use crate::load::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The HTTP ceiling: the first list page's bytes, replayed without store work.
    Ceiling,
    Create,
    List,
    /// A list page as large as a search's (100): what rendering and sending that many costs
    /// without any search, to read the search scenarios against.
    List100,
    ListPage2,
    ListFiltered,
    ListDeep,
    ListFacets,
    SearchOne,
    SearchTwo,
    SearchRare,
    SearchNone,
    SearchDisjoint,
    SearchOneChar,
    SearchTwoChars,
    Update,
    Delete,
}

impl Scenario {
    /// In the order they run: reads first, then the writes that change the collection.
    pub const ALL: [Scenario; 17] = [
        Scenario::Ceiling,
        Scenario::List,
        Scenario::List100,
        Scenario::ListPage2,
        Scenario::ListFiltered,
        Scenario::ListDeep,
        Scenario::ListFacets,
        Scenario::SearchOne,
        Scenario::SearchTwo,
        Scenario::SearchRare,
        Scenario::SearchNone,
        Scenario::SearchDisjoint,
        Scenario::SearchOneChar,
        Scenario::SearchTwoChars,
        Scenario::Create,
        Scenario::Update,
        Scenario::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Ceiling => "HTTP ceiling",
            Scenario::Create => "create",
            Scenario::List => "list",
            Scenario::List100 => "list 100",
            Scenario::ListPage2 => "list page 2",
            Scenario::ListFiltered => "list filtered",
            Scenario::ListDeep => "list deep page",
            Scenario::ListFacets => "list facets",
            Scenario::SearchOne => "search 1 term",
            Scenario::SearchTwo => "search 2 terms",
            Scenario::SearchRare => "search rare",
            Scenario::SearchNone => "search none",
            Scenario::SearchDisjoint => "search disjoint",
            Scenario::SearchOneChar => "search 1 char",
            Scenario::SearchTwoChars => "search 2 chars",
            Scenario::Update => "update",
            Scenario::Delete => "delete",
        }
    }

    /// The query string of the read scenarios (list or search).
    fn query(self, n: usize) -> Option<String> {
        let deep = n.saturating_sub(100);
        Some(match self {
            Scenario::List => "limit=50".into(),
            Scenario::List100 => "limit=100".into(),
            Scenario::ListPage2 => "limit=50&continuation_token=50".into(),
            Scenario::ListFiltered => format!(
                "limit=50&service_id={}&tag={}",
                fixtures::service_id(0),
                fixtures::FILTER_TAG
            ),
            Scenario::ListDeep => format!("limit=50&continuation_token={deep}"),
            Scenario::ListFacets => format!("limit=50&persona_id={}", fixtures::persona_id(3)),
            Scenario::SearchOne => search_query_string(fixtures::SEARCH_ONE),
            Scenario::SearchTwo => search_query_string(fixtures::SEARCH_TWO),
            Scenario::SearchRare => search_query_string(fixtures::SEARCH_RARE),
            Scenario::SearchNone => search_query_string(fixtures::SEARCH_NONE),
            Scenario::SearchDisjoint => search_query_string(fixtures::SEARCH_DISJOINT),
            Scenario::SearchOneChar => search_query_string(fixtures::SEARCH_ONE_CHAR),
            Scenario::SearchTwoChars => search_query_string(fixtures::SEARCH_TWO_CHARS),
            _ => return None,
        })
    }

    fn is_search(self) -> bool {
        matches!(
            self,
            Scenario::SearchOne
                | Scenario::SearchTwo
                | Scenario::SearchRare
                | Scenario::SearchNone
                | Scenario::SearchDisjoint
                | Scenario::SearchOneChar
                | Scenario::SearchTwoChars
        )
    }
}

/// The search query string for `text` (spaces and commas escaped).
pub fn search_query_string(text: &str) -> String {
    format!("query={}", text.replace(' ', "%20").replace(',', "%2C"))
}

/// Ids of the seeded unit tests, which the update scenario changes (never deletes, so N stays).
pub struct IdPool {
    ids: Vec<String>,
}

impl IdPool {
    pub fn new(ids: Vec<String>) -> Arc<Self> {
        Arc::new(Self { ids })
    }

    fn for_update(&self, seq: u64) -> &str {
        &self.ids[seq as usize % self.ids.len()]
    }
}

/// The unit tests a create scenario made, which the delete scenario then deletes: the seeded
/// collection keeps its size for every scenario, and a delete always has an active target.
#[derive(Default)]
pub struct Victims(Mutex<Vec<String>>);

impl Victims {
    fn add(&self, id: String) {
        self.0.lock().expect("victims lock").push(id);
    }

    fn take(&self) -> Option<String> {
        self.0.lock().expect("victims lock").pop()
    }
}

/// What an HTTP client needs: the base URL, one token per user, the pool and the collection size.
pub struct Http {
    pub client: reqwest::Client,
    pub base: String,
    pub tokens: Vec<String>,
    pub ids: Arc<IdPool>,
    pub n: usize,
    /// Distinguishes the names made by this run's create scenario.
    pub run: String,
    /// Numbers the creates across every client count, so names never repeat.
    pub created: AtomicU64,
    /// The `run_count` values updates write (see [`UpdateValues`]).
    pub updates: UpdateValues,
    pub victims: Victims,
}

/// The `run_count` an update writes: a new value for every update of a run and of any later run,
/// so no update is a no-op (the service answers an update that changes nothing 204 without
/// writing, which would measure nothing). Microseconds since 1970 at the start of the run, plus
/// one per update: a later run starts above all an earlier one wrote unless it made more than one
/// update per microsecond.
pub struct UpdateValues {
    next: AtomicU64,
}

impl Default for UpdateValues {
    fn default() -> Self {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Self {
            next: AtomicU64::new(micros),
        }
    }
}

impl UpdateValues {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }
}

impl Http {
    fn url(&self, tail: &str) -> String {
        format!("{}/v1/{ORG}/simulation/unit_test/{tail}", self.base)
    }

    pub async fn call(&self, scenario: Scenario, seq: u64) -> Outcome {
        let token = &self.tokens[seq as usize % self.tokens.len()];
        let request = match scenario {
            Scenario::Ceiling => self
                .client
                .get(format!("{}/bench/{ORG}/list-page", self.base)),
            Scenario::Create => self
                .client
                .post(self.url(""))
                .json(&fixtures::unit_test_body(
                    &self.run,
                    self.created.fetch_add(1, Ordering::Relaxed),
                )),
            Scenario::Update => self
                .client
                .post(self.url(&format!("{}/", self.ids.for_update(seq))))
                .json(&serde_json::json!({"run_count": self.updates.next()})),
            Scenario::Delete => match self.victims.take() {
                Some(id) => self.client.delete(self.url(&format!("{id}/"))),
                None => return Outcome::Stop,
            },
            read => {
                let path = if read.is_search() { "search/" } else { "" };
                let query = read.query(self.n).unwrap_or_default();
                self.client.get(format!("{}?{query}", self.url(path)))
            }
        };
        match request.bearer_auth(token).send().await {
            Ok(response) if response.status().is_success() => match response.bytes().await {
                Ok(body) if scenario == Scenario::Create => {
                    let created: serde_json::Value =
                        serde_json::from_slice(&body).unwrap_or_default();
                    match created["simulation_unit_test_id"].as_str() {
                        Some(id) => {
                            self.victims.add(id.to_owned());
                            Outcome::Ok
                        }
                        None => Outcome::Error("no id in the create answer".into()),
                    }
                }
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Error(e.to_string()),
            },
            Ok(response) => {
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                let message = format!("{status}: {body:.200}");
                if body.contains("\"request_timeout\"") {
                    Outcome::Timeout(message)
                } else {
                    Outcome::Error(message)
                }
            }
            Err(e) if e.is_timeout() => Outcome::Timeout(e.to_string()),
            Err(e) => Outcome::Error(e.to_string()),
        }
    }
}

/// What the store ceiling needs: the store, a template unit test to copy for creates, the pool.
pub struct Direct {
    pub store: Arc<dyn Store>,
    pub template: UnitTest,
    pub ids: Arc<IdPool>,
    pub n: usize,
    pub run: String,
    pub created: AtomicU64,
    pub updates: UpdateValues,
    pub victims: Victims,
}

impl Direct {
    /// The store calls the service makes for each scenario (authentication's lookups excluded,
    /// as in the HTTP ceiling they are part of the HTTP side).
    pub async fn call(&self, scenario: Scenario, seq: u64) -> Outcome {
        match self.run_op(scenario, seq).await {
            Ok(true) => Outcome::Ok,
            Ok(false) => Outcome::Stop,
            Err(e) => Outcome::Error(e),
        }
    }

    async fn run_op(&self, scenario: Scenario, seq: u64) -> Result<bool, String> {
        let s = self.store.as_ref();
        let err = |e: simtest::store::StoreError| e.to_string();
        let user = UserInfo {
            org_id: ORG.into(),
            user_id: fixtures::USERS[seq as usize % fixtures::USERS.len()].into(),
        };
        match scenario {
            Scenario::Ceiling => Ok(true),
            Scenario::Create => {
                let t = &self.template;
                s.service(&ORG.into(), t.service_id).await.map_err(err)?;
                s.named(NamedKind::Persona, &ORG.into(), t.persona_id)
                    .await
                    .map_err(err)?;
                s.named(NamedKind::Scenario, &ORG.into(), t.scenario_id)
                    .await
                    .map_err(err)?;
                let metric_ids: Vec<_> = t.success_criterions.iter().map(|c| c.metric_id).collect();
                s.metrics(&ORG.into(), &metric_ids).await.map_err(err)?;
                let now = Timestamp::now();
                let doc = UnitTest {
                    id: ObjectIdHex::generate(),
                    name: format!(
                        "{}store-{}",
                        self.run,
                        self.created.fetch_add(1, Ordering::Relaxed)
                    ),
                    creator: user.clone(),
                    updated_by: user,
                    created_at: now,
                    updated_at: now,
                    ..t.clone()
                };
                s.insert_unit_test(&doc).await.map_err(err)?;
                self.victims.add(doc.id.to_string());
                Ok(true)
            }
            Scenario::Update | Scenario::Delete => {
                let raw = match scenario {
                    Scenario::Update => Some(self.ids.for_update(seq).to_owned()),
                    _ => self.victims.take(),
                };
                let Some(raw) = raw else { return Ok(false) };
                let id = ObjectIdHex::parse(&raw).ok_or("bad id in the pool")?;
                let current = s
                    .unit_test(&ORG.into(), id)
                    .await
                    .map_err(err)?
                    .ok_or("unit test missing")?;
                let mut next = current.clone();
                if scenario == Scenario::Delete {
                    s.unit_test_in_live_set(&ORG.into(), id)
                        .await
                        .map_err(err)?;
                    next.is_deleted = true;
                } else {
                    next.run_count = self.updates.next();
                }
                next.updated_by = user;
                next.updated_at = Timestamp::after(current.updated_at);
                // A lost race with another client is a retry in the service; count it as done.
                s.replace_unit_test(&current, &next).await.map_err(err)?;
                Ok(true)
            }
            read => {
                let raw = read.query(self.n).unwrap_or_default();
                let params = QueryParams::parse(Some(&raw));
                let query = if read.is_search() {
                    search_query_for(&ORG.into(), &params)
                } else {
                    list_query_for(&ORG.into(), &params)
                }
                .map_err(|p| format!("{p:?}"))?;
                s.list_unit_tests(&query).await.map_err(err)?;
                Ok(true)
            }
        }
    }
}
