#!/usr/bin/env bash
# Installs what fvhost needs on a fresh Debian machine with a Rust toolchain:
# the wasm32-wasip2 target, redis-server, and a C toolchain for librdkafka.
# Safe to run again: it only installs what is missing.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v cc >/dev/null || missing+=(build-essential)
command -v make >/dev/null || missing+=(make)
command -v perl >/dev/null || missing+=(perl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "setup: adding the wasm32-wasip2 Rust target" >&2
  rustup target add wasm32-wasip2
fi
