//! The few protobuf wire-format pieces Feast's Redis values need.
//!
//! Hand-written rather than generated: the messages are tiny (`Value`,
//! `Timestamp`), and the hot path appends straight into a reused buffer.

/// Protobuf wire types.
pub const VARINT: u8 = 0;
pub const FIXED64: u8 = 1;
pub const LEN: u8 = 2;
pub const FIXED32: u8 = 5;

/// Appends `value` as a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Appends the key of field `number` with `wire_type`.
pub fn put_tag(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire_type));
}

/// Appends a length-delimited field whose body `body` writes.
pub fn put_len_field(out: &mut Vec<u8>, number: u32, body: impl FnOnce(&mut Vec<u8>)) {
    let mut inner = Vec::new();
    body(&mut inner);
    put_tag(out, number, LEN);
    put_varint(out, inner.len() as u64);
    out.extend_from_slice(&inner);
}

/// Reads protobuf fields one at a time from a byte slice.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

/// One field's payload as it sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Field<'a> {
    Varint(u64),
    Fixed64([u8; 8]),
    Fixed32([u8; 4]),
    Bytes(&'a [u8]),
}

/// Why protobuf bytes could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("truncated protobuf message")]
    Truncated,
    #[error("varint longer than 10 bytes")]
    VarintTooLong,
    #[error("unsupported wire type {0}")]
    WireType(u8),
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next `(field number, payload)`, or `None` at the end.
    pub fn next_field(&mut self) -> Result<Option<(u32, Field<'a>)>, DecodeError> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = (key >> 3) as u32;
        let field = match (key & 7) as u8 {
            VARINT => Field::Varint(self.varint()?),
            FIXED64 => Field::Fixed64(self.take_array()?),
            FIXED32 => Field::Fixed32(self.take_array()?),
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
                Field::Bytes(self.take(len)?)
            }
            other => return Err(DecodeError::WireType(other)),
        };
        Ok(Some((number, field)))
    }

    /// Reads a varint at the current position.
    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for (i, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                self.bytes = &self.bytes[i + 1..];
                return Ok(value);
            }
        }
        if self.bytes.len() < 10 {
            Err(DecodeError::Truncated)
        } else {
            Err(DecodeError::VarintTooLong)
        }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip() {
        for value in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader::new(&out).varint(), Ok(value));
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert_eq!(Reader::new(&[0x80]).varint(), Err(DecodeError::Truncated));
        let mut reader = Reader::new(&[0x0a, 0x05, 0x01]);
        assert_eq!(reader.next_field(), Err(DecodeError::Truncated));
    }
}
