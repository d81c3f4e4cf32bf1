//! `/openapi.json` against the public extract of the Amigo classic API (paths, operations,
//! parameters, bounds, required fields, status codes), against what the server really writes and
//! the limits it is configured with; and `/docs` as Swagger UI whose assets all come from this
//! server.
//!
//! The extract is read from the repository's copy (`docs/reference/`); when the shared checkout
//! sits beside this one (as in CI), the copy must equal it.
//! Embedded store only: the document describes the HTTP surface, which is the same on both stores.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use simtest::domain::{limits, query};
use simtest::ratelimit::Limited;

use crate::helpers::*;

/// The extracts of Amigo's document this server answers to: unit tests, and unit test sets.
const EXTRACTS: [(&str, &str); 2] = [
    (
        "amigo-unit-test-openapi.json",
        include_str!("../../docs/reference/amigo-unit-test-openapi.json"),
    ),
    (
        "amigo-unit-test-set-openapi.json",
        include_str!("../../docs/reference/amigo-unit-test-set-openapi.json"),
    ),
];
const SHARED_REFERENCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/reference/");

/// The tag of operations simtest has and Amigo's classic API does not.
const BEYOND_AMIGO: &str = "Beyond Amigo";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Keywords whose value bounds what a client may send or receive.
const BOUNDS: [&str; 10] = [
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "enum",
];

/// Follows `$ref`s (local ones, `#/...`) in `root` until a schema that is not one.
fn resolve<'v>(root: &'v Value, mut schema: &'v Value) -> &'v Value {
    for _ in 0..32 {
        let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
            return schema;
        };
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are expected: {target}"));
        schema = root
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {target}"));
    }
    panic!("$ref loop")
}

/// The schema without its `null` alternative, `$ref`s resolved: `anyOf`/`oneOf` of one schema
/// and `null` becomes that schema, `type: [T, "null"]` becomes `type: T`.
fn non_null(root: &Value, schema: &Value) -> Value {
    let schema = resolve(root, schema);
    for key in ["anyOf", "oneOf"] {
        if let Some(alternatives) = schema.get(key).and_then(Value::as_array) {
            let rest: Vec<&Value> = alternatives
                .iter()
                .filter(|s| s.get("type") != Some(&json!("null")))
                .collect();
            if rest.len() == 1 && alternatives.len() == 2 {
                let mut inner = non_null(root, rest[0]);
                // Bounds written beside the union still apply.
                if let (Value::Object(inner), Value::Object(outer)) = (&mut inner, schema) {
                    for (k, v) in outer.iter().filter(|(k, _)| *k != key) {
                        inner.entry(k.clone()).or_insert_with(|| v.clone());
                    }
                }
                return inner;
            }
        }
    }
    let mut out = schema.clone();
    if let Some(types) = schema.get("type").and_then(Value::as_array) {
        let rest: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        if rest.len() == 1 {
            out["type"] = rest[0].clone();
        }
    }
    out
}

/// Every operation of a document by (path, method).
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.insert((path.clone(), method.to_owned()), op);
            }
        }
    }
    ops
}

/// An operation's parameters by (in, name); header names in lower case (they are
/// case-insensitive).
fn parameters<'v>(root: &'v Value, op: &'v Value) -> BTreeMap<(String, String), &'v Value> {
    let Some(params) = op.get("parameters").and_then(Value::as_array) else {
        return BTreeMap::new();
    };
    params
        .iter()
        .map(|p| resolve(root, p))
        .map(|p| {
            let location = p["in"].as_str().unwrap_or_default().to_owned();
            let name = p["name"].as_str().unwrap_or_default();
            let name = if location == "header" {
                name.to_ascii_lowercase()
            } else {
                name.to_owned()
            };
            ((location, name), p)
        })
        .collect()
}

/// The `application/json` schema of a request body or response, if it has content.
fn json_schema<'v>(root: &'v Value, body: &'v Value) -> Option<&'v Value> {
    let body = resolve(root, body);
    body.get("content")?
        .get("application/json")
        .and_then(|c| c.get("schema"))
}

fn same_number(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn required_set(schema: &Value) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn required_flag(v: &Value) -> bool {
    v.get("required").and_then(Value::as_bool).unwrap_or(false)
}

/// Which side of an exchange a schema describes: requests must not accept fields the extract
/// does not know; responses may carry more (simtest adds `run_count`).
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Request,
    Response,
}

/// Compares the generated document with the extract, collecting every difference. Bounds the
/// extract sets must be here with the same value; bounds only simtest sets (limits it really
/// enforces) are allowed.
struct Comparison<'a> {
    extract: &'a Value,
    ours: &'a Value,
    differences: Vec<String>,
}

impl<'a> Comparison<'a> {
    fn differ(&mut self, at: &str, what: impl Into<String>) {
        self.differences.push(format!("{at}: {}", what.into()));
    }

    fn run(mut self) -> Vec<String> {
        let theirs = operations(self.extract);
        let ours = operations(self.ours);
        let label = |(path, method): &(String, String)| format!("{} {path}", method.to_uppercase());
        for key in theirs.keys().filter(|k| !ours.contains_key(*k)) {
            self.differ(&label(key), "operation missing");
        }
        // simtest's own operations are tagged so, and must be simtest's own.
        let beyond = |op: &Value| {
            op["tags"]
                .as_array()
                .is_some_and(|tags| tags.iter().any(|t| t == BEYOND_AMIGO))
        };
        for (key, op) in &ours {
            if beyond(op) && theirs.contains_key(key) {
                self.differ(&label(key), "tagged as simtest's own, but in the extract");
            }
        }
        for key in ours
            .iter()
            .filter(|(k, op)| !theirs.contains_key(*k) && !beyond(op))
            .map(|(k, _)| k)
        {
            self.differ(&label(key), "operation not in the extract");
        }
        for (key, their_op) in &theirs {
            if let Some(our_op) = ours.get(key) {
                self.operation(&label(key), their_op, our_op);
            }
        }
        self.differences
    }

    fn operation(&mut self, at: &str, theirs: &Value, ours: &Value) {
        if theirs["operationId"] != ours["operationId"] {
            self.differ(
                at,
                format!(
                    "operationId {} in the extract, {} here",
                    theirs["operationId"], ours["operationId"]
                ),
            );
        }
        self.parameters(at, theirs, ours);
        self.request_body(at, theirs, ours);
        self.responses(at, theirs, ours);
    }

    fn parameters(&mut self, at: &str, theirs: &Value, ours: &Value) {
        let their_params = parameters(self.extract, theirs);
        let our_params = parameters(self.ours, ours);
        // simtest's own optional parameters (their description says so) add to an operation
        // without changing what a client of the original sends.
        let simtest_own = |p: &Value| {
            p["required"] != true
                && p["description"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("simtest:"))
        };
        for (location, name) in our_params
            .iter()
            .filter(|(k, p)| !their_params.contains_key(*k) && !simtest_own(p))
            .map(|(k, _)| k)
        {
            self.differ(
                at,
                format!("parameter {name} in {location} is not in the extract"),
            );
        }
        for ((location, name), their) in &their_params {
            let here = format!("{at} parameter {name} in {location}");
            let Some(our) = our_params.get(&(location.clone(), name.clone())) else {
                self.differ(&here, "missing");
                continue;
            };
            if required_flag(their) != required_flag(our) {
                self.differ(
                    &here,
                    format!(
                        "required is {} in the extract, {} here",
                        required_flag(their),
                        required_flag(our)
                    ),
                );
            }
            self.schema(&here, &their["schema"], &our["schema"], Side::Request, 0);
        }
    }

    fn request_body(&mut self, at: &str, theirs: &Value, ours: &Value) {
        let here = format!("{at} request body");
        match (theirs.get("requestBody"), ours.get("requestBody")) {
            (None, None) => {}
            (Some(_), None) => self.differ(&here, "missing"),
            (None, Some(_)) => self.differ(&here, "not in the extract"),
            (Some(their), Some(our)) => {
                let (their, our) = (resolve(self.extract, their), resolve(self.ours, our));
                if required_flag(their) != required_flag(our) {
                    self.differ(
                        &here,
                        format!(
                            "required is {} in the extract, {} here",
                            required_flag(their),
                            required_flag(our)
                        ),
                    );
                }
                match (
                    json_schema(self.extract, their),
                    json_schema(self.ours, our),
                ) {
                    (Some(t), Some(o)) => self.schema(&here, t, o, Side::Request, 0),
                    (Some(_), None) => self.differ(&here, "no application/json schema here"),
                    _ => {}
                }
            }
        }
    }

    fn responses(&mut self, at: &str, theirs: &Value, ours: &Value) {
        let empty = Map::new();
        let their = theirs["responses"].as_object().unwrap_or(&empty);
        let our = ours["responses"].as_object().unwrap_or(&empty);
        for (status, their_response) in their {
            let here = format!("{at} response {status}");
            let Some(our_response) = our.get(status) else {
                self.differ(&here, "missing");
                continue;
            };
            match (
                json_schema(self.extract, their_response),
                json_schema(self.ours, our_response),
            ) {
                (Some(t), Some(o)) => self.schema(&here, t, o, Side::Response, 0),
                (Some(_), None) => self.differ(&here, "no application/json schema here"),
                _ => {}
            }
        }
    }

    /// The extract's type, bounds, required fields, properties, items, map values and union
    /// alternatives must be found here, recursively.
    fn schema(&mut self, at: &str, theirs: &Value, ours: &Value, side: Side, depth: usize) {
        assert!(depth < 16, "{at}: schemas nest too deep (a cycle?)");
        let their = non_null(self.extract, theirs);
        let our = non_null(self.ours, ours);

        if let (Some(t), Some(o)) = (their.get("type"), our.get("type"))
            && t != o
        {
            self.differ(at, format!("type {t} in the extract, {o} here"));
        }
        for keyword in BOUNDS {
            match (their.get(keyword), our.get(keyword)) {
                (Some(t), Some(o)) if !same_number(t, o) => {
                    self.differ(at, format!("{keyword} {t} in the extract, {o} here"));
                }
                (Some(t), None) => {
                    self.differ(at, format!("{keyword} {t} in the extract, missing here"))
                }
                _ => {}
            }
        }

        let (their_required, our_required) = (required_set(&their), required_set(&our));
        if their_required != our_required {
            let missing: Vec<_> = their_required.difference(&our_required).collect();
            let extra: Vec<_> = our_required.difference(&their_required).collect();
            self.differ(
                at,
                format!("required fields differ: missing here {missing:?}, extra here {extra:?}"),
            );
        }

        self.properties(at, &their, &our, side, depth);
        if let Some(their_items) = their.get("items") {
            match our.get("items") {
                Some(our_items) => {
                    self.schema(&format!("{at}[]"), their_items, our_items, side, depth + 1)
                }
                None => self.differ(at, "array items missing here"),
            }
        }
        if let Some(their_values @ Value::Object(_)) = their.get("additionalProperties") {
            match our.get("additionalProperties") {
                Some(our_values @ Value::Object(_)) => self.schema(
                    &format!("{at}{{*}}"),
                    their_values,
                    our_values,
                    side,
                    depth + 1,
                ),
                other => self.differ(
                    at,
                    format!("additionalProperties is a schema in the extract, {other:?} here"),
                ),
            }
        }
        self.union(at, &their, &our, side, depth);
    }

    fn properties(&mut self, at: &str, their: &Value, our: &Value, side: Side, depth: usize) {
        let empty = Map::new();
        let their_props = their
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let our_props = our
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (name, their_prop) in their_props {
            let here = format!("{at}.{name}");
            match our_props.get(name) {
                Some(our_prop) => self.schema(&here, their_prop, our_prop, side, depth + 1),
                None => self.differ(&here, "property missing here"),
            }
        }
        if side == Side::Request && !their_props.is_empty() {
            for name in our_props.keys().filter(|n| !their_props.contains_key(*n)) {
                self.differ(
                    &format!("{at}.{name}"),
                    "request property not in the extract",
                );
            }
        }
    }

    /// A discriminated union: same discriminator, same tags, each alternative compared.
    fn union(&mut self, at: &str, their: &Value, our: &Value, side: Side, depth: usize) {
        let Some(their_disc) = their.get("discriminator") else {
            return;
        };
        let Some(our_disc) = our.get("discriminator") else {
            self.differ(at, "discriminator missing here");
            return;
        };
        if their_disc["propertyName"] != our_disc["propertyName"] {
            self.differ(
                at,
                format!(
                    "discriminator {} in the extract, {} here",
                    their_disc["propertyName"], our_disc["propertyName"]
                ),
            );
        }
        let empty = Map::new();
        let their_map = their_disc["mapping"].as_object().unwrap_or(&empty);
        let our_map = our_disc["mapping"].as_object().unwrap_or(&empty);
        let tags = |m: &Map<String, Value>| m.keys().cloned().collect::<BTreeSet<_>>();
        if tags(their_map) != tags(our_map) {
            self.differ(
                at,
                format!(
                    "discriminator tags {:?} in the extract, {:?} here",
                    tags(their_map),
                    tags(our_map)
                ),
            );
        }
        for (tag, their_ref) in their_map {
            if let Some(our_ref) = our_map.get(tag) {
                self.schema(
                    &format!("{at}<{tag}>"),
                    &json!({ "$ref": their_ref }),
                    &json!({ "$ref": our_ref }),
                    side,
                    depth + 1,
                );
            }
        }
    }
}

fn compare(extract: &Value, generated: &Value) -> Vec<String> {
    Comparison {
        extract,
        ours: generated,
        differences: Vec::new(),
    }
    .run()
}

async fn generated_document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(content_type.as_deref(), Some("application/json"));
    response.json().await.expect("/openapi.json is JSON")
}

/// The extracts as one document: their paths and their component schemas together (the two
/// name no schema differently).
fn extract() -> Value {
    let mut merged: Option<Value> = None;
    for (name, text) in EXTRACTS {
        let doc: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        match &mut merged {
            None => merged = Some(doc),
            Some(all) => {
                for section in ["paths", "components/schemas", "components/securitySchemes"] {
                    let pointer = format!("/{section}");
                    let (Some(into), Some(from)) = (
                        all.pointer_mut(&pointer).and_then(Value::as_object_mut),
                        doc.pointer(&pointer).and_then(Value::as_object),
                    ) else {
                        continue;
                    };
                    for (key, value) in from {
                        if let Some(existing) = into.get(key) {
                            assert_eq!(existing, value, "{name}: {section}/{key} differs");
                        }
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
    }
    merged.expect("extracts")
}

#[tokio::test]
async fn the_repository_copies_of_the_extracts_equal_the_shared_ones() {
    for (name, copy) in EXTRACTS {
        let shared_path = format!("{SHARED_REFERENCE}{name}");
        match std::fs::read_to_string(&shared_path) {
            Ok(shared) => assert_eq!(
                serde_json::from_str::<Value>(&shared).unwrap(),
                serde_json::from_str::<Value>(copy).unwrap(),
                "docs/reference/{name} differs from {shared_path}: copy it again"
            ),
            // On the real stderr: the harness swallows `println!`, and .ci/run lists every skip.
            Err(_) => say_skipped(&format!("no shared checkout at {shared_path}")),
        }
    }
}

#[tokio::test]
async fn the_generated_document_matches_the_extract() {
    let app = spawn_app(Backend::Embedded).await;
    let generated = generated_document(&app).await;
    assert_eq!(generated["openapi"], "3.1.0");
    let differences = compare(&extract(), &generated);
    assert!(
        differences.is_empty(),
        "/openapi.json differs from the extracts in docs/reference/ in {} place(s):\n  - {}",
        differences.len(),
        differences.join("\n  - ")
    );
}

#[tokio::test]
async fn the_generated_document_declares_the_security_schemes_of_the_extract() {
    let app = spawn_app(Backend::Embedded).await;
    let generated = generated_document(&app).await;
    let extract = extract();
    for (name, scheme) in extract["components"]["securitySchemes"]
        .as_object()
        .unwrap()
    {
        let ours = &generated["components"]["securitySchemes"][name];
        for key in ["type", "scheme", "bearerFormat", "in", "name"] {
            assert_eq!(
                ours.get(key),
                scheme.get(key),
                "security scheme {name}: {key}"
            );
        }
    }
    // Every scheme an operation or the document names is declared.
    let declared = generated["components"]["securitySchemes"]
        .as_object()
        .unwrap();
    let mut requirements: Vec<&Value> = generated["security"].as_array().unwrap().iter().collect();
    for op in operations(&generated).values() {
        requirements.extend(
            op.get("security")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    }
    for requirement in requirements {
        for name in requirement.as_object().unwrap().keys() {
            assert!(
                declared.contains_key(name),
                "security scheme {name} is not declared"
            );
        }
    }
}

#[tokio::test]
async fn every_reference_in_the_generated_document_resolves() {
    fn walk<'v>(node: &'v Value, refs: &mut Vec<&'v str>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    refs.push(target);
                }
                if let Some(Value::Object(mapping)) = map.get("mapping") {
                    refs.extend(mapping.values().filter_map(Value::as_str));
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let app = spawn_app(Backend::Embedded).await;
    let generated = generated_document(&app).await;
    let mut refs = Vec::new();
    walk(&generated, &mut refs);
    let dangling: Vec<&str> = refs
        .into_iter()
        .filter(|r| {
            r.strip_prefix('#')
                .and_then(|pointer| generated.pointer(pointer))
                .is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "unresolved references: {dangling:?}");
}

/// The comparison itself must notice a difference, or a passing test would prove nothing.
#[test]
fn the_comparison_reports_a_changed_bound_a_lost_parameter_and_a_lost_status() {
    let extract = extract();
    let mut changed = extract.clone();
    let op = &mut changed["paths"]["/v1/{organization}/simulation/unit_test/"]["get"];
    let params = op["parameters"].as_array_mut().unwrap();
    params.retain(|p| p["name"] != "creator");
    for p in params.iter_mut().filter(|p| p["name"] == "limit") {
        p["schema"]["maximum"] = json!(100);
    }
    op["responses"].as_object_mut().unwrap().remove("429");
    changed["components"]["schemas"]
        ["src__app__endpoints__simulation__create_simulation_unit_test__Request"]["required"]
        .as_array_mut()
        .unwrap()
        .pop();
    let differences = compare(&extract, &changed).join("\n");
    for expected in [
        "GET /v1/{organization}/simulation/unit_test/ parameter creator in query: missing",
        "GET /v1/{organization}/simulation/unit_test/ parameter limit in query: maximum 500 in the extract, 100 here",
        "GET /v1/{organization}/simulation/unit_test/ response 429: missing",
        "POST /v1/{organization}/simulation/unit_test/ request body: required fields differ: missing here [\"tags\"]",
    ] {
        assert!(
            differences.contains(expected),
            "expected {expected:?} among:\n{differences}"
        );
    }
    assert!(compare(&extract, &extract).is_empty());
}

/// The properties a documented schema names, and those it requires.
fn documented(doc: &Value, schema_name: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = &doc["components"]["schemas"][schema_name];
    let properties = schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema_name} has no properties"))
        .keys()
        .cloned()
        .collect();
    (properties, required_set(schema))
}

fn assert_written_as_documented(doc: &Value, schema_name: &str, written: &Value) {
    let (properties, required) = documented(doc, schema_name);
    let keys: BTreeSet<String> = written.as_object().unwrap().keys().cloned().collect();
    let undocumented: Vec<_> = keys.difference(&properties).collect();
    let absent: Vec<_> = required.difference(&keys).collect();
    assert!(
        undocumented.is_empty() && absent.is_empty(),
        "{schema_name}: written but not documented {undocumented:?}, required but not written {absent:?}\nin {written}"
    );
}

/// The schema names the document uses for an operation's JSON answer.
fn response_schema_name(doc: &Value, path: &str, method: &str, status: &str) -> String {
    doc["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap_or_else(|| panic!("{method} {path} {status} has no schema $ref"))
        .to_owned()
}

fn item_schema_name(doc: &Value, response_schema: &str) -> String {
    doc["components"]["schemas"][response_schema]["properties"]["simulation_unit_tests"]["items"]
        ["$ref"]
        .as_str()
        .and_then(|r| r.rsplit('/').next())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_server_writes_what_the_document_describes() {
    let app = spawn_app(Backend::Embedded).await;
    let doc = generated_document(&app).await;
    let collection = "/v1/{organization}/simulation/unit_test/";
    let search = "/v1/{organization}/simulation/unit_test/search/";

    let created = app.create(&unit_test_body("Documented")).await;
    let (status, body) = status_and_json(created).await;
    assert_eq!(status, StatusCode::CREATED);
    let name = response_schema_name(&doc, collection, "post", "201");
    assert_written_as_documented(&doc, &name, &body);

    let page = app.list("").await;
    let name = response_schema_name(&doc, collection, "get", "200");
    assert_written_as_documented(&doc, &name, &page);
    let item = item_schema_name(&doc, &name);
    assert_written_as_documented(&doc, &item, &page["simulation_unit_tests"][0]);
    assert_written_as_documented(&doc, "FilterValues", &page["filter_values"]);

    let found = app.search("query=documented").await;
    let name = response_schema_name(&doc, search, "get", "200");
    assert_written_as_documented(&doc, &name, &found);
    let item = item_schema_name(&doc, &name);
    assert_written_as_documented(&doc, &item, &found["simulation_unit_tests"][0]);

    let invalid = app.create(&json!({"name": ""})).await;
    let (status, body) = status_and_json(invalid).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let name = response_schema_name(&doc, collection, "post", "422");
    assert_written_as_documented(&doc, &name, &body);
    assert_written_as_documented(&doc, "ValidationProblem", &body["detail"][0]);

    let taken = app.create(&unit_test_body("Documented")).await;
    let (status, body) = status_and_json(taken).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let name = response_schema_name(&doc, collection, "post", "409");
    assert_written_as_documented(&doc, &name, &body);
}

#[tokio::test]
async fn the_docs_page_is_swagger_ui_on_the_document_with_assets_from_this_server() {
    let app = spawn_app(Backend::Embedded).await;
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.url().path(), "/docs/", "/docs leads to the page");
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let page = response.text().await.unwrap();
    assert!(page.contains("swagger-ui-bundle.js"), "{page}");
    // Every asset the page names is relative, and this server serves it.
    let assets: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| page.split(attr).skip(1))
        .map(|rest| &rest[..rest.find('"').unwrap()])
        .collect();
    assert!(assets.len() >= 5, "{assets:?}");
    for asset in &assets {
        assert!(
            !asset.contains("//") && !asset.starts_with('/'),
            "the page must load its assets from beside itself: {asset}"
        );
        let url = app.url(&format!("/docs/{}", asset.trim_start_matches("./")));
        let r = app.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
    }
    let init = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    let init = init.text().await.unwrap();
    assert!(init.contains(r#""url": "/openapi.json""#), "{init}");
    // Swagger UI's default asks validator.swagger.io about the document.
    assert!(init.contains(r#""validatorUrl": "none""#), "{init}");
    assert!(
        !init.contains("://"),
        "no absolute URL in the configuration: {init}"
    );
    let missing = app
        .client
        .get(app.url("/docs/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_error(missing, StatusCode::NOT_FOUND, "not_found").await;
}

#[tokio::test]
async fn the_document_states_this_servers_limits() {
    let app = spawn_app_with(Backend::Embedded, |config| {
        config.rate_limits.set(Limited::CreateUnitTest, 7);
        config.rate_limits.set(Limited::SearchUnitTests, 0);
        config.http.max_body_bytes = 3000;
    })
    .await;
    let doc = generated_document(&app).await;
    let text = doc.to_string();
    // `{NAME}` is how the derives' texts name a limit the server fills in.
    let unfilled = text.split('{').skip(1).find(|rest| {
        let name = rest.split('}').next().unwrap_or_default();
        rest.contains('}')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    });
    assert!(
        unfilled.is_none(),
        "a limit was left unfilled: {unfilled:?}"
    );
    let response = |path: &str, method: &str, status: &str| {
        doc["paths"][path][method]["responses"][status]["description"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} {status}"))
            .to_owned()
    };
    let collection = "/v1/{organization}/simulation/unit_test/";
    let one = "/v1/{organization}/simulation/unit_test/{simulation_unit_test_id}/";
    let search = "/v1/{organization}/simulation/unit_test/search/";
    let sign_in = "/v1/{organization}/user/signin_with_api_key";
    let per_minute =
        |n: u32| format!("the rate limit of {n} requests per minute for this endpoint");
    assert!(response(collection, "post", "429").contains(&per_minute(7)));
    assert!(response(collection, "get", "429").contains(&per_minute(200)));
    assert!(response(one, "post", "429").contains(&per_minute(500)));
    assert!(response(sign_in, "post", "429").contains(&per_minute(5)));
    assert!(
        response(search, "get", "429").contains("none is configured for this endpoint"),
        "{}",
        response(search, "get", "429")
    );
    for (path, method) in [(collection, "post"), (one, "post")] {
        assert_eq!(
            response(path, method, "413"),
            "The request body is larger than this server's limit of 3000 bytes."
        );
    }
    let search_op = doc["paths"][search]["get"]["description"].as_str().unwrap();
    assert!(
        search_op.contains(&format!("at most {}.", query::SEARCH_LIMIT)),
        "{search_op}"
    );
    let schemas = &doc["components"]["schemas"];
    let short = schemas["StrippedNonemptyString"]["description"]
        .as_str()
        .unwrap();
    let chars = format!("{} characters", limits::SHORT_STRING_CHARS);
    assert!(short.contains(&chars), "{short}");
}
