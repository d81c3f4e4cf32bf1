//! The rules of unit test sets: every unit test a set lists is an active unit test of the org
//! (checked by the store atomically with the write, so a set never comes to list a unit test
//! deleted meanwhile), names are unique among active sets, deletes are soft and free the set's
//! unit tests, and every change records who made it and when.

use super::MAX_WRITE_ATTEMPTS;
use crate::auth::{CurrentUser, Permission};
use crate::domain::query::SEARCH_LIMIT;
use crate::domain::query_string::{QueryParams, parse_set_list_request, parse_set_search_request};
use crate::domain::unit_test_set::{
    NewUnitTestSet, SetPage, UnitTestSet, UnitTestSetPatch, UnitTestSetQuery,
};
use crate::domain::{ObjectIdHex, Timestamp};
use crate::error::Error;
use crate::store::{StoreError, Written};

/// A page of sets and the offset it starts at.
pub struct UnitTestSetPage {
    pub page: SetPage,
    pub offset: u64,
}

/// Unit test set operations; each works in the store of the caller's org.
#[derive(Clone, Default)]
pub struct UnitTestSetService;

impl UnitTestSetService {
    #[tracing::instrument(skip_all, fields(org = %user.org_id))]
    pub async fn create(
        &self,
        user: &CurrentUser,
        new: NewUnitTestSet,
    ) -> Result<ObjectIdHex, Error> {
        let now = Timestamp::now();
        let set = UnitTestSet {
            id: ObjectIdHex::generate(),
            org_id: user.org_id.clone(),
            name: new.name,
            description: new.description,
            unit_test_runs: new.unit_test_runs,
            last_triggered_run_id: None,
            tags: new.tags,
            is_deleted: false,
            creator: user.info(),
            updated_by: user.info(),
            created_at: now,
            updated_at: now,
        };
        match user.store.insert_unit_test_set(&set).await {
            Ok(Written::Done) => {
                tracing::info!(unit_test_set_id = %set.id, "unit test set created");
                Ok(set.id)
            }
            Ok(Written::UnitTestMissing(id)) => Err(Error::UnitTestNotFound(id)),
            Ok(other) => Err(Error::Internal(format!("a set insert answered {other:?}"))),
            Err(StoreError::Duplicate) => Err(Error::SetNameTaken(set.name)),
            Err(e) => Err(e.into()),
        }
    }

    /// A list page for the query string `params`: facets on the first page only. A caller who
    /// may not read sets gets an empty page, not 403.
    pub async fn list(
        &self,
        user: &CurrentUser,
        params: &QueryParams,
    ) -> Result<UnitTestSetPage, Error> {
        if !user.can(Permission::GetSet) {
            return Ok(UnitTestSetPage {
                page: SetPage::cut(&empty_query(user), Vec::new()),
                offset: 0,
            });
        }
        let request = parse_set_list_request(&user.org_id, params)?;
        let query = UnitTestSetQuery {
            with_facets: request.offset == 0,
            filter: request.filter,
            updated_at_descending: request.updated_at_descending,
            offset: request.offset,
            limit: request.limit,
        };
        let page = user.store.list_unit_test_sets(&query).await?;
        Ok(UnitTestSetPage {
            page,
            offset: query.offset,
        })
    }

    /// Live sets whose name or description holds every term, most recently updated first, at
    /// most [`SEARCH_LIMIT`] (as unit test search); empty for a caller who may not read sets.
    pub async fn search(&self, user: &CurrentUser, params: &QueryParams) -> Result<SetPage, Error> {
        if !user.can(Permission::GetSet) {
            return Ok(SetPage::cut(&empty_query(user), Vec::new()));
        }
        let mut filter = parse_set_search_request(&user.org_id, params)?;
        filter.is_deleted = Some(false);
        let query = UnitTestSetQuery {
            filter,
            updated_at_descending: Some(true),
            offset: 0,
            limit: SEARCH_LIMIT,
            with_facets: false,
        };
        Ok(user.store.list_unit_test_sets(&query).await?)
    }

    #[tracing::instrument(skip_all, fields(org = %user.org_id, unit_test_set_id = %id))]
    pub async fn update(
        &self,
        user: &CurrentUser,
        id: ObjectIdHex,
        patch: UnitTestSetPatch,
    ) -> Result<(), Error> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.active(user, id).await?;
            let mut next = current.clone();
            patch.apply(&mut next);
            if next.same_content(&current) {
                return Ok(());
            }
            next.updated_by = user.info();
            next.updated_at = Timestamp::after(current.updated_at);
            match user.store.replace_unit_test_set(&current, &next).await {
                Ok(Written::Done) => {
                    tracing::info!("unit test set updated");
                    return Ok(());
                }
                Ok(Written::UnitTestMissing(missing)) => {
                    return Err(Error::UnitTestNotFound(missing));
                }
                Ok(Written::Stale | Written::InUse) => {}
                Err(StoreError::Duplicate) => return Err(Error::SetNameTaken(next.name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::TooManyConcurrentSetChanges(id))
    }

    /// Soft-deletes the set: its name and its unit tests are free again.
    #[tracing::instrument(skip_all, fields(org = %user.org_id, unit_test_set_id = %id))]
    pub async fn delete(&self, user: &CurrentUser, id: ObjectIdHex) -> Result<(), Error> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let current = self.active(user, id).await?;
            let mut next = current.clone();
            next.is_deleted = true;
            next.updated_by = user.info();
            next.updated_at = Timestamp::after(current.updated_at);
            if user.store.replace_unit_test_set(&current, &next).await? == Written::Done {
                tracing::info!("unit test set deleted");
                return Ok(());
            }
        }
        Err(Error::TooManyConcurrentSetChanges(id))
    }

    /// The set if it exists in the org and is not deleted.
    async fn active(&self, user: &CurrentUser, id: ObjectIdHex) -> Result<UnitTestSet, Error> {
        match user.store.unit_test_set(&user.org_id, id).await? {
            Some(s) if !s.is_deleted => Ok(s),
            _ => Err(Error::UnitTestSetNotFound(id)),
        }
    }
}

/// A query that selects nothing of the caller's org (the page of a caller who may not read).
fn empty_query(user: &CurrentUser) -> UnitTestSetQuery {
    UnitTestSetQuery {
        filter: crate::domain::unit_test_set::UnitTestSetFilter::for_org(&user.org_id),
        updated_at_descending: None,
        offset: 0,
        limit: 0,
        with_facets: false,
    }
}
