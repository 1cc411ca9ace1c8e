//! Reading only a schema's fields out of one JSON object, in one pass:
//! keys are compared where they lie in the message (no map is built), the
//! values of declared fields are parsed, every other value is skipped.
//! A field given twice keeps its last value, as a parsed JSON object would.

use std::collections::HashMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

/// Where each declared JSON key's value goes.
pub(super) struct KeyIndex {
    keys: Vec<String>,
    /// For schemas too wide to search key by key.
    by_name: Option<HashMap<String, usize>>,
}

/// Up to this many fields a linear search beats hashing each key.
const LINEAR_SEARCH_MAX: usize = 16;

impl KeyIndex {
    pub(super) fn new(keys: Vec<String>) -> Self {
        let by_name = (keys.len() > LINEAR_SEARCH_MAX).then(|| {
            keys.iter()
                .enumerate()
                .map(|(i, k)| (k.clone(), i))
                .collect()
        });
        Self { keys, by_name }
    }

    /// The declared keys, in schema order.
    pub(super) fn keys(&self) -> &[String] {
        &self.keys
    }

    fn find(&self, key: &str) -> Option<usize> {
        match &self.by_name {
            Some(map) => map.get(key).copied(),
            None => self.keys.iter().position(|k| k == key),
        }
    }
}

/// Why a message yielded no fields.
pub(super) enum ObjectError {
    NotJson(String),
    NotAnObject,
}

/// Fills `found[i]` with the value of the i-th declared key (`None` where absent).
pub(super) fn read_fields(
    message: &[u8],
    keys: &KeyIndex,
    found: &mut [Option<Value>],
) -> Result<(), ObjectError> {
    found.iter_mut().for_each(|slot| *slot = None);
    let mut deserializer = serde_json::Deserializer::from_slice(message);
    let read = ObjectSeed { keys, found }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
    read.map_err(|_| match serde_json::from_slice::<IgnoredAny>(message) {
        // Valid JSON that failed to read as an object is another JSON type.
        Ok(_) => ObjectError::NotAnObject,
        Err(e) => ObjectError::NotJson(e.to_string()),
    })
}

struct ObjectSeed<'a> {
    keys: &'a KeyIndex,
    found: &'a mut [Option<Value>],
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(slot) = map.next_key_seed(KeySeed(self.keys))? {
            match slot {
                Some(index) => self.found[index] = Some(map.next_value()?),
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// A key, looked up where it lies: the index of the declared field, if any.
struct KeySeed<'a>(&'a KeyIndex);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Option<usize>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Option<usize>, E> {
        Ok(self.0.find(key))
    }
}
