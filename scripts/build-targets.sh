#!/usr/bin/env bash
# Builds the core for a Cortex-M4F (no_std, no alloc and with alloc) and for
# wasm32-unknown-unknown with Debian's rustc and -Zbuild-std, following
# shared/TOOLCHAINS.md. Run scripts/setup.sh --cross first.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19
cargo=/usr/bin/cargo
target_dir="$repo/target/cross"
set -x
"$cargo" build --release --target thumbv7em-none-eabihf -Zbuild-std=core,alloc \
  -p framewire --no-default-features --target-dir "$target_dir"
"$cargo" build --release --target thumbv7em-none-eabihf -Zbuild-std=core,alloc \
  -p framewire --no-default-features --features alloc --target-dir "$target_dir"
"$cargo" build --release --target wasm32-unknown-unknown -Zbuild-std=core,alloc \
  -p framewire --target-dir "$target_dir"
