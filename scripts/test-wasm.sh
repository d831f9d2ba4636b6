#!/usr/bin/env bash
# Builds the npm package and runs its JavaScript tests (wasm/tests-js, node:test):
# codecs and BSON on golden vectors, PacketCore, the packed-and-installed
# package, end to end through `framewire gateway` to Rust servers (Node with
# the `ws` package, and headless Chromium through playwright-core), and the
# memory check over 1,000 connections.
#
# Needs `scripts/setup.sh --wasm` first. Options:
#   --no-build   use the package already in target/npm/framewire
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done
if [ "$build" = 1 ]; then
  scripts/build-wasm.sh
fi
# The gateway and the Rust servers the end-to-end tests start.
cargo build -q -p framewire-cli
cargo build -q -p framewire-wasm --example js_peer

cd wasm/tests-js
# The test dependencies (ws, playwright-core), exactly as locked.
stamp=node_modules/.framewire-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --silent
  cp package-lock.json "$stamp"
fi
export FRAMEWIRE_BIN="$repo/target/debug/framewire"
export FRAMEWIRE_JS_PEER="$repo/target/debug/examples/js_peer"
node --test --test-concurrency=1
