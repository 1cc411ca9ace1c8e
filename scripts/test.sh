#!/usr/bin/env bash
# Sets up this machine if needed and runs the whole test suite: formatting and
# lints, the host's unit and end-to-end tests (real redis-server, Kafka
# mock cluster over TCP, transforms built from source), and the example
# transform's own tests (Rust and Python).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step's header says how long the run has taken so far (a cold run's
# time budget is spent mostly on builds; see docs/architecture.md).
step() { echo "== $* (at ${SECONDS}s)" >&2; }
scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check
step cargo clippy
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "example transform tests (native)"
# Native build of the example crate: beside the host's build when that is
# kept outside the clone (CI), so a fresh clone does not rebuild it.
examples_target="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/examples-transforms}"
cargo test --quiet --manifest-path examples/transforms/Cargo.toml --target-dir "${examples_target:-examples/transforms/target}"

step "Python guest SDK and example transform tests (native)"
(cd guest-sdk/python && python3 -m unittest discover -s tests)
(cd examples/python/driver_stats && PYTHONPATH=../../../guest-sdk/python python3 -m unittest)

step fvhost tests
cargo test --workspace
step done
