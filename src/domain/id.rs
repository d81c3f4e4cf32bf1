//! `ObjectIdHex`: the 12-byte document id every collection uses, written as 24 lowercase hex digits.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use rand::RngCore;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A MongoDB-compatible ObjectId. Built only by [`ObjectIdHex::parse`] or [`ObjectIdHex::generate`],
/// so a value of this type always prints as `^[a-f0-9]{24}$`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectIdHex([u8; 12]);

impl ObjectIdHex {
    /// Accepts exactly 24 lowercase hex digits (the contract's pattern; upper case is refused).
    pub fn parse(s: &str) -> Option<Self> {
        if s.len() != 24 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 12];
        hex::decode_to_slice(s, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// A new id laid out like MongoDB's: seconds since the epoch, a per-process random value and a
    /// counter, so ids sort roughly by creation time and never repeat within a process.
    pub fn generate() -> Self {
        static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
        static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
        let process = PROCESS.get_or_init(|| {
            let mut b = [0u8; 5];
            rand::thread_rng().fill_bytes(&mut b);
            b
        });
        let counter = COUNTER
            .get_or_init(|| AtomicU32::new(rand::thread_rng().next_u32()))
            .fetch_add(1, Ordering::Relaxed);
        let secs = chrono::Utc::now().timestamp() as u32;
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&secs.to_be_bytes());
        bytes[4..9].copy_from_slice(process);
        bytes[9..].copy_from_slice(&counter.to_be_bytes()[1..]);
        Self(bytes)
    }

    pub fn from_bytes(bytes: [u8; 12]) -> Self {
        Self(bytes)
    }

    pub fn bytes(&self) -> [u8; 12] {
        self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for ObjectIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectIdHex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectIdHex({})", self.to_hex())
    }
}

impl Serialize for ObjectIdHex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // On the stack: a list page writes hundreds of ids.
        let mut hex = [0u8; 24];
        hex::encode_to_slice(self.0, &mut hex).expect("24 digits for 12 bytes");
        s.serialize_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"))
    }
}

impl<'de> Deserialize<'de> for ObjectIdHex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ObjectIdHex;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 24-digit hex id")
            }
            // Borrowed when the input allows: no String per id read.
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<ObjectIdHex, E> {
                ObjectIdHex::parse(s)
                    .ok_or_else(|| E::custom(format!("{s:?} is not a 24-digit hex id")))
            }
        }
        d.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_only_lowercase_24_hex() {
        assert!(ObjectIdHex::parse("6618791275130b73714e8d1c").is_some());
        for bad in [
            "",
            "6618791275130B73714E8D1C",
            "6618791275130b73714e8d1",
            "6618791275130b73714e8d1cc",
            "zz18791275130b73714e8d1c",
        ] {
            assert!(ObjectIdHex::parse(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let a = ObjectIdHex::generate();
        let b = ObjectIdHex::generate();
        assert_ne!(a, b);
        assert_eq!(ObjectIdHex::parse(&a.to_hex()), Some(a));
    }
}
