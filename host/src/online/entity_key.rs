//! Feast's serialized entity key: the Redis key of every online row.
//!
//! Version 3 (Feast's default): `num_keys`, then each join key name as
//! `STRING | len | bytes`, then each value as `type | len | bytes`, all u32
//! little-endian. With several join keys the (name, value) pairs are sorted
//! by name. Version 2 drops `num_keys` and the name lengths.
//! The Redis key is the serialized entity key followed by the project name.

pub use crate::types::KeyVersion;
use crate::types::ScalarType;

/// One join-key value, already in its declared type.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyValue<'a> {
    Bytes(&'a [u8]),
    String(&'a str),
    Int32(i32),
    Int64(i64),
    /// Seconds since the epoch.
    UnixTimestamp(i64),
}

impl KeyValue<'_> {
    /// The declared type this value encodes as.
    pub fn scalar_type(&self) -> ScalarType {
        match self {
            KeyValue::Bytes(_) => ScalarType::Bytes,
            KeyValue::String(_) => ScalarType::String,
            KeyValue::Int32(_) => ScalarType::Int32,
            KeyValue::Int64(_) => ScalarType::Int64,
            KeyValue::UnixTimestamp(_) => ScalarType::UnixTimestamp,
        }
    }

    fn put(&self, out: &mut Vec<u8>) {
        put_u32(out, self.scalar_type().value_type_number());
        match self {
            KeyValue::Bytes(b) => put_len_prefixed(out, b),
            KeyValue::String(s) => put_len_prefixed(out, s.as_bytes()),
            KeyValue::Int32(v) => put_len_prefixed(out, &v.to_le_bytes()),
            KeyValue::Int64(v) | KeyValue::UnixTimestamp(v) => {
                put_len_prefixed(out, &v.to_le_bytes())
            }
        }
    }
}

/// Builds Redis keys for one project and one ordered set of join keys.
#[derive(Debug, Clone)]
pub struct KeyBuilder {
    version: KeyVersion,
    /// Join key names, sorted the way Feast serializes them.
    sorted_names: Vec<String>,
    /// For each sorted position, the index of that key in the caller's order.
    order: Vec<usize>,
    project: Vec<u8>,
}

impl KeyBuilder {
    /// `join_keys` in the caller's (declared) order; values passed to
    /// [`KeyBuilder::redis_key`] come in the same order. A view without
    /// entities has none: its one row is keyed as Feast keys it, by the
    /// join key [`DUMMY_JOIN_KEY`] with the empty string, whatever values
    /// are passed.
    pub fn new(version: KeyVersion, join_keys: &[String], project: &str) -> Self {
        if join_keys.is_empty() {
            return Self {
                version,
                sorted_names: vec![DUMMY_JOIN_KEY.to_string()],
                order: Vec::new(),
                project: project.as_bytes().to_vec(),
            };
        }
        let mut order: Vec<usize> = (0..join_keys.len()).collect();
        if join_keys.len() > 1 {
            order.sort_by(|&a, &b| join_keys[a].cmp(&join_keys[b]));
        }
        Self {
            version,
            sorted_names: order.iter().map(|&i| join_keys[i].clone()).collect(),
            order,
            project: project.as_bytes().to_vec(),
        }
    }

    /// The Redis key of an entity-less view's row in the same project.
    pub fn entityless_key(&self) -> Vec<u8> {
        Self::new(self.version, &[], "")
            .redis_key(&[])
            .into_iter()
            .chain(self.project.iter().copied())
            .collect()
    }

    /// Serialized entity key followed by the project name.
    pub fn redis_key(&self, values: &[KeyValue<'_>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 24 * values.len() + self.project.len());
        self.redis_key_into(values, &mut out);
        out
    }

    /// Appends the Redis key to `out`, so a hot loop can reuse one buffer.
    pub fn redis_key_into(&self, values: &[KeyValue<'_>], out: &mut Vec<u8>) {
        self.entity_key_into(values, out);
        out.extend_from_slice(&self.project);
    }

    /// Serialized entity key alone (`serialize_entity_key` in Feast).
    pub fn entity_key(&self, values: &[KeyValue<'_>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 24 * values.len());
        self.entity_key_into(values, &mut out);
        out
    }

    fn entity_key_into(&self, values: &[KeyValue<'_>], out: &mut Vec<u8>) {
        let entityless = self.order.is_empty();
        debug_assert!(entityless || values.len() == self.sorted_names.len());
        if self.version == KeyVersion::V3 {
            put_u32(out, self.sorted_names.len() as u32);
        }
        for name in &self.sorted_names {
            put_u32(out, ScalarType::String.value_type_number());
            match self.version {
                KeyVersion::V3 => put_len_prefixed(out, name.as_bytes()),
                KeyVersion::V2 => out.extend_from_slice(name.as_bytes()),
            }
        }
        if entityless {
            KeyValue::String("").put(out);
        }
        for &i in &self.order {
            values[i].put(out);
        }
    }
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u32(out, bytes.len() as u32);
    out.extend_from_slice(bytes);
}

/// The join key Feast uses for a feature view with no entity.
pub const DUMMY_JOIN_KEY: &str = "__dummy_id";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_without_entities_is_keyed_by_feasts_dummy_join_key() {
        let keys = KeyBuilder::new(KeyVersion::V3, &[], "proj");
        // Written out from Feast's serialize_entity_key for
        // EntityKey(join_keys=["__dummy_id"], entity_values=[string_val ""]).
        let mut expected = vec![1, 0, 0, 0, 2, 0, 0, 0, 10, 0, 0, 0];
        expected.extend_from_slice(b"__dummy_id");
        expected.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0]);
        expected.extend_from_slice(b"proj");
        assert_eq!(keys.redis_key(&[]), expected);
    }
}
