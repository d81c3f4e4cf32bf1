//! The parity test: the same unit tests in the embedded store and in MongoDB give the same
//! answers (items, order, `has_more`, facets) to the same random queries. Needs a live MongoDB
//! (`SIMTEST_TEST_MONGODB_URI`); without it the test says SKIPPED and passes.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::live_mongo as mongo;
use super::testgen::{random_doc, random_query, random_terms, random_unit_test};
use crate::domain::query::{FilterValues, ListPage, ListQuery, SortField, SortKey, compare};
use crate::domain::{ObjectIdHex, UnitTest};
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;
use crate::store::mongo::MongoStore;

fn summary(p: &ListPage) -> (Vec<(String, ObjectIdHex)>, bool, Option<FilterValues>) {
    (
        p.items.iter().map(|t| (t.name.clone(), t.id)).collect(),
        p.has_more,
        p.filter_values.clone(),
    )
}

/// A fresh MongoDB database and a fresh embedded store (in the returned dir), both holding
/// `docs`; `None` without a test MongoDB.
async fn both_holding(docs: &[UnitTest]) -> Option<(MongoStore, EmbeddedStore, tempfile::TempDir)> {
    let mongo = mongo().await?;
    let dir = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(dir.path()).unwrap();
    for d in docs {
        embedded.insert_unit_test(d).await.unwrap();
        mongo.insert_unit_test(d).await.unwrap();
    }
    Some((mongo, embedded, dir))
}

#[tokio::test]
async fn answers_match_the_embedded_store() {
    let mut rng = StdRng::seed_from_u64(7);
    let docs: Vec<UnitTest> = (0..150).map(|n| random_unit_test(&mut rng, n)).collect();
    let Some((mongo, embedded, _dir)) = both_holding(&docs).await else {
        return;
    };
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

/// The ids of the page the definition gives: every matching unit test, sorted, sliced.
fn by_definition(docs: &[UnitTest], q: &ListQuery) -> (Vec<ObjectIdHex>, bool) {
    let mut matching: Vec<&UnitTest> = docs.iter().filter(|d| q.selects(d)).collect();
    matching.sort_by(|a, b| compare(&q.sort, a, b));
    let start = (q.offset as usize).min(matching.len());
    let end = start.saturating_add(q.limit as usize).min(matching.len());
    (
        matching[start..end].iter().map(|d| d.id).collect(),
        end < matching.len(),
    )
}

/// Searches (MongoDB narrows by the grams of their terms, then verifies with regexes) give the
/// answers of the embedded store and of the definition: every form of sigma, letters whose lower
/// case is longer, regex metacharacters, terms of one or two bytes, terms nothing holds, two
/// frequent terms never together; while unit tests are rewritten (their grams with them).
#[tokio::test]
async fn searches_match_the_embedded_store_and_the_definition() {
    let mut rng = StdRng::seed_from_u64(17);
    let mut docs: Vec<UnitTest> = (0..250).map(|n| random_doc(&mut rng, n)).collect();
    let Some((mongo, embedded, _dir)) = both_holding(&docs).await else {
        return;
    };
    let (mut found, mut empty) = (0, 0);
    for round in 0..400 {
        if round % 8 == 0 {
            // Rewrite a live unit test: new name and description, so new grams.
            let i = rng.gen_range(0..docs.len());
            if !docs[i].is_deleted {
                let mut next = random_doc(&mut rng, 1000 + round);
                next.id = docs[i].id;
                next.org_id = docs[i].org_id.clone();
                next.created_at = docs[i].created_at;
                next.updated_at =
                    crate::domain::Timestamp::from_millis(docs[i].updated_at.millis() + 1);
                next.is_deleted = rng.gen_bool(0.2);
                let done = crate::store::Written::Done;
                assert_eq!(
                    embedded.replace_unit_test(&docs[i], &next).await.unwrap(),
                    done
                );
                assert_eq!(
                    mongo.replace_unit_test(&docs[i], &next).await.unwrap(),
                    done
                );
                docs[i] = next;
            }
        }
        let ids: Vec<ObjectIdHex> = docs.iter().map(|d| d.id).collect();
        let mut q = random_query(&mut rng, &ids);
        q.filter.terms = random_terms(&mut rng, &docs);
        q.with_facets = rng.gen_bool(0.2);
        if rng.gen_bool(0.6) {
            // Exactly what the search endpoint asks.
            q.filter = crate::domain::query::UnitTestFilter {
                is_deleted: Some(false),
                terms: q.filter.terms.clone(),
                ..crate::domain::query::UnitTestFilter::for_org(&q.filter.org_id)
            };
            q.sort = vec![SortKey {
                field: SortField::UpdatedAt,
                descending: true,
            }];
            (q.offset, q.limit, q.with_facets) = (0, 100, false);
        }
        let want = by_definition(&docs, &q);
        let embedded_page = embedded.list_unit_tests(&q).await.unwrap();
        let mongo_page = mongo.list_unit_tests(&q).await.unwrap();
        let ids_of = |p: &ListPage| p.items.iter().map(|t| t.id).collect::<Vec<_>>();
        assert_eq!(
            (ids_of(&embedded_page), embedded_page.has_more),
            want,
            "round {round}, embedded: {q:?}"
        );
        assert_eq!(
            (ids_of(&mongo_page), mongo_page.has_more),
            want,
            "round {round}, MongoDB: {q:?}\n{:?}",
            summary(&mongo_page)
        );
        assert_eq!(mongo_page.items, embedded_page.items, "round {round}");
        assert_eq!(
            mongo_page.filter_values, embedded_page.filter_values,
            "round {round}: {q:?}"
        );
        if want.0.is_empty() {
            empty += 1;
        } else {
            found += 1;
        }
    }
    assert!(found > 60 && empty > 100, "found {found}, empty {empty}");
    mongo.drop_database().await.unwrap();
}
