//! Entity tags of unit tests (RFC 9110 §8.8.3): a strong tag per stored version, and the
//! `If-Match` / `If-None-Match` conditions that compare against it.

use super::{ObjectIdHex, Timestamp};

/// The strong entity tag of a unit test's version. `updated_at` moves forward on every write
/// (`Timestamp::after`), so (id, updated_at) names one version.
pub fn etag(id: ObjectIdHex, updated_at: Timestamp) -> String {
    format!("\"{}.{}\"", id.to_hex(), updated_at.millis())
}

/// An `If-Match` or `If-None-Match` header: `*`, or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `*`: any current version.
    Any,
    /// The listed tags (weak ones kept with their `W/`: they never match strongly).
    Tags(Vec<String>),
}

impl Condition {
    /// Reads a header value; `None` when it is not a valid list of entity tags.
    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw == "*" {
            return Some(Self::Any);
        }
        let mut tags = Vec::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let opaque = part.strip_prefix("W/").unwrap_or(part);
            let valid = opaque.len() >= 2
                && opaque.starts_with('"')
                && opaque.ends_with('"')
                && !opaque[1..opaque.len() - 1].contains('"');
            if !valid {
                return None;
            }
            tags.push(part.to_owned());
        }
        (!tags.is_empty()).then_some(Self::Tags(tags))
    }

    /// Strong comparison (`If-Match`): only an identical, non-weak tag matches.
    pub fn matches_strongly(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags.iter().any(|t| t == current),
        }
    }

    /// Weak comparison (`If-None-Match`): a weak tag with the same opaque value matches too.
    pub fn matches_weakly(&self, current: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tags(tags) => tags
                .iter()
                .any(|t| t.strip_prefix("W/").unwrap_or(t) == current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_compare_as_rfc_9110_says() {
        let current = etag(ObjectIdHex::from_bytes([1; 12]), Timestamp::from_millis(5));
        assert_eq!(current, "\"010101010101010101010101.5\"");
        let listed = Condition::parse(&format!("\"x\", {current}")).unwrap();
        assert!(listed.matches_strongly(&current));
        let weak = Condition::parse(&format!("W/{current}")).unwrap();
        assert!(
            !weak.matches_strongly(&current),
            "a weak tag never matches strongly"
        );
        assert!(weak.matches_weakly(&current));
        assert!(Condition::parse("*").unwrap().matches_strongly(&current));
        assert!(
            !Condition::parse("\"other\"")
                .unwrap()
                .matches_strongly(&current)
        );
        for bad in ["", "abc", "\"a", "\"a\"b\"", ",", "W/"] {
            assert_eq!(Condition::parse(bad), None, "{bad:?}");
        }
    }
}
