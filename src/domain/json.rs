//! Strict JSON reading: a request body with a repeated key in one object is refused, because
//! parsers disagree on which of the values counts (serde keeps the last, others the first), and
//! that disagreement is how requests get smuggled past a proxy or a log.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as JSON, refusing repeated keys (and anything serde_json refuses).
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(StrictValue)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(StrictValue)?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_serde_json_without_duplicates() {
        let text = br#"{"a": [1, -2, 3.5, "x", null, true, {"b": {}}], "c": 18446744073709551615}"#;
        assert_eq!(
            parse_strict(text).unwrap(),
            serde_json::from_slice::<Value>(text).unwrap()
        );
    }

    #[test]
    fn refuses_repeated_keys_at_any_depth_and_trailing_data() {
        for bad in [
            &br#"{"a": 1, "a": 2}"#[..],
            br#"{"x": [{"k": 1, "k": 1}]}"#,
            br#"{} {}"#,
            b"{",
        ] {
            assert!(
                parse_strict(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            parse_strict(br#"[{"a": 1}, {"a": 2}]"#).is_ok(),
            "same key in two objects is fine"
        );
    }

    #[test]
    fn serde_json_private_raw_value_key_is_an_ordinary_key() {
        // Found by fuzzing (update_body): serde_json's own `Value` (raw_value feature on) reads this
        // key as an embedded raw value and fails; we read it as any other key, which the request
        // parsers then refuse as an unknown field or keep as a tag key.
        let text = br#"{"$serde_json::private::RawValue": "criterion"}"#;
        assert!(serde_json::from_slice::<Value>(text).is_err());
        let value = parse_strict(text).unwrap();
        assert_eq!(value["$serde_json::private::RawValue"], "criterion");
        // When the string is JSON, serde_json reads that JSON in place of the object (found by
        // fuzzing too); we still read the object.
        let text = br#"{"$serde_json::private::RawValue": "0e000000"}"#;
        assert_eq!(serde_json::from_slice::<Value>(text).unwrap(), 0.0);
        let value = parse_strict(text).unwrap();
        assert_eq!(value["$serde_json::private::RawValue"], "0e000000");
    }
}
