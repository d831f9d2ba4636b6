#!/usr/bin/env bash
# Decode throughput of the wasm codec under Node versus the same Rust code
# native, on the same input (DESIGN.md: wasm within 2x of native). Builds the
# package (unless --no-build) and the native half with the same profile
# settings as the wasm (LTO, one codegen unit, no debug info), then prints a
# table. Needs `scripts/setup.sh --wasm` first.
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
  scripts/build-wasm.sh --no-pack
fi
CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_LTO=true CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1 \
  cargo build -q --release -p framewire-wasm --example decode_bench --target-dir target/bench-native
node wasm/tests-js/bench-decode.mjs "$repo/target/bench-native/release/examples/decode_bench"
