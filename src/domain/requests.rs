//! Request bodies of create and update, parsed in one step into typed values with every problem listed.

use serde_json::Value;

use super::problems::{self as read, FieldProblem, Loc, Obj, Problems};
use super::{Criterion, ObjectIdHex, SuccessCriterion, Tag, Verb, limits};

/// A validated create request.
#[derive(Debug, Clone)]
pub struct NewUnitTest {
    pub name: String,
    pub description: String,
    pub service_id: ObjectIdHex,
    pub service_version_set_name: String,
    pub persona_id: ObjectIdHex,
    pub scenario_id: ObjectIdHex,
    pub max_interactions: u32,
    pub success_criterions: Vec<SuccessCriterion>,
    pub tags: Vec<Tag>,
}

/// A validated update request: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UnitTestPatch {
    pub description: Option<String>,
    pub service_id: Option<ObjectIdHex>,
    pub service_version_set_name: Option<String>,
    pub persona_id: Option<ObjectIdHex>,
    pub scenario_id: Option<ObjectIdHex>,
    pub max_interactions: Option<u32>,
    pub success_criterions: Option<Vec<SuccessCriterion>>,
    pub run_count: Option<u64>,
    pub tags: Option<Vec<Tag>>,
}

const CREATE_FIELDS: [&str; 9] = [
    "name",
    "description",
    "service_id",
    "service_version_set_name",
    "persona_id",
    "scenario_id",
    "max_interactions",
    "success_criterions",
    "tags",
];

const UPDATE_FIELDS: [&str; 9] = [
    "description",
    "service_id",
    "service_version_set_name",
    "persona_id",
    "scenario_id",
    "max_interactions",
    "success_criterions",
    "run_count",
    "tags",
];

const MAX_INTERACTIONS: i64 = 100;

impl NewUnitTest {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldProblem>> {
        let mut p = Problems::default();
        let Some(obj) = Obj::read(body, Loc::root("body"), &mut p) else {
            return Err(p.into_vec());
        };
        obj.reject_unknown(&CREATE_FIELDS, &mut p);
        let req = |name: &str, p: &mut Problems| obj.required(name, p);

        let name = req("name", &mut p)
            .and_then(|(v, l)| read::stripped_nonempty(v, &l, limits::NAME_CHARS, &mut p));
        let description = req("description", &mut p)
            .and_then(|(v, l)| read::stripped_nonempty(v, &l, limits::DESCRIPTION_CHARS, &mut p));
        let service_id =
            req("service_id", &mut p).and_then(|(v, l)| read::object_id(v, &l, &mut p));
        let version_set = req("service_version_set_name", &mut p)
            .and_then(|(v, l)| version_set_name(v, &l, &mut p));
        let persona_id =
            req("persona_id", &mut p).and_then(|(v, l)| read::object_id(v, &l, &mut p));
        let scenario_id =
            req("scenario_id", &mut p).and_then(|(v, l)| read::object_id(v, &l, &mut p));
        let max_interactions = req("max_interactions", &mut p)
            .and_then(|(v, l)| read::int_between(v, &l, 0, MAX_INTERACTIONS, &mut p));
        let criteria =
            req("success_criterions", &mut p).and_then(|(v, l)| success_criterions(v, &l, &mut p));
        let tags = req("tags", &mut p).and_then(|(v, l)| tags(v, &l, &mut p));

        let built = (|| {
            Some(NewUnitTest {
                name: name?,
                description: description?,
                service_id: service_id?,
                service_version_set_name: version_set?,
                persona_id: persona_id?,
                scenario_id: scenario_id?,
                max_interactions: max_interactions? as u32,
                success_criterions: criteria?,
                tags: tags?,
            })
        })();
        match built {
            Some(new) if p.is_empty() => Ok(new),
            _ => Err(p.into_vec()),
        }
    }
}

/// The body of simtest's clone operation: the new unit test's name.
#[derive(Debug, Clone)]
pub struct CloneRequest {
    pub name: String,
}

impl CloneRequest {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldProblem>> {
        let mut p = Problems::default();
        let Some(obj) = Obj::read(body, Loc::root("body"), &mut p) else {
            return Err(p.into_vec());
        };
        obj.reject_unknown(&["name"], &mut p);
        let name = obj
            .required("name", &mut p)
            .and_then(|(v, l)| read::stripped_nonempty(v, &l, limits::NAME_CHARS, &mut p));
        match name {
            Some(name) if p.is_empty() => Ok(Self { name }),
            _ => Err(p.into_vec()),
        }
    }
}

impl UnitTestPatch {
    pub fn parse(body: &Value) -> Result<Self, Vec<FieldProblem>> {
        let mut p = Problems::default();
        let Some(obj) = Obj::read(body, Loc::root("body"), &mut p) else {
            return Err(p.into_vec());
        };
        if obj.map.contains_key("name") {
            p.push(
                &obj.loc.key("name"),
                "name_immutable",
                "The name of a unit test cannot be changed",
            );
        }
        let unknown: Vec<&str> = UPDATE_FIELDS.iter().copied().chain(["name"]).collect();
        obj.reject_unknown(&unknown, &mut p);

        let patch = UnitTestPatch {
            description: obj.optional("description").and_then(|(v, l)| {
                read::stripped_nonempty(v, &l, limits::DESCRIPTION_CHARS, &mut p)
            }),
            service_id: obj
                .optional("service_id")
                .and_then(|(v, l)| read::object_id(v, &l, &mut p)),
            service_version_set_name: obj
                .optional("service_version_set_name")
                .and_then(|(v, l)| version_set_name(v, &l, &mut p)),
            persona_id: obj
                .optional("persona_id")
                .and_then(|(v, l)| read::object_id(v, &l, &mut p)),
            scenario_id: obj
                .optional("scenario_id")
                .and_then(|(v, l)| read::object_id(v, &l, &mut p)),
            max_interactions: obj
                .optional("max_interactions")
                .and_then(|(v, l)| read::int_between(v, &l, 0, MAX_INTERACTIONS, &mut p))
                .map(|n| n as u32),
            success_criterions: obj
                .optional("success_criterions")
                .and_then(|(v, l)| success_criterions(v, &l, &mut p)),
            run_count: obj
                .optional("run_count")
                .and_then(|(v, l)| read::int_between(v, &l, 0, i64::MAX, &mut p))
                .map(|n| n as u64),
            tags: obj.optional("tags").and_then(|(v, l)| tags(v, &l, &mut p)),
        };
        p.finish(|| patch)
    }
}

fn version_set_name(v: &Value, loc: &Loc, p: &mut Problems) -> Option<String> {
    read::stripped_nonempty(v, loc, limits::SHORT_STRING_CHARS, p)
}

fn success_criterions(v: &Value, loc: &Loc, p: &mut Problems) -> Option<Vec<SuccessCriterion>> {
    let items = read::list(v, loc, 1, limits::CRITERIA, p)?;
    let parsed: Vec<Option<SuccessCriterion>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| success_criterion(item, &loc.index(i), p))
        .collect();
    parsed.into_iter().collect()
}

fn success_criterion(v: &Value, loc: &Loc, p: &mut Problems) -> Option<SuccessCriterion> {
    let obj = Obj::read(v, loc.clone(), p)?;
    obj.reject_unknown(&["name", "metric_id", "criterion"], p);
    let name = obj
        .required("name", p)
        .and_then(|(v, l)| read::stripped_nonempty(v, &l, limits::SHORT_STRING_CHARS, p));
    let metric_id = obj
        .required("metric_id", p)
        .and_then(|(v, l)| read::object_id(v, &l, p));
    let criterion = obj
        .required("criterion", p)
        .and_then(|(v, l)| criterion(v, &l, p));
    Some(SuccessCriterion {
        name: name?,
        metric_id: metric_id?,
        criterion: criterion?,
    })
}

fn criterion(v: &Value, loc: &Loc, p: &mut Problems) -> Option<Criterion> {
    let obj = Obj::read(v, loc.clone(), p)?;
    let Some(Value::String(kind)) = obj.map.get("type") else {
        p.push(
            &loc.key("type"),
            "union_tag_not_found",
            "Unable to extract tag using discriminator 'type'; expected 'boolean', 'numerical' or 'categorical'",
        );
        return None;
    };
    // Problems inside a criterion are located under its type, as the discriminated union does.
    let inner = Obj {
        map: obj.map,
        loc: loc.key(kind),
    };
    match kind.as_str() {
        "boolean" => {
            inner.reject_unknown(&["type", "expected_value"], p);
            let expected_value = inner
                .required("expected_value", p)
                .and_then(|(v, l)| read::boolean(v, &l, p))?;
            Some(Criterion::Boolean { expected_value })
        }
        "numerical" => {
            inner.reject_unknown(&["type", "verb", "threshold"], p);
            let verb = inner.required("verb", p).and_then(|(v, l)| verb(v, &l, p));
            let threshold = inner
                .required("threshold", p)
                .and_then(|(v, l)| read::number(v, &l, p));
            Some(Criterion::Numerical {
                verb: verb?,
                threshold: threshold?,
            })
        }
        "categorical" => {
            inner.reject_unknown(&["type", "expected_values"], p);
            let (v, l) = inner.required("expected_values", p)?;
            let items = read::list(v, &l, 1, limits::EXPECTED_VALUES, p)?;
            let values: Vec<Option<String>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    read::stripped_nonempty(item, &l.index(i), limits::SHORT_STRING_CHARS, p)
                })
                .collect();
            Some(Criterion::Categorical {
                expected_values: values.into_iter().collect::<Option<_>>()?,
            })
        }
        other => {
            p.push(
                &loc.key("type"),
                "union_tag_invalid",
                format!("Input tag '{other}' found using 'type' does not match any of the expected tags: 'numerical', 'boolean', 'categorical'"),
            );
            None
        }
    }
}

fn verb(v: &Value, loc: &Loc, p: &mut Problems) -> Option<Verb> {
    let verb = v.as_str().and_then(Verb::parse);
    if verb.is_none() {
        p.push(
            loc,
            "enum",
            "Input should be '==', '!=', '<=', '<', '>=' or '>'",
        );
    }
    verb
}

/// Tags arrive as an object `{key: value | null}` and are kept as a list sorted by key.
pub(super) fn tags(v: &Value, loc: &Loc, p: &mut Problems) -> Option<Vec<Tag>> {
    let Value::Object(map) = v else {
        p.push(loc, "dict_type", "Input should be a valid dictionary");
        return None;
    };
    if map.len() > limits::TAGS {
        p.push(
            loc,
            "too_long",
            format!("Dictionary should have at most {} items", limits::TAGS),
        );
        return None;
    }
    let mut ok = true;
    let mut tags = Vec::with_capacity(map.len());
    for (key, value) in map {
        let key_loc = loc.key(key);
        let key_ok = if key.trim().is_empty() {
            p.push(&key_loc, "tag_key_empty", "Tag keys must not be empty");
            false
        } else if key.chars().count() > limits::SHORT_STRING_CHARS || key.contains('\0') {
            p.push(
                &key_loc,
                "tag_key_invalid",
                format!(
                    "Tag keys must have at most {} characters and no NUL",
                    limits::SHORT_STRING_CHARS
                ),
            );
            false
        } else {
            true
        };
        let value = match value {
            Value::Null => Some(None),
            other => read::plain_string(other, &key_loc, limits::SHORT_STRING_CHARS, p).map(Some),
        };
        match (key_ok, value) {
            (true, Some(value)) => tags.push(Tag {
                key: key.clone(),
                value,
            }),
            _ => ok = false,
        }
    }
    tags.sort();
    ok.then_some(tags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid_body() -> Value {
        json!({
            "name": "  Signup works  ",
            "description": "d",
            "service_id": "6618791275130b73714e8d1c",
            "service_version_set_name": "release",
            "persona_id": "6618791275130b73714e8d2a",
            "scenario_id": "6618791275130b73714e8d3b",
            "max_interactions": 10,
            "success_criterions": [
                {"name": "done", "metric_id": "6618791275130b73714e8d4c", "criterion": {"type": "boolean", "expected_value": true}},
                {"name": "fast", "metric_id": "6618791275130b73714e8d4d", "criterion": {"type": "numerical", "verb": "<=", "threshold": 5}},
                {"name": "tone", "metric_id": "6618791275130b73714e8d4e", "criterion": {"type": "categorical", "expected_values": ["warm"]}}
            ],
            "tags": {"team": "growth", "flaky": null}
        })
    }

    fn locs(problems: &[FieldProblem]) -> Vec<String> {
        problems
            .iter()
            .map(|p| serde_json::to_string(&p.loc).unwrap())
            .collect()
    }

    #[test]
    fn a_valid_create_body_parses_with_trimmed_name_and_sorted_tags() {
        let new = NewUnitTest::parse(&valid_body()).expect("valid");
        assert_eq!(new.name, "Signup works");
        assert_eq!(new.tags[0].key, "flaky");
        assert_eq!(new.tags[0].value, None);
        assert_eq!(new.success_criterions.len(), 3);
    }

    #[test]
    fn every_problem_of_a_create_body_is_listed() {
        let mut body = valid_body();
        body["name"] = json!("   ");
        body["max_interactions"] = json!(101);
        body["service_id"] = json!("6618791275130B73714E8D1C");
        body["success_criterions"][0]["metric_id"] = json!("nope");
        body["success_criterions"][1]["criterion"]["verb"] = json!("=~");
        body["extra"] = json!(1);
        body.as_object_mut().unwrap().remove("tags");
        let problems = NewUnitTest::parse(&body).unwrap_err();
        let locs = locs(&problems);
        for expected in [
            r#"["body","name"]"#,
            r#"["body","max_interactions"]"#,
            r#"["body","service_id"]"#,
            r#"["body","success_criterions",0,"metric_id"]"#,
            r#"["body","success_criterions",1,"criterion","numerical","verb"]"#,
            r#"["body","extra"]"#,
            r#"["body","tags"]"#,
        ] {
            assert!(
                locs.contains(&expected.to_string()),
                "missing {expected} in {locs:?}"
            );
        }
        assert_eq!(problems.len(), 7, "{locs:?}");
    }

    #[test]
    fn criteria_problems_cover_type_and_values() {
        let cases = [
            (
                json!({"type": "boolean", "expected_value": "yes"}),
                "bool_type",
            ),
            (
                json!({"type": "numerical", "verb": "<", "threshold": "3"}),
                "float_type",
            ),
            (
                json!({"type": "categorical", "expected_values": []}),
                "too_short",
            ),
            (
                json!({"type": "categorical", "expected_values": [" "]}),
                "string_too_short",
            ),
            (json!({"type": "ordinal"}), "union_tag_invalid"),
            (json!({"expected_value": true}), "union_tag_not_found"),
            (
                json!({"type": "boolean", "expected_value": true, "x": 1}),
                "extra_forbidden",
            ),
        ];
        for (criterion, kind) in cases {
            let mut body = valid_body();
            body["success_criterions"][0]["criterion"] = criterion.clone();
            let problems = NewUnitTest::parse(&body).unwrap_err();
            assert_eq!(problems.len(), 1, "{criterion}: {problems:?}");
            assert_eq!(problems[0].kind, kind, "{criterion}");
        }
    }

    #[test]
    fn patch_treats_null_as_absent_and_refuses_name() {
        let patch = UnitTestPatch::parse(&json!({"description": null, "run_count": 3})).unwrap();
        assert_eq!(patch.description, None);
        assert_eq!(patch.run_count, Some(3));
        let problems = UnitTestPatch::parse(&json!({"name": "x", "run_count": 0})).unwrap_err();
        let kinds: Vec<_> = problems.iter().map(|p| p.kind).collect();
        assert_eq!(kinds, ["name_immutable", "greater_than"]);
    }

    #[test]
    fn non_object_bodies_are_refused() {
        for body in [json!([]), json!("x"), json!(null)] {
            assert_eq!(
                NewUnitTest::parse(&body).unwrap_err()[0].kind,
                "model_attributes_type"
            );
        }
    }
}
