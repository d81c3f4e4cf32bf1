//! Validation problems in the contract's 422 shape, and small readers that turn loose JSON into typed
//! values while collecting *every* problem instead of stopping at the first.

use serde::Serialize;
use serde_json::{Map, Value};

use super::ObjectIdHex;

/// One step of a problem's location: a field name or a list index.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LocPart {
    Key(String),
    Index(usize),
}

/// Where a problem is, e.g. `["body", "success_criterions", 0, "metric_id"]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Loc(Vec<LocPart>);

impl Loc {
    pub fn root(part: &str) -> Self {
        Self(vec![LocPart::Key(shown(part, MAX_LOC_KEY_CHARS))])
    }

    /// A field name; one the client made up is echoed only up to [`MAX_LOC_KEY_CHARS`].
    pub fn key(&self, k: &str) -> Self {
        let mut next = self.clone();
        next.0.push(LocPart::Key(shown(k, MAX_LOC_KEY_CHARS)));
        next
    }

    pub fn index(&self, i: usize) -> Self {
        let mut next = self.clone();
        next.0.push(LocPart::Index(i));
        next
    }
}

/// One entry of a 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldProblem {
    pub loc: Loc,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// Collects problems while a request is read.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldProblem>);

/// Longest field name echoed in a `loc` (a made-up name may be as long as the body).
pub const MAX_LOC_KEY_CHARS: usize = 64;
/// Longest message (messages may quote what the client sent).
pub const MAX_MSG_CHARS: usize = 300;
/// Problems listed in one 422; the rest are counted in one last problem (see [`capped`]).
pub const MAX_PROBLEMS: usize = 100;

/// `text`, cut to `max` characters with an ellipsis: what a client sent is echoed only so far.
pub fn shown(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}

/// At most [`MAX_PROBLEMS`] problems, plus one saying how many more were found: a body of many
/// thousand bad fields gets an answer of bounded size.
pub fn capped(problems: &[FieldProblem]) -> Vec<FieldProblem> {
    let mut shown = problems[..problems.len().min(MAX_PROBLEMS)].to_vec();
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        shown.push(FieldProblem {
            loc: Loc::default(),
            msg: format!("{more} more problems were found and are not listed"),
            kind: "too_many_problems",
        });
    }
    shown
}

impl Problems {
    pub fn push(&mut self, loc: &Loc, kind: &'static str, msg: impl Into<String>) {
        let msg = msg.into();
        self.0.push(FieldProblem {
            loc: loc.clone(),
            msg: if msg.chars().count() > MAX_MSG_CHARS {
                shown(&msg, MAX_MSG_CHARS)
            } else {
                msg
            },
            kind,
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(value)` when nothing was wrong, else every problem found.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldProblem>> {
        if self.0.is_empty() {
            Ok(value())
        } else {
            Err(self.0)
        }
    }

    pub fn into_vec(self) -> Vec<FieldProblem> {
        self.0
    }
}

/// A JSON object being read field by field.
pub struct Obj<'a> {
    pub map: &'a Map<String, Value>,
    pub loc: Loc,
}

impl<'a> Obj<'a> {
    /// Reads `v` as an object, or records why it is not one.
    pub fn read(v: &'a Value, loc: Loc, p: &mut Problems) -> Option<Self> {
        match v {
            Value::Object(map) => Some(Self { map, loc }),
            _ => {
                p.push(
                    &loc,
                    "model_attributes_type",
                    "Input should be a valid dictionary or object",
                );
                None
            }
        }
    }

    /// Records every field not in `allowed` (the contract rejects unknown fields).
    pub fn reject_unknown(&self, allowed: &[&str], p: &mut Problems) {
        for key in self.map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            p.push(
                &self.loc.key(key),
                "extra_forbidden",
                "Extra inputs are not permitted",
            );
        }
    }

    /// A field that must be present (`null` counts as present, and is judged by the value reader).
    pub fn required(&self, name: &str, p: &mut Problems) -> Option<(&'a Value, Loc)> {
        let loc = self.loc.key(name);
        match self.map.get(name) {
            Some(v) => Some((v, loc)),
            None => {
                p.push(&loc, "missing", "Field required");
                None
            }
        }
    }

    /// A field that may be absent or `null`; both mean "not given".
    pub fn optional(&self, name: &str) -> Option<(&'a Value, Loc)> {
        match self.map.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => Some((v, self.loc.key(name))),
        }
    }
}

/// A string, trimmed, that must stay non-empty and within `max_chars`.
pub fn stripped_nonempty(
    v: &Value,
    loc: &Loc,
    max_chars: usize,
    p: &mut Problems,
) -> Option<String> {
    let Value::String(s) = v else {
        p.push(loc, "string_type", "Input should be a valid string");
        return None;
    };
    let trimmed = s.trim();
    if trimmed.is_empty() {
        p.push(
            loc,
            "string_too_short",
            "String should have at least 1 character after trimming white space",
        );
        return None;
    }
    within_chars(trimmed, loc, max_chars, p).then(|| trimmed.to_owned())
}

/// A string kept as sent, within `max_chars`.
pub fn plain_string(v: &Value, loc: &Loc, max_chars: usize, p: &mut Problems) -> Option<String> {
    let Value::String(s) = v else {
        p.push(loc, "string_type", "Input should be a valid string");
        return None;
    };
    within_chars(s, loc, max_chars, p).then(|| s.clone())
}

fn within_chars(s: &str, loc: &Loc, max_chars: usize, p: &mut Problems) -> bool {
    if s.chars().count() > max_chars {
        p.push(
            loc,
            "string_too_long",
            format!("String should have at most {max_chars} characters"),
        );
        return false;
    }
    if s.chars().any(|c| c == '\0') {
        p.push(
            loc,
            "string_nul",
            "String should not contain NUL characters",
        );
        return false;
    }
    true
}

/// A 24-digit lowercase hex id.
pub fn object_id(v: &Value, loc: &Loc, p: &mut Problems) -> Option<ObjectIdHex> {
    let Value::String(s) = v else {
        p.push(loc, "string_type", "Input should be a valid string");
        return None;
    };
    let id = ObjectIdHex::parse(s);
    if id.is_none() {
        p.push(
            loc,
            "string_pattern_mismatch",
            "String should match pattern '^[a-f0-9]{24}$'",
        );
    }
    id
}

/// An integer `n` with `min_exclusive < n <= max`.
pub fn int_between(
    v: &Value,
    loc: &Loc,
    min_exclusive: i64,
    max: i64,
    p: &mut Problems,
) -> Option<i64> {
    // JSON Schema's `integer` (and the original's validation) accepts a number with a zero
    // fraction: `3.0` is 3.
    let whole_float = v.as_f64().filter(|f| {
        v.is_f64() && f.fract() == 0.0 && (i64::MIN as f64..i64::MAX as f64).contains(f)
    });
    let Some(n) = v.as_i64().or(whole_float.map(|f| f as i64)) else {
        let (kind, msg) = match v.as_f64() {
            Some(f) if v.is_u64() || (f.fract() == 0.0 && f > 0.0) => (
                "less_than_equal",
                "Input should be less than or equal to 9223372036854775807",
            ),
            Some(f) if f.fract() == 0.0 => (
                "greater_than_equal",
                "Input should be greater than or equal to -9223372036854775808",
            ),
            Some(_) => (
                "int_from_float",
                "Input should be a valid integer, got a number with a fractional part",
            ),
            None => ("int_type", "Input should be a valid integer"),
        };
        p.push(loc, kind, msg);
        return None;
    };
    if n <= min_exclusive {
        p.push(
            loc,
            "greater_than",
            format!("Input should be greater than {min_exclusive}"),
        );
        return None;
    }
    if n > max {
        p.push(
            loc,
            "less_than_equal",
            format!("Input should be less than or equal to {max}"),
        );
        return None;
    }
    Some(n)
}

pub fn boolean(v: &Value, loc: &Loc, p: &mut Problems) -> Option<bool> {
    let b = v.as_bool();
    if b.is_none() {
        p.push(loc, "bool_type", "Input should be a valid boolean");
    }
    b
}

/// A finite number (JSON has no NaN or infinity, but integers beyond f64 range would round to them).
pub fn number(v: &Value, loc: &Loc, p: &mut Problems) -> Option<f64> {
    match v.as_f64() {
        Some(n) if n.is_finite() && !v.is_boolean() => Some(n),
        _ => {
            p.push(loc, "float_type", "Input should be a valid number");
            None
        }
    }
}

/// A list of at least `min` and at most `max` items.
pub fn list<'a>(
    v: &'a Value,
    loc: &Loc,
    min: usize,
    max: usize,
    p: &mut Problems,
) -> Option<&'a Vec<Value>> {
    let Value::Array(items) = v else {
        p.push(loc, "list_type", "Input should be a valid list");
        return None;
    };
    if items.len() < min {
        p.push(
            loc,
            "too_short",
            format!("List should have at least {min} item(s)"),
        );
        return None;
    }
    if items.len() > max {
        p.push(
            loc,
            "too_long",
            format!("List should have at most {max} items"),
        );
        return None;
    }
    Some(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn int(v: Value) -> Result<i64, &'static str> {
        let mut p = Problems::default();
        int_between(&v, &Loc::root("body"), 0, 100, &mut p).ok_or_else(|| p.into_vec()[0].kind)
    }

    #[test]
    fn integers_accept_whole_floats_and_refuse_fractions() {
        assert_eq!(int(json!(73)), Ok(73));
        assert_eq!(int(json!(73.0)), Ok(73));
        assert_eq!(int(json!(1e2)), Ok(100));
        assert_eq!(int(json!(73.5)), Err("int_from_float"));
        assert_eq!(int(json!(101.0)), Err("less_than_equal"));
        assert_eq!(int(json!(0.0)), Err("greater_than"));
        assert_eq!(int(json!(1e30)), Err("less_than_equal"));
        assert_eq!(int(json!(-1e30)), Err("greater_than_equal"));
        assert_eq!(int(json!(u64::MAX)), Err("less_than_equal"));
        assert_eq!(int(json!("7")), Err("int_type"));
        assert_eq!(int(json!(true)), Err("int_type"));
    }
}
