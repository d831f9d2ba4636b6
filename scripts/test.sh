#!/usr/bin/env bash
# The test suite: unit, property, golden-vector and interop tests (the interop
# tests talk to the real Python originals over loopback TCP).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
scripts/setup.sh
export FRAMEWIRE_PYTHON="$repo/.venv/bin/python"
# Every crate with the optional message codecs on.
cargo test --workspace --no-fail-fast --features framewire/bson,framewire/json,framewire-std/bson,framewire-tokio/bson
# The core without alloc: the no-alloc (caller-owned buffer) mode on its own.
cargo test -p framewire --no-default-features --lib
