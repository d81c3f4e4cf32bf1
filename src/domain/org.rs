//! The organization of a request, read from the path once (SPEC §4): every consumer (cluster
//! routing, rate limits, authentication, authorization, handlers, logs) uses this one value.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use super::problems::{Loc, Problems};

/// Longest org id accepted in a path.
pub const ORG_ID_CHARS: usize = 128;

/// An organization id. From a request path it is judged by [`OrgId::parse`]; stored records,
/// tokens we signed and configuration carry ids judged when they were written, so they convert
/// with `From`. Below the edge every org id travels as this type, never as a bare string, so a
/// signature says which string is an org (and `Deref` to `str` serves the stores' keys).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgId(String);

impl OrgId {
    /// Judges an already percent-decoded path segment. Refused: empty, longer than
    /// [`ORG_ID_CHARS`], control characters, white space, `/`, `\` and `%` (what is left of a
    /// double encoding): no org has such an id, and each would let one org be spelled two ways.
    pub fn parse(decoded: &str, p: &mut Problems) -> Option<Self> {
        let loc = Loc::root("path").key("organization");
        let bad = |c: char| c.is_control() || c.is_whitespace() || matches!(c, '/' | '\\' | '%');
        if decoded.is_empty() {
            p.push(
                &loc,
                "string_too_short",
                "String should have at least 1 character",
            );
        } else if decoded.chars().count() > ORG_ID_CHARS {
            p.push(
                &loc,
                "string_too_long",
                format!("String should have at most {ORG_ID_CHARS} characters"),
            );
        } else if decoded.chars().any(bad) {
            p.push(
                &loc,
                "string_pattern_mismatch",
                "An organization id has no control characters, white space, '/', '\\\\' or '%'",
            );
        } else {
            return Some(Self(decoded.to_owned()));
        }
        None
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl From<String> for OrgId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl From<&str> for OrgId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl Deref for OrgId {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// Same hash and equality as the `String` inside, so maps keyed by `OrgId` are looked up by `&str`.
impl Borrow<str> for OrgId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for OrgId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for OrgId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for OrgId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for OrgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_pass_and_ambiguous_ones_do_not() {
        let parse = |s: &str| OrgId::parse(s, &mut Problems::default());
        assert_eq!(parse("acme").unwrap().as_str(), "acme");
        assert!(parse("org_1-a.b").is_some());
        assert!(parse(&"a".repeat(ORG_ID_CHARS)).is_some());
        for bad in [
            "",
            "a b",
            "a/b",
            "a\\b",
            "%61",
            "a\u{0}",
            "a\n",
            &"a".repeat(ORG_ID_CHARS + 1),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
    }
}
