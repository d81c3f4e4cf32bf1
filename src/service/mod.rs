//! The rules of unit tests: references must exist in the org, criteria must match their metric's
//! type, names are unique among active unit tests, deletes are soft and refused while a live unit
//! test set lists the unit test, and every change records who made it and when.

pub mod bulk;
pub mod history;
pub mod seed;
pub mod sets;

use std::collections::HashSet;

use crate::auth::{CurrentUser, Permission};
use crate::domain::etag::Condition;
use crate::domain::query::{
    ListPage, ListQuery, ListRequest, SEARCH_LIMIT, SearchRequest, SortField, SortKey,
};
use crate::domain::query_string::{QueryParams, parse_list_request, parse_search_request};
use crate::domain::{
    FieldProblem, MetricValueType, NewUnitTest, ObjectIdHex, OrgId, SuccessCriterion, Timestamp,
    UnitTest, UnitTestPatch,
};
use crate::error::{Error, Reference};
use crate::store::{NamedKind, StoreError, Written};

/// A list page and the offset it starts at (the next page's `continuation_token` follows from it).
pub struct UnitTestPage {
    pub page: ListPage,
    pub offset: u64,
}

impl UnitTestPage {
    fn empty() -> Self {
        Self {
            page: ListPage::empty(),
            offset: 0,
        }
    }
}

/// The list rules: what was asked, with the facets (`filter_values`) on the first page only.
pub fn list_query(request: ListRequest) -> ListQuery {
    ListQuery {
        with_facets: request.offset == 0,
        filter: request.filter,
        sort: request.sort,
        offset: request.offset,
        limit: request.limit,
        after: None,
    }
}

/// The search rules: live unit tests only, most recently updated first, at most [`SEARCH_LIMIT`],
/// no facets.
pub fn search_query(request: SearchRequest) -> ListQuery {
    let mut filter = request.filter;
    filter.is_deleted = Some(false);
    ListQuery {
        filter,
        sort: vec![SortKey {
            field: SortField::UpdatedAt,
            descending: true,
        }],
        offset: 0,
        limit: SEARCH_LIMIT,
        with_facets: false,
        after: None,
    }
}

/// The store query a list query string asks for: parsed, then [`list_query`]'s rules.
pub fn list_query_for(
    org_id: &OrgId,
    params: &QueryParams,
) -> Result<ListQuery, Vec<FieldProblem>> {
    Ok(list_query(parse_list_request(org_id, params)?))
}

/// The store query a search query string asks for: parsed, then [`search_query`]'s rules.
pub fn search_query_for(
    org_id: &OrgId,
    params: &QueryParams,
) -> Result<ListQuery, Vec<FieldProblem>> {
    Ok(search_query(parse_search_request(org_id, params)?))
}

/// How often an update or delete re-reads and retries when a concurrent change got in first.
pub(crate) const MAX_WRITE_ATTEMPTS: usize = 64;

/// Unit test operations; each works in the store of the caller's org ([`CurrentUser::store`]).
#[derive(Clone, Default)]
pub struct UnitTestService;

impl UnitTestService {
    #[tracing::instrument(skip_all, fields(org = %user.org_id))]
    pub async fn create(&self, user: &CurrentUser, new: NewUnitTest) -> Result<UnitTest, Error> {
        self.insert(user, new, 1).await
    }

    /// A new unit test with `source`'s content (deleted or not) under `name`: its references are
    /// checked again, as a create's are. simtest's own operation.
    #[tracing::instrument(skip_all, fields(org = %user.org_id, source = %source))]
    pub async fn clone_unit_test(
        &self,
        user: &CurrentUser,
        source: ObjectIdHex,
        name: String,
    ) -> Result<UnitTest, Error> {
        let source = self.get(user, source).await?;
        let new = NewUnitTest {
            name,
            description: source.description,
            service_id: source.service_id,
            service_version_set_name: source.service_version_set_name,
            persona_id: source.persona_id,
            scenario_id: source.scenario_id,
            max_interactions: source.max_interactions,
            success_criterions: source.success_criterions,
            tags: source.tags,
        };
        self.insert(user, new, source.run_count).await
    }

    async fn insert(
        &self,
        user: &CurrentUser,
        new: NewUnitTest,
        run_count: u64,
    ) -> Result<UnitTest, Error> {
        let mut live = LiveReferences::default();
        let doc = self.prepare(user, new, run_count, &mut live).await?;
        match user.store.insert_unit_test(&doc).await {
            Ok(()) => {
                tracing::info!(unit_test_id = %doc.id, "unit test created");
                Ok(doc)
            }
            Err(StoreError::Duplicate) => Err(Error::NameTaken(doc.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// The unit test a create makes of `new`, once its references are checked (those in `live`
    /// are not looked up again); not stored.
    pub(crate) async fn prepare(
        &self,
        user: &CurrentUser,
        new: NewUnitTest,
        run_count: u64,
        live: &mut LiveReferences,
    ) -> Result<UnitTest, Error> {
        let org = &user.org_id;
        let service = (new.service_id, new.service_version_set_name.clone());
        if !live.services.contains(&service) {
            self.check_service(user, new.service_id, &new.service_version_set_name)
                .await?;
            live.services.insert(service);
        }
        for (kind, id) in [
            (NamedKind::Persona, new.persona_id),
            (NamedKind::Scenario, new.scenario_id),
        ] {
            if !live.named.contains(&(kind, id)) {
                self.check_named(user, kind, id).await?;
                live.named.insert((kind, id));
            }
        }
        let metrics = (new.success_criterions.iter())
            .map(|c| (c.metric_id, c.criterion.value_type()))
            .collect::<Vec<_>>();
        if !metrics.iter().all(|m| live.metrics.contains(m)) {
            self.check_criteria(user, &new.success_criterions).await?;
            live.metrics.extend(metrics);
        }
        let now = Timestamp::now();
        let doc = UnitTest {
            id: ObjectIdHex::generate(),
            org_id: org.clone(),
            name: new.name,
            description: new.description,
            service_id: new.service_id,
            service_version_set_name: new.service_version_set_name,
            persona_id: new.persona_id,
            scenario_id: new.scenario_id,
            max_interactions: new.max_interactions,
            success_criterions: new.success_criterions,
            run_count,
            tags: new.tags,
            is_deleted: false,
            creator: user.info(),
            updated_by: user.info(),
            created_at: now,
            updated_at: now,
        };
        Ok(doc)
    }

    /// A list page for the query string `params`. A caller who may not read gets an empty page,
    /// not 403 (the contract's rule), before the query string is even judged.
    pub async fn list(
        &self,
        user: &CurrentUser,
        params: &QueryParams,
    ) -> Result<UnitTestPage, Error> {
        if !user.can(Permission::Get) {
            return Ok(UnitTestPage::empty());
        }
        let query = list_query_for(&user.org_id, params)?;
        let page = user.store.list_unit_tests(&query).await?;
        Ok(UnitTestPage {
            page,
            offset: query.offset,
        })
    }

    /// The search answer for the query string `params` (see [`search_query`]); empty for a caller
    /// who may not read.
    pub async fn search(
        &self,
        user: &CurrentUser,
        params: &QueryParams,
    ) -> Result<ListPage, Error> {
        if !user.can(Permission::Get) {
            return Ok(ListPage::empty());
        }
        let query = search_query_for(&user.org_id, params)?;
        Ok(user.store.list_unit_tests(&query).await?)
    }

    /// The unit test, deleted or not (simtest's own read-one operation).
    pub async fn get(&self, user: &CurrentUser, id: ObjectIdHex) -> Result<UnitTest, Error> {
        match user.store.unit_test(&user.org_id, id).await? {
            Some(t) => Ok(t),
            None => Err(Error::UnitTestNotFound(id)),
        }
    }

    /// Applies `patch`; with `if_match`, only while the unit test is at a version it names
    /// (checked on the version the conditional write is based on, so the check and the write
    /// are one step). Returns the unit test as stored after.
    #[tracing::instrument(skip_all, fields(org = %user.org_id, unit_test_id = %id))]
    pub async fn update(
        &self,
        user: &CurrentUser,
        id: ObjectIdHex,
        patch: UnitTestPatch,
        if_match: Option<&Condition>,
    ) -> Result<UnitTest, Error> {
        let mut checked_references = false;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.active(user, id).await?;
            check_precondition(&current, if_match)?;
            let mut next = current.clone();
            apply(&mut next, &patch);
            if next.same_content(&current) {
                return Ok(current);
            }
            // References are checked once, against the first version read: the patch decides which
            // changed, and a retry only happens because of a concurrent write to this unit test.
            if !checked_references {
                self.check_changed_references(user, &current, &next).await?;
                checked_references = true;
            }
            next.updated_by = user.info();
            next.updated_at = Timestamp::after(current.updated_at);
            if replace(user, &current, &next).await? == Written::Done {
                tracing::info!("unit test updated");
                return Ok(next);
            }
        }
        Err(Error::TooManyConcurrentChanges(id))
    }

    #[tracing::instrument(skip_all, fields(org = %user.org_id, unit_test_id = %id))]
    pub async fn delete(
        &self,
        user: &CurrentUser,
        id: ObjectIdHex,
        if_match: Option<&Condition>,
    ) -> Result<(), Error> {
        let org = &user.org_id;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.active(user, id).await?;
            check_precondition(&current, if_match)?;
            // A quick answer for the common case; the store checks again atomically with the write.
            if user.store.unit_test_in_live_set(org, id).await? {
                return Err(Error::UnitTestInUse(id));
            }
            let mut next = current.clone();
            next.is_deleted = true;
            next.updated_by = user.info();
            next.updated_at = Timestamp::after(current.updated_at);
            match replace(user, &current, &next).await? {
                Written::Done => {
                    tracing::info!("unit test deleted");
                    return Ok(());
                }
                Written::InUse => return Err(Error::UnitTestInUse(id)),
                Written::Stale | Written::UnitTestMissing(_) => {}
            }
        }
        Err(Error::TooManyConcurrentChanges(id))
    }

    /// The unit test if it exists in the org and is not deleted.
    async fn active(&self, user: &CurrentUser, id: ObjectIdHex) -> Result<UnitTest, Error> {
        let org = &user.org_id;
        match user.store.unit_test(org, id).await? {
            Some(t) if !t.is_deleted => Ok(t),
            _ => Err(Error::UnitTestNotFound(id)),
        }
    }

    async fn check_changed_references(
        &self,
        user: &CurrentUser,
        current: &UnitTest,
        next: &UnitTest,
    ) -> Result<(), Error> {
        if next.service_id != current.service_id
            || next.service_version_set_name != current.service_version_set_name
        {
            self.check_service(user, next.service_id, &next.service_version_set_name)
                .await?;
        }
        if next.persona_id != current.persona_id {
            self.check_named(user, NamedKind::Persona, next.persona_id)
                .await?;
        }
        if next.scenario_id != current.scenario_id {
            self.check_named(user, NamedKind::Scenario, next.scenario_id)
                .await?;
        }
        if next.success_criterions != current.success_criterions {
            self.check_criteria(user, &next.success_criterions).await?;
        }
        Ok(())
    }

    async fn check_service(
        &self,
        user: &CurrentUser,
        service_id: ObjectIdHex,
        version_set: &str,
    ) -> Result<(), Error> {
        let service = user
            .store
            .service(&user.org_id, service_id)
            .await?
            .filter(|s| s.is_live());
        let Some(service) = service else {
            return Err(Error::ReferenceNotFound {
                reference: Reference::Service,
                id: service_id.to_hex(),
            });
        };
        if !service.version_sets.contains_key(version_set) {
            return Err(Error::ReferenceNotFound {
                reference: Reference::VersionSet,
                id: version_set.to_owned(),
            });
        }
        Ok(())
    }

    async fn check_named(
        &self,
        user: &CurrentUser,
        kind: NamedKind,
        id: ObjectIdHex,
    ) -> Result<(), Error> {
        let org = &user.org_id;
        match user.store.named(kind, org, id).await? {
            Some(r) if !r.is_deleted => Ok(()),
            _ => {
                let reference = match kind {
                    NamedKind::Persona => Reference::Persona,
                    NamedKind::Scenario => Reference::Scenario,
                };
                Err(Error::ReferenceNotFound {
                    reference,
                    id: id.to_hex(),
                })
            }
        }
    }

    /// Every criterion's metric must exist (404) and measure the criterion's type (400).
    async fn check_criteria(
        &self,
        user: &CurrentUser,
        criteria: &[SuccessCriterion],
    ) -> Result<(), Error> {
        let mut ids: Vec<ObjectIdHex> = criteria.iter().map(|c| c.metric_id).collect();
        ids.sort();
        ids.dedup();
        let metrics = user.store.metrics(&user.org_id, &ids).await?;
        let live = |id: ObjectIdHex| metrics.iter().find(|m| m.id == id && !m.is_deleted);
        if let Some(missing) = criteria.iter().find(|c| live(c.metric_id).is_none()) {
            return Err(Error::ReferenceNotFound {
                reference: Reference::Metric,
                id: missing.metric_id.to_hex(),
            });
        }
        for (index, c) in criteria.iter().enumerate() {
            let metric = live(c.metric_id).expect("checked above");
            if metric.metric_value_type != c.criterion.value_type() {
                return Err(Error::MetricTypeMismatch {
                    index,
                    metric_id: c.metric_id,
                    criterion: c.criterion.value_type(),
                    metric: metric.metric_value_type,
                });
            }
        }
        Ok(())
    }
}

/// `Err(PreconditionFailed)` unless `if_match` (when given) names `current`'s version.
fn check_precondition(current: &UnitTest, if_match: Option<&Condition>) -> Result<(), Error> {
    match if_match {
        Some(condition) if !condition.matches_strongly(&current.etag()) => {
            Err(Error::PreconditionFailed(current.id))
        }
        _ => Ok(()),
    }
}

/// Applies the fields a patch gives; lists are replaced whole.
fn apply(doc: &mut UnitTest, patch: &UnitTestPatch) {
    fn set<T: Clone>(field: &mut T, value: &Option<T>) {
        if let Some(v) = value {
            *field = v.clone();
        }
    }
    set(&mut doc.description, &patch.description);
    set(&mut doc.service_id, &patch.service_id);
    set(
        &mut doc.service_version_set_name,
        &patch.service_version_set_name,
    );
    set(&mut doc.persona_id, &patch.persona_id);
    set(&mut doc.scenario_id, &patch.scenario_id);
    set(&mut doc.max_interactions, &patch.max_interactions);
    set(&mut doc.success_criterions, &patch.success_criterions);
    set(&mut doc.run_count, &patch.run_count);
    set(&mut doc.tags, &patch.tags);
}

/// Writes `next` over `current` unless another writer changed it first (`Stale`: read again).
async fn replace(
    user: &CurrentUser,
    current: &UnitTest,
    next: &UnitTest,
) -> Result<Written, Error> {
    // Tests make every write lose its race here (compiled in only with the `failpoints` feature).
    fail::fail_point!("service::lose_race", |_| Ok(Written::Stale));
    Ok(user.store.replace_unit_test(current, next).await?)
}

/// References found live while judging the rows of one request: an import's rows mostly share
/// the same few, and each lookup is a round trip on MongoDB (1,203 rows took over 30 s there,
/// four lookups a row). Later rows are judged against a reference as it was when first found.
#[derive(Default)]
pub(crate) struct LiveReferences {
    services: HashSet<(ObjectIdHex, String)>,
    named: HashSet<(NamedKind, ObjectIdHex)>,
    metrics: HashSet<(ObjectIdHex, MetricValueType)>,
}
