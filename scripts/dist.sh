#!/usr/bin/env bash
# Builds the binary to ship: the release build with its debug info split off.
#
#   scripts/dist.sh [OUT_DIR]     # default: dist/
#
# OUT_DIR/fvhost        the binary (~57 MiB), debug info stripped, with a
#                       .gnu_debuglink naming the file below
# OUT_DIR/fvhost.debug  its line tables and symbols (~215 MiB): keep it beside
#                       each release so a crash report's addresses can be read
#                       (gdb/addr2line find it through the debuglink)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
cargo build --release --locked -p fvhost
target="${CARGO_TARGET_DIR:-target}"
mkdir -p "$out"
cp "$target/release/fvhost" "$out/fvhost"
objcopy --only-keep-debug "$out/fvhost" "$out/fvhost.debug"
# The debuglink holds the file name; gdb looks beside the binary.
(cd "$out" && objcopy --strip-debug --add-gnu-debuglink=fvhost.debug fvhost)
ls -l "$out/fvhost" "$out/fvhost.debug" >&2
