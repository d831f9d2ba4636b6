#!/usr/bin/env bash
# Builds the npm package `framewire` from the crate framewire-wasm, without
# wasm-pack (see shared/TOOLCHAINS.md):
#
#   1. cargo (Debian's rustc, -Zbuild-std) → wasm32-unknown-unknown cdylib,
#      in its own target dir (target/wasm);
#   2. wasm-opt -O3 (Debian's binaryen) on the cargo output;
#   3. wasm-bindgen (exactly the wasm-bindgen version in Cargo.lock) → JS glue
#      for Node (CommonJS) and for the web (ES module);
#   4. the package folder target/npm/framewire: glue, the JS API (wasm/js),
#      TypeScript types, package.json, README;
#   5. `npm pack` → target/npm/framewire-VERSION.tgz (skip with --no-pack).
#
# Needs `scripts/setup.sh --cross --wasm` first (Debian's rustc with std
# sources, wasm-ld, wasm-bindgen-cli, binaryen).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
pack=1
for arg in "$@"; do
  case "$arg" in
    --no-pack) pack=0 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

# The wasm-bindgen CLI must be the version the crate was built against.
want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
if [ "$want" != "$have" ]; then
  echo "build-wasm: wasm-bindgen CLI is '${have:-missing}', Cargo.lock has $want: run scripts/setup.sh --wasm" >&2
  exit 1
fi
if ! command -v wasm-opt >/dev/null 2>&1; then
  echo "build-wasm: wasm-opt (Debian package binaryen) is missing: run scripts/setup.sh --wasm" >&2
  exit 1
fi
version="$(awk '/^\[workspace.package\]/ { p = 1 } p && /^version *=/ { gsub(/version *= *|"/, ""); print; exit }' Cargo.toml)"

echo "build-wasm: cargo build (wasm32-unknown-unknown, release)"
export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER=wasm-ld-19
# A shipped artifact: no debug info, one codegen unit with LTO (smaller and
# faster wasm). Environment overrides keep the workspace profile untouched.
export CARGO_PROFILE_RELEASE_DEBUG=false CARGO_PROFILE_RELEASE_LTO=true \
  CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
/usr/bin/cargo build --release --target wasm32-unknown-unknown \
  -Zbuild-std=std,panic_abort -p framewire-wasm --target-dir target/wasm
cargo_wasm=target/wasm/wasm32-unknown-unknown/release/framewire_wasm.wasm

# wasm-opt -O3: ~5% faster decoding of small BSON documents and lines (none
# measurable for 16-byte frames) and ~20% smaller (see wasm/README.md, decode
# benchmark). It runs on cargo's output, before
# wasm-bindgen: Debian's binaryen (108) cannot parse the table.fill that
# wasm-bindgen's externref pass adds. The features are the ones rustc enables
# for wasm32-unknown-unknown (`rustc --print cfg --target wasm32-unknown-unknown`).
# wasm-bindgen names its output after the input file, hence the directory.
echo "build-wasm: wasm-opt -O3 ($(wasm-opt --version))"
mkdir -p target/wasm/opt
wasm_file=target/wasm/opt/framewire_wasm.wasm
wasm-opt -O3 --enable-bulk-memory --enable-multivalue --enable-mutable-globals \
  --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext \
  "$cargo_wasm" -o "$wasm_file"

out=target/npm/framewire
rm -rf "$out"
mkdir -p "$out/node" "$out/web" "$out/lib"
echo "build-wasm: wasm-bindgen $have"
# --weak-refs: wasm objects are also freed when their JS wrapper is collected.
wasm-bindgen --target nodejs --weak-refs --out-dir "$out/node" "$wasm_file"
wasm-bindgen --target web --weak-refs --out-dir "$out/web" "$wasm_file"
# Only the package's own types are shipped (index.d.ts covers the glue's classes).
rm -f "$out"/node/*.d.ts "$out"/web/*.d.ts

js=wasm/js
sed "s/@VERSION@/$version/g" "$js/node-index.cjs" > "$out/node/index.cjs"
sed "s/@VERSION@/$version/g" "$js/node-index.mjs" > "$out/node/index.mjs"
sed "s/@VERSION@/$version/g" "$js/web-index.js" > "$out/web/index.js"
cp "$js/api.js" "$out/lib/api.mjs"
{
  echo "'use strict';"
  sed 's/^export function makeApi/function makeApi/' "$js/api.js"
  echo 'module.exports = { makeApi };'
} > "$out/lib/api.cjs"
if grep -q '^export ' "$out/lib/api.cjs"; then
  echo "build-wasm: wasm/js/api.js may only export makeApi" >&2
  exit 1
fi
# The web glue and entry are ES modules whatever loads them.
echo '{ "type": "module" }' > "$out/web/package.json"
cp "$js/index.d.ts" "$out/index.d.ts"
cp "$js/README.md" "$out/README.md"
cat > "$out/package.json" <<EOF
{
  "name": "framewire",
  "version": "$version",
  "description": "Message framing, BSON and cs.packetstream request/response over WebSockets, in WebAssembly (browsers and Node)",
  "license": "MIT OR Apache-2.0",
  "main": "./node/index.cjs",
  "module": "./web/index.js",
  "browser": "./web/index.js",
  "types": "./index.d.ts",
  "exports": {
    ".": {
      "types": "./index.d.ts",
      "node": {
        "import": "./node/index.mjs",
        "require": "./node/index.cjs"
      },
      "import": "./web/index.js",
      "require": "./node/index.cjs",
      "default": "./web/index.js"
    },
    "./package.json": "./package.json"
  },
  "files": [
    "index.d.ts",
    "node/",
    "web/",
    "lib/",
    "README.md"
  ],
  "engines": {
    "node": ">=18"
  },
  "keywords": ["framing", "bson", "websocket", "wasm", "packetstream"]
}
EOF
echo "build-wasm: $out ($(du -sh "$out" | cut -f1))"
if [ "$pack" = 1 ]; then
  (cd target/npm && npm pack --silent ./framewire >/dev/null)
  echo "build-wasm: target/npm/framewire-$version.tgz"
fi
