//! The query model of `domain::query` as MongoDB queries: the filter of
//! [`UnitTestFilter::matches`] and the order of [`compare`](crate::domain::query::compare), in the
//! field names of [`field`].

use mongodb::bson::{Bson, Document, doc};

use std::collections::BTreeMap;

use super::codec::{distinct_trigrams, field, ids_either_way, oid, set_field, tag_pair};
use crate::domain::query::{SortField, SortKey, TagValueFilter, UnitTestFilter};
use crate::domain::unit_test_set::{UnitTestSetFilter, UnitTestSetQuery};
use crate::domain::{ObjectIdHex, UserInfo};

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
pub(super) fn filter_document(f: &UnitTestFilter) -> Document {
    fn any_of(ids: &[ObjectIdHex]) -> Document {
        doc! {"$in": ids.iter().map(|id| id.to_hex()).collect::<Vec<_>>()}
    }
    let mut d = doc! {field::ORG_ID: &f.org_id};
    if let Some(deleted) = f.is_deleted {
        d.insert(field::IS_DELETED, deleted);
    }
    if !f.ids.is_empty() {
        let ids: Vec<Bson> = f.ids.iter().map(|id| Bson::ObjectId(oid(*id))).collect();
        d.insert(field::ID, doc! {"$in": ids});
    }
    if !f.service_ids.is_empty() {
        d.insert(field::SERVICE_ID, any_of(&f.service_ids));
    }
    if !f.persona_ids.is_empty() {
        d.insert(field::PERSONA_ID, any_of(&f.persona_ids));
    }
    if !f.scenario_ids.is_empty() {
        d.insert(field::SCENARIO_ID, any_of(&f.scenario_ids));
    }
    if !f.metric_ids.is_empty() {
        d.insert(field::CRITERION_METRIC_ID, any_of(&f.metric_ids));
    }
    // Clauses that are themselves `$or`s go under one `$and`, one per creator list, tag key and term.
    let all = shared_clauses(&f.creators, &f.tags, &f.terms);
    if !all.is_empty() {
        d.insert("$and", all);
    }
    d
}

/// The clauses of the filters unit tests and sets share (creators, tags, search terms), each to go
/// under one `$and`: one per creator list, tag key and term.
fn shared_clauses(
    creators: &[UserInfo],
    tags: &BTreeMap<String, Vec<TagValueFilter>>,
    terms: &[String],
) -> Vec<Document> {
    let mut all: Vec<Document> = Vec::new();
    if !creators.is_empty() {
        // Dotted fields, not `creator: {org_id, user_id}`: embedded-document equality depends on
        // field order, which documents written elsewhere need not share.
        let creators: Vec<Document> = creators
            .iter()
            .map(|u| doc! {field::CREATOR_ORG_ID: &u.org_id, field::CREATOR_USER_ID: u.user_id.as_str()})
            .collect();
        all.push(one_or_any(creators));
    }
    for (key, wanted) in tags {
        // `key:*` asks only for the key. A value (or null) must sit in the same tag as the key:
        // each tag is also stored as one string, so that is one equality on a multikey index (it
        // dates from FerretDB 1.x, which had no `$elemMatch` on fields; stored documents rely on it).
        let condition = if wanted.contains(&TagValueFilter::Any) {
            doc! {field::TAG_KEY: key}
        } else {
            let pairs: Vec<String> = wanted
                .iter()
                .map(|w| match w {
                    TagValueFilter::Exact(v) => tag_pair(key, Some(v)),
                    _ => tag_pair(key, None),
                })
                .collect();
            match <[String; 1]>::try_from(pairs) {
                Ok([one]) => doc! {field::TAG_PAIRS: one},
                Err(pairs) => doc! {field::TAG_PAIRS: {"$in": pairs}},
            }
        };
        all.push(condition);
    }
    if let Some(grams) = search_grams_condition(terms) {
        all.push(grams);
    }
    for term in terms {
        // The term (folded) in the folded text; in documents written before that field existed
        // (until the backfill reaches them), in the name or the description ignoring case.
        all.push(doc! {"$or": [
            {field::SEARCH_TEXT: {"$regex": escape_regex(term)}},
            {
                field::SEARCH_TEXT: {"$exists": false},
                "$or": [
                    {field::NAME: contains_ignoring_case(term)},
                    {field::DESCRIPTION: contains_ignoring_case(term)},
                ],
            },
        ]});
    }
    all
}

/// The filter of [`UnitTestSetFilter::matches`] as a MongoDB query, over the sets reads see: not
/// pending (an insert still fencing its unit tests, see `sets.rs`).
pub(super) fn set_filter_document(f: &UnitTestSetFilter) -> Document {
    let mut d = doc! {field::ORG_ID: &f.org_id};
    if let Some(deleted) = f.is_deleted {
        d.insert(field::IS_DELETED, deleted);
    }
    if !f.ids.is_empty() {
        let ids: Vec<Bson> = f.ids.iter().map(|id| Bson::ObjectId(oid(*id))).collect();
        d.insert(field::ID, doc! {"$in": ids});
    }
    if !f.unit_test_ids.is_empty() {
        // Seeded by other systems, a run's id may be an ObjectId.
        d.insert(
            set_field::RUN_UNIT_TEST_ID,
            doc! {"$in": ids_either_way(&f.unit_test_ids)},
        );
    }
    d.insert(set_field::PENDING_SINCE, doc! {"$exists": false});
    let all = shared_clauses(&f.creators, &f.tags, &f.terms);
    if !all.is_empty() {
        d.insert("$and", all);
    }
    d
}

/// The order of [`UnitTestSetQuery::compare`]: `updated_at` if asked, then `_id` ascending.
pub(super) fn set_sort_document(q: &UnitTestSetQuery) -> Document {
    match q.updated_at_descending {
        Some(descending) => {
            doc! {field::UPDATED_AT: if descending { -1 } else { 1 }, field::ID: 1}
        }
        None => doc! {field::ID: 1},
    }
}

/// What the `search_grams` of a document holding every term must hold: every 3-byte gram of every
/// term (`None` when no term has three bytes). Documents written before the field existed, until
/// the backfill reaches them, have none and are kept for the regexes to decide: the grams only
/// narrow, the regexes verify.
fn search_grams_condition(terms: &[String]) -> Option<Document> {
    let grams = distinct_trigrams(terms.iter().map(String::as_str));
    (!grams.is_empty()).then(|| {
        doc! {"$or": [
            {field::SEARCH_GRAMS: {"$all": grams}},
            {field::SEARCH_GRAMS: {"$exists": false}},
        ]}
    })
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
pub(super) fn sort_document(sort: &[SortKey]) -> Document {
    let mut d = Document::new();
    for key in sort {
        let name = match key.field {
            SortField::UpdatedAt => field::UPDATED_AT,
            SortField::CreatedAt => field::CREATED_AT,
            SortField::Name => field::NAME,
        };
        if !d.contains_key(name) {
            d.insert(name, if key.descending { -1 } else { 1 });
        }
    }
    d.insert(field::ID, 1);
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::query::ListQuery;
    use crate::domain::query_string::QueryParams;
    use crate::service::{
        list_query_for as parse_list_query, search_query_for as parse_search_query,
    };
    use crate::store::mongo::codec::gram_int;
    use crate::store::tests::testgen::id;

    fn list(query: &str) -> ListQuery {
        parse_list_query(&"acme".into(), &QueryParams::parse(Some(query))).expect("valid query")
    }

    fn search(text: &str) -> ListQuery {
        let raw = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", text)
            .finish();
        parse_search_query(&"acme".into(), &QueryParams::parse(Some(&raw))).expect("valid search")
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
    fn search_terms_are_escaped_regexes_on_the_folded_text_or_older_documents_name_or_description()
    {
        let f = search("Sign (v2.0)").filter;
        let either = |pattern: &str| {
            doc! {"$or": [
                {"search_text": {"$regex": pattern}},
                {"search_text": {"$exists": false}, "$or": [
                    {"name": {"$regex": pattern, "$options": "i"}},
                    {"description": {"$regex": pattern, "$options": "i"}},
                ]},
            ]}
        };
        // The grams of every term of three bytes or more narrow first: "sig", "ign", "(v2",
        // "v2.", "2.0", ".0)", ascending.
        let grams: Vec<i32> = ["(v2", ".0)", "2.0", "ign", "sig", "v2."]
            .iter()
            .map(|g| gram_int(crate::domain::search::key(g.as_bytes())))
            .collect();
        assert!(grams.is_sorted());
        assert_eq!(
            filter_document(&f),
            doc! {"org_id": "acme", "is_deleted": false, "$and": [
                {"$or": [{"search_grams": {"$all": grams}}, {"search_grams": {"$exists": false}}]},
                either("sign"),
                either(r"\(v2\.0\)"),
            ]}
        );
        // Terms under three bytes have no 3-byte gram: the regexes alone.
        assert_eq!(
            filter_document(&search("ab σ").filter),
            doc! {"org_id": "acme", "is_deleted": false, "$and": [either("ab"), either("σ")]}
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
    fn every_sort_field_sorts_the_stored_field_of_its_name() {
        for field in SortField::ALL {
            let sort = sort_document(&[SortKey {
                field,
                descending: false,
            }]);
            assert_eq!(sort.keys().next().map(String::as_str), Some(field.name()));
        }
    }
}
