//! The simulation unit test as stored, and the pieces it is made of.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ObjectIdHex, OrgId, UserId};

/// Who did something: the contract's `UserInfo`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserInfo {
    pub org_id: OrgId,
    pub user_id: UserId,
}

/// One tag; `value: None` is a key without a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: Option<String>,
}

/// Comparison of a numerical criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verb {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
}

impl Verb {
    pub const ALL: [(&'static str, Verb); 6] = [
        ("==", Verb::Eq),
        ("!=", Verb::Ne),
        ("<=", Verb::Le),
        ("<", Verb::Lt),
        (">=", Verb::Ge),
        (">", Verb::Gt),
    ];

    pub fn parse(s: &str) -> Option<Verb> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, v)| *v)
    }
}

/// The value type a metric measures; a criterion must have the same type as its metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricValueType {
    Boolean,
    Numerical,
    Categorical,
}

impl fmt::Display for MetricValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Boolean => "boolean",
            Self::Numerical => "numerical",
            Self::Categorical => "categorical",
        })
    }
}

/// What a success criterion expects of its metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Criterion {
    Boolean { expected_value: bool },
    Numerical { verb: Verb, threshold: f64 },
    Categorical { expected_values: Vec<String> },
}

impl Criterion {
    pub fn value_type(&self) -> MetricValueType {
        match self {
            Self::Boolean { .. } => MetricValueType::Boolean,
            Self::Numerical { .. } => MetricValueType::Numerical,
            Self::Categorical { .. } => MetricValueType::Categorical,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuccessCriterion {
    pub name: String,
    pub metric_id: ObjectIdHex,
    pub criterion: Criterion,
}

/// A UTC instant with millisecond precision (what MongoDB keeps), written as RFC 3339 with offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    /// The next instant a change may carry: now, but never at or before `previous`, so
    /// `updated_at` only moves forward even when the clock steps back or two writes share a millisecond.
    pub fn after(previous: Timestamp) -> Self {
        Self(Self::now().0.max(previous.0 + 1))
    }

    pub fn to_datetime(self) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(self.0)
            .single()
            .unwrap_or_default()
    }

    pub fn parse(s: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|d| Self(d.timestamp_millis()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self
            .to_datetime()
            .to_rfc3339_opts(SecondsFormat::Millis, false);
        f.write_str(&text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("{s:?} is not an RFC 3339 timestamp")))
    }
}

/// A stored simulation unit test (collection `simulation_unit_test`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitTest {
    pub id: ObjectIdHex,
    pub org_id: OrgId,
    pub name: String,
    pub description: String,
    pub service_id: ObjectIdHex,
    pub service_version_set_name: String,
    pub persona_id: ObjectIdHex,
    pub scenario_id: ObjectIdHex,
    pub max_interactions: u32,
    pub success_criterions: Vec<SuccessCriterion>,
    pub run_count: u64,
    pub tags: Vec<Tag>,
    pub is_deleted: bool,
    pub creator: UserInfo,
    pub updated_by: UserInfo,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl UnitTest {
    /// About how many bytes this unit test occupies in memory: the struct and what its strings
    /// and lists hold. Caches budget by it, as one unit test may be a thousand times another.
    pub fn approx_bytes(&self) -> usize {
        use std::mem::size_of;
        let user = |u: &UserInfo| u.org_id.len() + u.user_id.as_str().len();
        let criteria: usize = (self.success_criterions.iter())
            .map(|c| {
                let values = match &c.criterion {
                    Criterion::Categorical { expected_values } => (expected_values.iter())
                        .map(|v| size_of::<String>() + v.len())
                        .sum(),
                    _ => 0,
                };
                size_of::<SuccessCriterion>() + c.name.len() + values
            })
            .sum();
        let tags: usize = (self.tags.iter())
            .map(|t| size_of::<Tag>() + t.key.len() + t.value.as_ref().map_or(0, String::len))
            .sum();
        size_of::<Self>()
            + self.org_id.len()
            + self.name.len()
            + self.description.len()
            + self.service_version_set_name.len()
            + user(&self.creator)
            + user(&self.updated_by)
            + criteria
            + tags
    }

    /// The strong entity tag of this version.
    pub fn etag(&self) -> String {
        super::etag::etag(self.id, self.updated_at)
    }

    /// The same unit test with its bookkeeping (`updated_*`) set aside, to tell an effective change
    /// from a no-op.
    pub fn same_content(&self, other: &UnitTest) -> bool {
        let mut a = self.clone();
        a.updated_at = other.updated_at;
        a.updated_by = other.updated_by.clone();
        a == *other
    }
}

/// Which id key a unit test is written with: list items carry `id`, search items `_id`.
#[derive(Debug, Clone, Copy)]
pub enum IdKey {
    Id,
    UnderscoreId,
}

/// The wire form of a unit test, shared by list and search so both write identical bytes.
pub struct UnitTestJson<'a> {
    pub doc: &'a UnitTest,
    pub id_key: IdKey,
}

impl Serialize for UnitTestJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let d = self.doc;
        let mut st = s.serialize_struct("SimulationUnitTest", 17)?;
        let key = match self.id_key {
            IdKey::Id => "id",
            IdKey::UnderscoreId => "_id",
        };
        st.serialize_field(key, &d.id)?;
        st.serialize_field("org_id", &d.org_id)?;
        st.serialize_field("name", &d.name)?;
        st.serialize_field("description", &d.description)?;
        st.serialize_field("service_id", &d.service_id)?;
        st.serialize_field("service_version_set_name", &d.service_version_set_name)?;
        st.serialize_field("persona_id", &d.persona_id)?;
        st.serialize_field("scenario_id", &d.scenario_id)?;
        st.serialize_field("max_interactions", &d.max_interactions)?;
        st.serialize_field("success_criterions", &d.success_criterions)?;
        st.serialize_field("run_count", &d.run_count)?;
        st.serialize_field("tags", &d.tags)?;
        st.serialize_field("is_deleted", &d.is_deleted)?;
        st.serialize_field("creator", &d.creator)?;
        st.serialize_field("updated_by", &d.updated_by)?;
        st.serialize_field("created_at", &d.created_at)?;
        st.serialize_field("updated_at", &d.updated_at)?;
        st.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_print_rfc3339_with_offset_and_millis() {
        let t = Timestamp::from_millis(1_764_000_000_123);
        assert_eq!(t.to_string(), "2025-11-24T16:00:00.123+00:00");
        assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
    }

    #[test]
    fn after_never_goes_backwards() {
        let future = Timestamp::from_millis(Timestamp::now().millis() + 60_000);
        assert_eq!(Timestamp::after(future).millis(), future.millis() + 1);
    }

    #[test]
    fn criterion_wire_form_is_tagged_by_type() {
        let c = Criterion::Numerical {
            verb: Verb::Le,
            threshold: 3.0,
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"type":"numerical","verb":"<=","threshold":3.0}"#
        );
    }
}
