//! Moving unit tests in bulk: export (the unit tests a list's filters select, as NDJSON, a page
//! at a time so memory stays flat however many there are) and import (rows validated exactly as
//! create validates them, each answered on its own; `dry_run` validates only, `atomic` writes all
//! rows or none). An exported file imports into another org (whose references exist) as new unit
//! tests with new ids.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{LiveReferences, UnitTestService, list_query_for};
use crate::auth::CurrentUser;
use crate::domain::problems::{self as read, Loc, Problems};
use crate::domain::query_string::QueryParams;
use crate::domain::{NewUnitTest, ObjectIdHex, UnitTest};
use crate::error::Error;
use crate::store::StoreError;

/// Unit tests read per store round trip while exporting.
const EXPORT_PAGE: u32 = 500;

/// How many of an import's rows are written at once (a non-atomic import writes each on its own).
const IMPORT_WRITES: usize = 16;

/// What the store manages and a row of an export carries: left out when a row is imported (the
/// new unit test gets its own).
const MANAGED: [&str; 9] = [
    "id",
    "_id",
    "org_id",
    "is_deleted",
    "creator",
    "updated_by",
    "created_at",
    "updated_at",
    "run_count",
];

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Validate only; write nothing.
    pub dry_run: bool,
    /// Write every row or none.
    pub atomic: bool,
}

/// One row's outcome: its status as a create would answer it, and the new id or what is wrong.
#[derive(Debug, Serialize)]
pub struct RowResult {
    /// 1-based: the line of an NDJSON body, the element of a JSON array.
    pub row: usize,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<ObjectIdHex>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<&'static str>,
    /// The error's detail (for 422, every problem of the row).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Value>,
}

#[derive(Debug, Serialize)]
pub struct ImportReport {
    pub dry_run: bool,
    pub atomic: bool,
    /// Rows written (0 on a dry run).
    pub created: usize,
    /// Rows refused.
    pub failed: usize,
    pub results: Vec<RowResult>,
}

impl RowResult {
    fn failed(row: usize, error: &Error) -> Self {
        // A row's store trouble is logged as a whole request's is: the report shows no cause.
        match error {
            Error::Internal(cause) => {
                tracing::error!(row, cause = %cause, "import row: internal error")
            }
            Error::Unavailable(cause) => {
                tracing::warn!(row, cause = %cause, "import row: store unavailable")
            }
            _ => {}
        }
        Self {
            row,
            status: error.status().as_u16(),
            id: None,
            error_code: Some(error.code()),
            problems: Some(error.detail()),
        }
    }
}

/// An import's rows: each numbered (1-based), as JSON or as why its text is not JSON.
pub type Rows = Vec<(usize, Result<Value, Error>)>;

/// Splits an import body into rows: a JSON array, or NDJSON (one object per line; blank lines
/// skipped). A row that is not JSON stays as its problem.
pub fn rows_of(body: &[u8], json_array: bool) -> Result<Rows, Error> {
    if json_array {
        let value = crate::domain::json::parse_strict(body)
            .map_err(|e| invalid_body(format!("JSON decode error: {e}")))?;
        let Value::Array(items) = value else {
            return Err(invalid_body(
                "An import body in JSON is an array of unit tests".into(),
            ));
        };
        return Ok(items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (i + 1, Ok(v)))
            .collect());
    }
    let text =
        std::str::from_utf8(body).map_err(|_| invalid_body("NDJSON must be UTF-8".into()))?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            let row = crate::domain::json::parse_strict(line.as_bytes()).map_err(|e| {
                let mut p = Problems::default();
                p.push(
                    &Loc::root("body"),
                    "json_invalid",
                    format!("JSON decode error: {e}"),
                );
                Error::Invalid(p.into_vec())
            });
            (i + 1, row)
        })
        .collect())
}

fn invalid_body(msg: String) -> Error {
    let mut p = Problems::default();
    p.push(&Loc::root("body"), "json_invalid", msg);
    Error::Invalid(p.into_vec())
}

/// A row as create reads it: the fields the store manages left out, tags given as an export
/// writes them (a list of `{key, value}`) turned into the object create takes; and its
/// `run_count` (default 1).
fn normalize(row: Value) -> Result<(Value, u64), Error> {
    let mut p = Problems::default();
    let Value::Object(mut map) = row else {
        p.push(
            &Loc::root("body"),
            "model_type",
            "Each row is a JSON object",
        );
        return Err(Error::Invalid(p.into_vec()));
    };
    let run_count = match map.get("run_count") {
        None | Some(Value::Null) => Some(1),
        Some(v) => read::int_between(v, &Loc::root("body").key("run_count"), 0, i64::MAX, &mut p)
            .map(|n| n as u64),
    };
    for field in MANAGED {
        map.remove(field);
    }
    if let Some(Value::Array(tags)) = map.get("tags") {
        let mut object = Map::new();
        for tag in tags {
            match (tag.get("key").and_then(Value::as_str), tag.get("value")) {
                (Some(key), Some(value)) if tag.as_object().is_some_and(|t| t.len() == 2) => {
                    object.insert(key.to_owned(), value.clone());
                }
                _ => p.push(
                    &Loc::root("body").key("tags"),
                    "tag_format",
                    "Tags are an object {key: value}, or a list of {key, value} as exported",
                ),
            }
        }
        map.insert("tags".into(), Value::Object(object));
    }
    match run_count {
        Some(run_count) if p.is_empty() => Ok((Value::Object(map), run_count)),
        _ => Err(Error::Invalid(p.into_vec())),
    }
}

impl UnitTestService {
    /// The unit tests the list filters in `params` select, in id order, a page of
    /// [`EXPORT_PAGE`] at a time (each page read when the one before has been taken, so memory
    /// stays flat), each page starting above the last id of the one before (keyset, so a page
    /// costs the same at the end of a million as at the start, and a unit test hard-deleted
    /// meanwhile makes none skipped). The query string is judged before the first page is read.
    pub fn export(
        &self,
        user: CurrentUser,
        params: &QueryParams,
    ) -> Result<impl Stream<Item = Result<Vec<Arc<UnitTest>>, Error>> + Send + use<>, Error> {
        let mut query = list_query_for(&user.org_id, params)?;
        query.sort.clear();
        query.with_facets = false;
        query.offset = 0;
        query.limit = EXPORT_PAGE;
        Ok(futures::stream::try_unfold(
            (user, query, false),
            |(user, mut query, done)| async move {
                if done {
                    return Ok(None);
                }
                let page = user.store.list_unit_tests(&query).await?;
                query.after = page.items.last().map(|doc| doc.id).or(query.after);
                let done = !page.has_more;
                Ok(Some((page.items, (user, query, done))))
            },
        ))
    }

    /// Imports `rows` into the caller's org.
    #[tracing::instrument(skip_all, fields(org = %user.org_id, rows = rows.len()))]
    pub async fn import(
        &self,
        user: &CurrentUser,
        rows: Rows,
        options: ImportOptions,
    ) -> Result<ImportReport, Error> {
        // Every row judged as create judges it, names checked against each other too.
        if rows.is_empty() {
            let mut p = Problems::default();
            p.push(
                &Loc::root("body"),
                "too_short",
                "The import holds no unit tests",
            );
            return Err(Error::Invalid(p.into_vec()));
        }
        let mut results = Vec::with_capacity(rows.len());
        let mut ready: Vec<(usize, UnitTest)> = Vec::new();
        let mut names = HashSet::new();
        let mut live = LiveReferences::default();
        for (row, value) in rows {
            let judged = async {
                let (body, run_count) = normalize(value?)?;
                let new = NewUnitTest::parse(&body)?;
                self.prepare(user, new, run_count, &mut live).await
            }
            .await;
            match judged {
                Ok(doc) if !names.insert(doc.name.clone()) => {
                    results.push(RowResult::failed(row, &Error::NameTaken(doc.name)));
                }
                Ok(doc) => {
                    results.push(RowResult {
                        row,
                        status: 200,
                        id: None,
                        error_code: None,
                        problems: None,
                    });
                    ready.push((row, doc));
                }
                // Store trouble is the whole import's, not a row's.
                Err(e @ (Error::Unavailable(_) | Error::Internal(_))) => return Err(e),
                Err(e) => results.push(RowResult::failed(row, &e)),
            }
        }
        let refused = results.len() - ready.len();
        let mut created = 0;
        if options.dry_run || (options.atomic && refused > 0) {
            // Nothing is written: the rows that were fine say so.
            for result in &mut results {
                if result.status == 200 && !options.dry_run {
                    result.status = 424;
                    result.error_code = Some("not_written");
                }
            }
        } else if options.atomic {
            let docs: Vec<UnitTest> = ready.iter().map(|(_, d)| d.clone()).collect();
            match user.store.insert_unit_tests(&docs).await {
                Ok(()) => {
                    created = docs.len();
                    for (result, (_, doc)) in
                        (results.iter_mut()).filter(|r| r.status == 200).zip(&ready)
                    {
                        result.status = 201;
                        result.id = Some(doc.id);
                    }
                }
                Err(StoreError::Duplicate) => {
                    for result in results.iter_mut().filter(|r| r.status == 200) {
                        result.status = 409;
                        result.error_code = Some("unit_test_name_taken");
                        result.problems = Some(Value::String(
                            "A name in the import is taken by an active unit test; nothing was written."
                                .into(),
                        ));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            // Several at a time: each write waits for its commit (an fsync, or a MongoDB round
            // trip), and concurrent ones share it; one after another, 1,203 rows took 16 s on
            // MongoDB. Their names differ (checked above), so they cannot clash with each other.
            let writes: Vec<_> = (ready.iter())
                .map(|(_, doc)| user.store.insert_unit_test(doc))
                .collect();
            let written: Vec<_> = futures::stream::iter(writes)
                .buffered(IMPORT_WRITES)
                .collect()
                .await;
            // Store trouble is the whole import's only while nothing was written: once some rows
            // landed, a 503 would hide them (a request's time running out refuses the writes not
            // yet sent, not those done), so the report says which rows landed and which did not.
            let landed = written.iter().any(Result::is_ok);
            let mut ready = ready.into_iter().zip(written);
            for result in results.iter_mut().filter(|r| r.status == 200) {
                let Some(((_, doc), written)) = ready.next() else {
                    break;
                };
                match written {
                    Ok(()) => {
                        created += 1;
                        result.status = 201;
                        result.id = Some(doc.id);
                    }
                    Err(StoreError::Duplicate) => {
                        *result = RowResult::failed(result.row, &Error::NameTaken(doc.name));
                    }
                    Err(e) if !landed => return Err(e.into()),
                    Err(e) => *result = RowResult::failed(result.row, &e.into()),
                }
            }
        }
        let failed = results.iter().filter(|r| r.status >= 400).count();
        tracing::info!(created, failed, "unit tests imported");
        Ok(ImportReport {
            dry_run: options.dry_run,
            atomic: options.atomic,
            created,
            failed,
            results,
        })
    }
}
