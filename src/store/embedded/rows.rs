//! What the catalog needs of a unit test, stored beside it: the fields a list filters, sorts and
//! searches on, with the search text already folded, in a plain binary layout. The store writes a
//! unit test's row in the same redb transaction as its document, so a row can never be older or
//! newer than its document, crash or not; opening then reads these rows instead of decoding every
//! document's JSON and folding its text (at 1M unit tests, most of the start-up time).
//!
//! Layout (integers little-endian; a string is a `u32` byte length and its UTF-8 bytes):
//! version `u8` (1), created_at `i64`, updated_at `i64`, is_deleted `u8`, service, persona and
//! scenario ids (12 bytes each), metric count `u8` and ids, creator org and user (strings), tag
//! count `u8` and each tag's key (string), has-value `u8` and value (string), name (string),
//! search text (string).

use crate::domain::search::search_text;
use crate::domain::{ObjectIdHex, Timestamp, UnitTest};

pub const VERSION: u8 = 1;

/// A stored row, its strings borrowed from the stored bytes.
#[derive(Debug, PartialEq)]
pub struct RowRecord<'a> {
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub is_deleted: bool,
    pub service: ObjectIdHex,
    pub persona: ObjectIdHex,
    pub scenario: ObjectIdHex,
    pub metrics: Vec<ObjectIdHex>,
    pub creator_org: &'a str,
    pub creator_user: &'a str,
    pub tags: Vec<(&'a str, Option<&'a str>)>,
    pub name: &'a str,
    /// `search_text(name, description)`.
    pub text: &'a str,
}

impl<'a> RowRecord<'a> {
    /// The row of `doc`, whose search text is `text`.
    pub fn of(doc: &'a UnitTest, text: &'a str) -> Self {
        Self {
            created_at: doc.created_at,
            updated_at: doc.updated_at,
            is_deleted: doc.is_deleted,
            service: doc.service_id,
            persona: doc.persona_id,
            scenario: doc.scenario_id,
            metrics: doc.success_criterions.iter().map(|c| c.metric_id).collect(),
            creator_org: &doc.creator.org_id,
            creator_user: doc.creator.user_id.as_str(),
            tags: (doc.tags.iter())
                .map(|t| (t.key.as_str(), t.value.as_deref()))
                .collect(),
            name: &doc.name,
            text,
        }
    }

    /// The stored bytes of the row of `doc`.
    pub fn encode_doc(doc: &UnitTest) -> Vec<u8> {
        let text = search_text(&doc.name, &doc.description);
        RowRecord::of(doc, &text).encode()
    }

    pub fn encode(&self) -> Vec<u8> {
        let strings = self.creator_org.len()
            + self.creator_user.len()
            + self.name.len()
            + self.text.len()
            + (self.tags.iter())
                .map(|(k, v)| k.len() + v.map_or(0, str::len) + 9)
                .sum::<usize>();
        let mut out = Vec::with_capacity(64 + 12 * self.metrics.len() + strings);
        out.push(VERSION);
        out.extend_from_slice(&self.created_at.millis().to_le_bytes());
        out.extend_from_slice(&self.updated_at.millis().to_le_bytes());
        out.push(u8::from(self.is_deleted));
        for id in [self.service, self.persona, self.scenario] {
            out.extend_from_slice(&id.bytes());
        }
        // The API caps criteria and tags far below 255; a longer list would not fit the count.
        out.push(u8::try_from(self.metrics.len()).expect("at most 255 metrics"));
        for id in &self.metrics {
            out.extend_from_slice(&id.bytes());
        }
        put_str(&mut out, self.creator_org);
        put_str(&mut out, self.creator_user);
        out.push(u8::try_from(self.tags.len()).expect("at most 255 tags"));
        for (key, value) in &self.tags {
            put_str(&mut out, key);
            out.push(u8::from(value.is_some()));
            if let Some(value) = value {
                put_str(&mut out, value);
            }
        }
        put_str(&mut out, self.name);
        put_str(&mut out, self.text);
        out
    }

    /// The row stored as `bytes`; `None` when they are not a row of this version.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return None;
        }
        let created_at = Timestamp::from_millis(r.i64()?);
        let updated_at = Timestamp::from_millis(r.i64()?);
        let is_deleted = r.u8()? != 0;
        let (service, persona, scenario) = (r.id()?, r.id()?, r.id()?);
        let metrics = (0..r.u8()?).map(|_| r.id()).collect::<Option<_>>()?;
        let (creator_org, creator_user) = (r.str()?, r.str()?);
        let tags = (0..r.u8()?)
            .map(|_| {
                let key = r.str()?;
                let value = match r.u8()? {
                    0 => None,
                    _ => Some(r.str()?),
                };
                Some((key, value))
            })
            .collect::<Option<_>>()?;
        let (name, text) = (r.str()?, r.str()?);
        r.0.is_empty().then_some(Self {
            created_at,
            updated_at,
            is_deleted,
            service,
            persona,
            scenario,
            metrics,
            creator_org,
            creator_user,
            tags,
            name,
            text,
        })
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u32::try_from(s.len()).expect("a string under 4 GiB");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn id(&mut self) -> Option<ObjectIdHex> {
        Some(ObjectIdHex::from_bytes(self.take(12)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        std::str::from_utf8(self.take(len as usize)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::store::tests::testgen::random_unit_test;

    #[test]
    fn rows_read_back_as_written_and_damaged_ones_are_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        for n in 0..200 {
            let doc = random_unit_test(&mut rng, n);
            let text = search_text(&doc.name, &doc.description);
            let row = RowRecord::of(&doc, &text);
            let bytes = row.encode();
            assert_eq!(bytes, RowRecord::encode_doc(&doc));
            assert_eq!(RowRecord::decode(&bytes), Some(row));
            for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
                assert_eq!(RowRecord::decode(&bytes[..cut]), None, "{n}: cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert_eq!(RowRecord::decode(&longer), None);
            let mut other = bytes;
            other[0] = VERSION + 1;
            assert_eq!(RowRecord::decode(&other), None);
        }
    }
}
