#!/usr/bin/env bash
# Sets up this machine if needed and runs the whole test suite: formatting and
# lints, the host's unit and end-to-end tests (real redis-server, Kafka
# mock cluster over TCP, transforms built from source), and the example
# transform's own tests (Rust and Python).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "== example transform tests (native)" >&2
cargo test --quiet --manifest-path examples/transforms/Cargo.toml --target-dir examples/transforms/target

echo "== Python guest SDK and example transform tests (native)" >&2
(cd guest-sdk/python && python3 -m unittest discover -s tests)
(cd examples/python/driver_stats && PYTHONPATH=../../../guest-sdk/python python3 -m unittest)

echo "== fvhost tests" >&2
cargo test --workspace
