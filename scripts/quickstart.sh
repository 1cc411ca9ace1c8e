#!/usr/bin/env bash
# Sets up this machine if needed, builds fvhost and runs `fvhost quickstart`:
# Kafka events -> Wasm transform -> Redis in Feast's layout, all on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p fvhost
exec "${CARGO_TARGET_DIR:-target}/release/fvhost" quickstart --examples examples "$@"
