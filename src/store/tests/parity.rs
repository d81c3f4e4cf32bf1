//! The parity test: the same unit tests in the embedded store and in MongoDB give the same
//! answers (items, order, `has_more`, facets) to the same random queries. Needs a live MongoDB
//! (`SIMTEST_TEST_MONGODB_URI`); without it the test says SKIPPED and passes.

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::live_mongo as mongo;
use super::testgen::{random_query, random_unit_test};
use crate::domain::query::{FilterValues, ListPage};
use crate::domain::{ObjectIdHex, UnitTest};
use crate::store::Store;
use crate::store::embedded::EmbeddedStore;

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
