#!/usr/bin/env bash
# Builds the Cortex-M4F firmware images in adapters/smoltcp/firmware with
# Debian's rustc and -Zbuild-std (shared/TOOLCHAINS.md), prints their sizes
# and framewire's share of the code, and runs the golden vectors on the
# target's instruction set under qemu-system-arm when it is installed.
# Run scripts/setup.sh --cross first. Exits non-zero on any failure: a build
# error, framewire's code share over the 16 KiB target, or a failed check
# under qemu.
#
# The images (target/firmware/):
#   framewire-firmware.elf   the size image: smoltcp interface + TCP echo of
#                            length-prefixed frames through framewire
#   baseline.elf             the same image echoing raw bytes, no framewire
#   framewire-vectors.elf    WIRE.md golden vectors + the smoltcp echo,
#                            checked on a Cortex-M4, exit status by semihosting
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
fw="$repo/adapters/smoltcp/firmware"
target=thumbv7em-none-eabihf
target_dir="$repo/target/firmware"
out="$target_dir/$target/release"
max_share=16384

export RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
export CARGO_TARGET_THUMBV7EM_NONE_EABIHF_LINKER=ld.lld-19
cargo=/usr/bin/cargo

find_tool() {
  local t
  for t in "$@"; do
    if command -v "$t" >/dev/null 2>&1; then echo "$t"; return 0; fi
  done
  echo "build-firmware: none of $* found (scripts/setup.sh --cross)" >&2
  return 1
}
size_tool="$(find_tool llvm-size-19 llvm-size)"
nm_tool="$(find_tool llvm-nm-19 llvm-nm)"

build() {
  (cd "$fw" && "$cargo" build --release --target "$target" -Zbuild-std=core \
    --target-dir "$target_dir" "$@")
}

echo "--- building (baseline without framewire, then the images)"
build --no-default-features --bin framewire-firmware
cp "$out/framewire-firmware" "$target_dir/baseline.elf"
build
cp "$out/framewire-firmware" "$target_dir/framewire-firmware.elf"
cp "$out/framewire-vectors" "$target_dir/framewire-vectors.elf"

image="$target_dir/framewire-firmware.elf"
baseline="$target_dir/baseline.elf"
echo
echo "--- sizes ($size_tool, bytes; .text includes .vector_table and .rodata)"
"$size_tool" "$image" "$baseline" "$target_dir/framewire-vectors.elf"
echo
"$size_tool" -A "$image" | awk '$1 ~ /^\.(vector_table|text|rodata|data|bss|uninit)$/'

text_of() { "$size_tool" "$1" | awk 'NR == 2 { print $1 }'; }
share=$(( $(text_of "$image") - $(text_of "$baseline") ))
# Code in functions named after the crates (code inlined into callers, e.g.
# into the echo glue, is not counted here; the difference above counts it).
symbols_of() {
  "$nm_tool" --print-size --size-sort --radix=d -C "$image" |
    awk -v re="$1" '$3 ~ /^[tTwW]$/ { name = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", name);
      if (name ~ re) sum += $2 } END { print sum + 0 }'
}
core_syms=$(symbols_of '^<?framewire::')
adapter_syms=$(symbols_of '^<?framewire_smoltcp::')
echo
echo "--- framewire's share of the code"
echo "image minus baseline .text:              $share bytes (target: under $max_share)"
echo "functions of the core (framewire::):     $core_syms bytes"
echo "functions of the adapter (framewire_smoltcp::): $adapter_syms bytes"
if [ "$share" -gt "$max_share" ]; then
  echo "build-firmware: framewire's share $share bytes is over $max_share" >&2
  exit 1
fi

echo
if command -v qemu-system-arm >/dev/null 2>&1; then
  echo "--- golden vectors on a Cortex-M4 (qemu-system-arm -machine mps2-an386)"
  timeout 120 qemu-system-arm -machine mps2-an386 -cpu cortex-m4 -nographic \
    -semihosting-config enable=on,target=native \
    -kernel "$target_dir/framewire-vectors.elf"
  echo "build-firmware: qemu run passed"
else
  echo "build-firmware: qemu-system-arm not installed, vectors not run (scripts/setup.sh --cross)"
fi
