//! The organization of a request, read from the path once (SPEC §4): every consumer (cluster
//! routing, rate limits, authentication, authorization, handlers, logs) uses this one value.

use std::fmt;

use super::problems::{Loc, Problems};

/// Longest org id accepted in a path.
pub const ORG_ID_CHARS: usize = 128;

/// A percent-decoded, validated organization id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
