//! Which modules the host accepts as transforms: the contract version rule
//! (semver, as wasmtime matches versions: `fvhost:transform@0.1.x` links to
//! the 0.1.0 host, 0.2.0 and 1.0.0 do not) and signatures checked at load,
//! with messages that say what differs. The modules are the example built
//! from source, its contract version rewritten, and test guests.

mod support;

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use fvhost::transform::cache::ModuleCache;
use fvhost::transform::{Limits, TransformEngine, TransformError, TransformModule, Transformer};
use support::*;

/// The example module as if built against contract version `version`: its
/// imports and exports of `fvhost:transform/*@0.1.0` renamed (the same
/// length, so the binary stays valid).
fn built_for(version: &str) -> Vec<u8> {
    assert_eq!(version.len(), "0.1.0".len());
    let mut bytes = std::fs::read(driver_stats_module()).unwrap();
    let mut renamed = 0;
    for interface in ["host", "types", "transformer"] {
        let from = format!("fvhost:transform/{interface}@0.1.0");
        let to = format!("fvhost:transform/{interface}@{version}");
        let mut at = 0;
        while let Some(found) = find(&bytes[at..], from.as_bytes()) {
            let start = at + found;
            bytes[start..start + to.len()].copy_from_slice(to.as_bytes());
            at = start + to.len();
            renamed += 1;
        }
    }
    assert!(renamed >= 2, "the example names the contract's interfaces");
    bytes
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn load(bytes: &[u8]) -> Result<TransformModule, TransformError> {
    let engine = TransformEngine::new().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    TransformModule::from_bytes(
        &engine,
        &ModuleCache::new(Some(cache_dir.path().to_path_buf())),
        bytes,
        "module.wasm",
    )
}

fn driver_batch() -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("driver_id", Arc::new(Int64Array::from(vec![1, 2]))),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![0, 1]).with_timezone("UTC")),
        ),
        ("conv_rate", Arc::new(Float64Array::from(vec![0.5, 0.25]))),
        ("acc_rate", Arc::new(Float64Array::from(vec![0.75, 1.0]))),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

#[test]
fn a_module_built_for_a_patch_version_of_the_contract_links_and_runs() {
    let module = load(&built_for("0.1.9")).expect("0.1.9 is compatible with 0.1.0");
    let transformer = Transformer::new(Arc::new(module), Vec::new(), Limits::default(), "v");
    let output = transformer.run(&driver_batch()).unwrap();
    let percentages = output
        .batch
        .column_by_name("conv_percentage")
        .expect("the transform ran");
    assert_eq!(percentages.len(), 2);
}

#[test]
fn modules_built_for_another_minor_or_major_version_are_refused_naming_the_export() {
    for version in ["0.2.0", "1.0.0"] {
        let error = load(&built_for(version)).unwrap_err().to_string();
        assert!(
            error.starts_with("module does not match the fvhost:transform@0.1.0 contract: it does not export `fvhost:transform/transformer@0.1.0`"),
            "{version}: {error}"
        );
        assert!(
            error.contains(&format!("fvhost:transform/transformer@{version}")),
            "{version}: names what it exports instead: {error}"
        );
    }
}

#[test]
fn a_module_with_the_wrong_signature_is_refused_saying_what_differs() {
    let bytes = std::fs::read(test_guest("wrong_signature")).unwrap();
    let error = load(&bytes).unwrap_err().to_string();
    assert_eq!(
        error,
        "module does not match the fvhost:transform@0.1.0 contract: its `fvhost:transform/transformer@0.1.0` \
         differs from the contract: `transform` is (batch: string) -> result<record { batch: list<u8>, rejected: \
         list<record { row: u32, reason: string }> }, string>; the contract says (batch: list<u8>) -> result<record \
         { batch: list<u8>, rejected: list<record { row: u32, reason: string }> }, string>"
    );
}
