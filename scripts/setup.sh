#!/usr/bin/env bash
# Installs what fvhost needs on a fresh Debian machine with a Rust toolchain:
# the wasm32-wasip2 target, redis-server (and redis-cli, for clusters), a C
# toolchain for librdkafka, Python 3 with componentize-py (in a virtualenv
# cached at ~/.cache/fvhost/py-venv) for Python transforms, Feast for the
# round-trip tests, Prometheus, and the tansu broker.
# Safe to run again: it only installs what is missing.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v openssl >/dev/null || missing+=(openssl)
command -v cc >/dev/null || missing+=(build-essential)
command -v make >/dev/null || missing+=(make)
command -v perl >/dev/null || missing+=(perl)
command -v python3 >/dev/null || missing+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
# A real Prometheus server scrapes fvhost's /metrics in the tests.
command -v prometheus >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 Rust target" >&2
  rustup target add wasm32-wasip2
fi

# The two virtualenvs below are mostly downloads: they are installed in the
# background while tansu compiles, and waited for at the end.
background=()

# componentize-py builds Python transforms (`fvhost build`); pinned, cached.
COMPONENTIZE_PY_VERSION=0.25.1
PY_VENV="${FVHOST_PY_VENV:-$HOME/.cache/fvhost/py-venv}"
if ! "$PY_VENV/bin/componentize-py" --version 2>/dev/null | grep -q "$COMPONENTIZE_PY_VERSION"; then
  echo "setup: installing componentize-py $COMPONENTIZE_PY_VERSION into $PY_VENV" >&2
  (python3 -m venv "$PY_VENV" \
    && "$PY_VENV/bin/pip" install --quiet "componentize-py==$COMPONENTIZE_PY_VERSION") &
  background+=("$!:componentize-py")
fi

# Feast 0.67 itself, for the round-trip tests (fvhost writes and Feast reads,
# and the other way) and the benchmarks against Feast; pinned, cached.
FEAST_VERSION=0.67.0
FEAST_VENV="${FVHOST_FEAST_VENV:-$HOME/.cache/fvhost/feast-venv}"
if ! "$FEAST_VENV/bin/python" -c "import feast, sys; sys.exit(feast.__version__ != '$FEAST_VERSION')" 2>/dev/null; then
  echo "setup: installing feast[redis]==$FEAST_VERSION into $FEAST_VENV" >&2
  rm -rf "$FEAST_VENV"
  (python3 -m venv "$FEAST_VENV" \
    && "$FEAST_VENV/bin/pip" install --quiet "feast[redis]==$FEAST_VERSION") &
  background+=("$!:feast[redis]")
fi

# tansu, a Kafka-compatible broker (Rust, from crates.io), for the end-to-end
# test and benchmarks on a real broker; in-memory storage needs `dynostore`.
# Pinned, cached outside the clone; its build folder is removed afterwards.
# Built at opt-level FVHOST_TANSU_OPT_LEVEL (default 1; CI asks for 0: its one
# test sends a few thousand messages), recorded in `.opt-level` beside it for
# the benchmarks to report. At the release default (3) the build took about
# 15 minutes on 2 cores; docs/architecture.md, "The cold CI", has the others.
TANSU_VERSION=0.6.0
TANSU_ROOT="${FVHOST_TANSU_ROOT:-$HOME/.cache/fvhost/tansu}"
TANSU_OPT_LEVEL="${FVHOST_TANSU_OPT_LEVEL:-1}"
if ! "$TANSU_ROOT/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION" \
   || [ ! -f "$TANSU_ROOT/.dynostore" ]; then
  echo "setup: building tansu $TANSU_VERSION into $TANSU_ROOT (once, several minutes)" >&2
  build_dir="$(mktemp -d)"
  CARGO_TARGET_DIR="$build_dir" CARGO_PROFILE_RELEASE_OPT_LEVEL="$TANSU_OPT_LEVEL" \
    cargo install --quiet --locked tansu \
    --version "$TANSU_VERSION" --features dynostore --root "$TANSU_ROOT" --force
  rm -rf "$build_dir"
  echo "$TANSU_OPT_LEVEL" > "$TANSU_ROOT/.opt-level"
  touch "$TANSU_ROOT/.dynostore"
fi

for job in "${background[@]}"; do
  if ! wait "${job%%:*}"; then
    echo "setup: installing ${job#*:} failed (see pip's output above)" >&2
    exit 1
  fi
done
