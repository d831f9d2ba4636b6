#!/usr/bin/env bash
# Builds the Cortex-M4F firmware images in adapters/smoltcp/firmware with
# Debian's rustc and -Zbuild-std (shared/TOOLCHAINS.md), prints their sizes
# and framewire's share of the code, and runs the golden vectors on the
# target's instruction set under qemu-system-arm when it is installed.
# Run scripts/setup.sh --cross first. Exits non-zero on any failure: a build
# error, the core's code over the 16 KiB target, or a failed check under
# qemu.
#
# The images (target/firmware/):
#   framewire-firmware.elf   the size image: a smoltcp interface and four TCP
#                            connections driven by framewire-smoltcp (a framed
#                            echo server and client, a packet-stream server
#                            and client)
#   baseline.elf             the same image echoing raw bytes, no framewire
#   framewire-vectors.elf    WIRE.md golden vectors through the core's decoders,
#                            then the same four connections, checked on a
#                            Cortex-M4; exit status by semihosting
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
dwarfdump_tool="$(find_tool llvm-dwarfdump-19 llvm-dwarfdump)"

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

text_of() { "$size_tool" -A "$1" | awk '$1 == ".text" { print $2 }'; }
echo
echo "--- code by origin (DWARF line table: each instruction counted for the source"
echo "    line it came from, code inlined across crates included)"
python3 "$fw/code_share.py" "$dwarfdump_tool" "$image" "$repo" "$max_share"
echo "cross-check: .text of the image minus .text of the baseline (everything framewire"
echo "brings: core, adapter, echo glue, generic library code): $(( $(text_of "$image") - $(text_of "$baseline") )) bytes"

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
