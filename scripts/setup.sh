#!/usr/bin/env bash
# Installs what framewire's tests and builds need. Idempotent; safe to rerun.
#
#   scripts/setup.sh            Python venv (.venv) with the pinned originals
#                               (py-bson 0.5.10, cs.packetstream 20240630) for
#                               the interop tests.
#   scripts/setup.sh --cross    also Debian's rustc/cargo with std sources and
#                               wasm-ld (for the thumbv7em and wasm32 builds;
#                               see scripts/build-targets.sh), llvm-size and
#                               qemu-system-arm (scripts/build-firmware.sh).
#                               Needs root.
#   scripts/setup.sh --wasm     also what the npm package and its tests need
#                               (implies --cross): wasm-bindgen-cli at exactly
#                               the wasm-bindgen version in Cargo.lock,
#                               binaryen (wasm-opt), and Debian's chromium for
#                               the browser tests (see
#                               scripts/build-wasm.sh, scripts/test-wasm.sh).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cross=0
wasm=0
for arg in "$@"; do
  case "$arg" in
    --cross) cross=1 ;;
    --wasm) cross=1; wasm=1 ;;
    *) echo "unknown option $arg" >&2; exit 2 ;;
  esac
done

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Python venv with the originals. --no-deps is required: see the comment at the
# top of tests/python/requirements.txt.
req="$repo/tests/python/requirements.txt"
venv="$repo/.venv"
stamp="$venv/.framewire-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$stamp"; then
  if ! python3 -m venv --help >/dev/null 2>&1; then apt_install python3-venv; fi
  echo "setup: creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -r "$req"
  cp "$req" "$stamp"
fi

# `ip` (iproute2): the smoltcp adapter's TAP interop test makes its own network
# namespace with it (and skips, saying so, where it cannot).
if ! command -v ip >/dev/null 2>&1; then
  apt_install iproute2 || echo "setup: could not install iproute2; the smoltcp TAP test will skip" >&2
fi

if [ "$cross" = 1 ]; then
  apt_install rustc-web cargo-web rust-web-src lld-19
  apt_install llvm-19 qemu-system-arm
fi
if [ "$wasm" = 1 ]; then
  apt_install chromium binaryen
  # The CLI must equal the wasm-bindgen crate version the wasm is built with.
  # No --locked: the registry snapshot lacks some versions the CLI's own lock names.
  want="$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$repo/Cargo.lock")"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)"
  if [ "$want" != "$have" ]; then
    echo "setup: cargo install wasm-bindgen-cli --version $want"
    cargo install -q wasm-bindgen-cli --version "$want"
  fi
fi
echo "setup: ok"
