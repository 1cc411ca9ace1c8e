//! The worked examples of Feast's Redis layout, byte for byte: entity keys,
//! field names, values and timestamps, as documented and as captured from a
//! live Feast 0.67 run.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray,
    StringArray, TimestampMicrosecondArray,
};
use fvhost::online::murmur3::{feature_field, timestamp_field};
use fvhost::online::timestamp::{self, EventTime};
use fvhost::online::value::{decode_to_json, encode_column};
use fvhost::online::{KeyBuilder, KeyValue, KeyVersion};
use fvhost::types::{FeatureType, ScalarType};

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

fn key(join_keys: &[&str], values: &[KeyValue<'_>], project: &str) -> Vec<u8> {
    let names: Vec<String> = join_keys.iter().map(|k| k.to_string()).collect();
    KeyBuilder::new(KeyVersion::V3, &names, project).redis_key(values)
}

#[test]
fn entity_key_driver_1001_int64() {
    assert_eq!(
        key(&["driver_id"], &[KeyValue::Int64(1001)], "driver_ranking"),
        hex(
            "01000000 02000000 09000000 6472697665725f6964 04000000 08000000 e903000000000000 6472697665725f72616e6b696e67"
        )
    );
}

#[test]
fn entity_key_declared_int32() {
    assert_eq!(
        key(&["driver_id"], &[KeyValue::Int32(1001)], "driver_ranking"),
        hex(
            "01000000 02000000 09000000 6472697665725f6964 03000000 04000000 e9030000 6472697665725f72616e6b696e67"
        )
    );
}

#[test]
fn entity_key_with_two_join_keys_is_sorted_by_name() {
    let expected = hex(
        "02000000 02000000 0b000000 637573746f6d65725f6964 02000000 09000000 6472697665725f6964 02000000 02000000 6337 04000000 08000000 e903000000000000",
    );
    let names = vec!["driver_id".to_string(), "customer_id".to_string()];
    let builder = KeyBuilder::new(KeyVersion::V3, &names, "p");
    assert_eq!(
        builder.entity_key(&[KeyValue::Int64(1001), KeyValue::String("c7")]),
        expected
    );
}

#[test]
fn entity_keys_captured_from_feast() {
    // driver_id=1000 from feast-redis-sample.txt, 51 bytes.
    assert_eq!(
        key(&["driver_id"], &[KeyValue::Int64(1000)], "driver_ranking"),
        hex(
            "0100000002000000090000006472697665725f69640400000008000000e8030000000000006472697665725f72616e6b696e67"
        )
    );
}

#[test]
fn field_names_are_murmur3_of_view_and_feature() {
    assert_eq!(
        feature_field("driver_hourly_stats_stream", "conv_percentage"),
        [0x59, 0x8f, 0x17, 0xb8]
    );
    assert_eq!(
        u32::from_le_bytes(feature_field(
            "driver_hourly_stats_stream",
            "conv_percentage"
        )),
        3_088_551_769
    );
    assert_eq!(
        feature_field("driver_hourly_stats", "conv_rate"),
        [0x61, 0x60, 0xe3, 0xda]
    );
    assert_eq!(
        feature_field("driver_hourly_stats", "acc_rate"),
        [0xfa, 0x5e, 0x58, 0xad]
    );
    assert_eq!(
        feature_field("driver_hourly_stats", "avg_daily_trips"),
        [0x18, 0xa5, 0xe5, 0xa3]
    );
    assert_eq!(
        feature_field("driver_hourly_stats_fresh", "conv_rate"),
        [0x03, 0xed, 0x10, 0x46]
    );
    assert_eq!(
        feature_field("driver_hourly_stats_fresh", "acc_rate"),
        [0xe2, 0x73, 0x86, 0xb9]
    );
    assert_eq!(
        feature_field("driver_hourly_stats_fresh", "avg_daily_trips"),
        [0x3f, 0x09, 0x65, 0xd3]
    );
    assert_eq!(
        timestamp_field("driver_hourly_stats"),
        b"_ts:driver_hourly_stats"
    );
}

#[test]
fn event_timestamps_are_protobuf_timestamps() {
    // 2022-07-07T09:00:00Z
    assert_eq!(
        timestamp::encode(EventTime::from_micros(1_657_184_400_000_000)),
        hex("08 90c19a9606")
    );
    // Captured from Feast: 1795647256 s + 398269000 ns.
    let captured = hex("0898ce9dd80610c8b4f4bd01");
    let time = EventTime::from_micros(1_795_647_256_398_269);
    assert_eq!(timestamp::encode(time), captured);
    assert_eq!(timestamp::decode(&captured).unwrap(), time);
    assert_eq!(time.to_rfc3339(), "2026-11-25T22:54:16.398269Z");
}

fn encoded(array: ArrayRef, dtype: &str) -> Vec<Vec<u8>> {
    encode_column(&array, dtype.parse::<FeatureType>().unwrap()).unwrap()
}

#[test]
fn scalar_values_as_feast_value_protobufs() {
    let floats = encoded(
        Arc::new(Float32Array::from(vec![
            Some(0.5),
            Some(0.0),
            None,
            Some(0.937_946_26),
        ])),
        "Float32",
    );
    assert_eq!(
        floats,
        [
            hex("350000003f"),
            hex("3500000000"),
            vec![],
            hex("353f1d703f")
        ]
    );
    assert_eq!(
        encoded(Arc::new(Float64Array::from(vec![0.5])), "Float64"),
        [hex("29000000000000e03f")]
    );
    assert_eq!(
        encoded(Arc::new(Int64Array::from(vec![1001, 133])), "Int64"),
        [hex("20e907"), hex("208501")]
    );
    assert_eq!(
        encoded(Arc::new(Int32Array::from(vec![7])), "Int32"),
        [hex("1807")]
    );
    assert_eq!(
        encoded(Arc::new(StringArray::from(vec!["ab"])), "String"),
        [hex("12026162")]
    );
    assert_eq!(
        encoded(Arc::new(BooleanArray::from(vec![true])), "Bool"),
        [hex("3801")]
    );
    let time = TimestampMicrosecondArray::from(vec![1_657_184_400_000_000]).with_timezone("UTC");
    assert_eq!(
        encoded(Arc::new(time), "UnixTimestamp"),
        [hex("4090c19a9606")]
    );
}

#[test]
fn list_values_are_wrapped_and_packed() {
    let ints =
        ListArray::from_iter_primitive::<arrow_array::types::Int64Type, _, _>(vec![Some(vec![
            Some(1),
            Some(2),
        ])]);
    assert_eq!(
        encoded(Arc::new(ints), "Array(Int64)"),
        [hex("72040a020102")]
    );
    let floats = ListArray::from_iter_primitive::<arrow_array::types::Float32Type, _, _>(vec![
        Some(vec![Some(0.5)]),
    ]);
    assert_eq!(
        encoded(Arc::new(floats), "Array(Float32)"),
        [hex("8201060a040000003f")]
    );
}

#[test]
fn stored_values_decode_back_for_reads() {
    assert_eq!(
        decode_to_json(&hex("353f1d703f")).unwrap(),
        serde_json::json!(0.9379462599754333)
    );
    assert_eq!(
        decode_to_json(&hex("208501")).unwrap(),
        serde_json::json!(133)
    );
    assert_eq!(
        decode_to_json(&hex("12026162")).unwrap(),
        serde_json::json!("ab")
    );
    assert_eq!(
        decode_to_json(&hex("72040a020102")).unwrap(),
        serde_json::json!([1, 2])
    );
    assert_eq!(
        decode_to_json(&hex("8201060a040000003f")).unwrap(),
        serde_json::json!([0.5])
    );
    assert_eq!(decode_to_json(&[]).unwrap(), serde_json::Value::Null);
    assert!(
        decode_to_json(&hex("0a05")).is_err(),
        "truncated bytes are an error, not a panic"
    );
}

#[test]
fn float_and_bool_join_keys_are_rejected_like_feast() {
    for t in [ScalarType::Float32, ScalarType::Float64, ScalarType::Bool] {
        assert!(!t.is_join_key_type());
    }
}
