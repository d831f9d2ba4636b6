#!/usr/bin/env python3
"""Attributes every byte of a firmware image's code to the crate whose source
line produced it, from the DWARF line table (llvm-dwarfdump --debug-line).

With LTO most functions are inlined into their callers, so grouping symbols
by name misses most of a library's code; the line table still names, for
every instruction, the source line it came from (the innermost inlined one).
Line sequences of functions the linker discarded (relocated to address 0)
are skipped; bytes of .text without line information are reported as such.

Usage: code_share.py LLVM_DWARFDUMP ELF REPO [MAX_CORE_BYTES]
Prints bytes per group; with MAX_CORE_BYTES exits 1 if the core's share
(code from core/src, crate framewire) is larger.
"""
import re
import struct
import subprocess
import sys

CORE = "framewire (core)"
ADAPTER = "framewire-smoltcp (adapter)"
NO_LINES = "no line information"


def group_of(path, repo):
    if path.startswith(repo + "/core/"):
        return CORE
    if path.startswith(repo + "/adapters/smoltcp/firmware/"):
        return "firmware application (echo glue, loopback device)"
    if path.startswith(repo + "/adapters/smoltcp/"):
        return ADAPTER
    if "/smoltcp-0." in path:
        return "smoltcp"
    if "/rustlib/src/rust/library/" in path or path.startswith("/usr/src/rustc-"):
        return "Rust library (inlined generic code, memcpy)"
    if re.search(r"/(cortex-m[a-z-]*|critical-section|panic-halt)-\d", path):
        return "cortex-m runtime"
    return "other crates (heapless, managed, byteorder)"


def text_range(elf):
    """(start, end) of the .text section of a 32-bit little-endian ELF."""
    with open(elf, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise SystemExit(f"{elf}: not a 32-bit little-endian ELF")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    headers = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx][4]
    for h in headers:
        name = data[strtab + h[0]: data.index(b"\0", strtab + h[0])].decode()
        if name == ".text":
            return h[3], h[3] + h[5]
    raise SystemExit(f"{elf}: no .text section")


def comp_dirs(info):
    """{line table offset: compilation directory} from --debug-info."""
    dirs, offset = {}, None
    for line in info.splitlines():
        m = re.search(r"DW_AT_stmt_list\s+\(0x([0-9a-f]+)\)", line)
        if m:
            offset = int(m.group(1), 16)
        m = re.search(r'DW_AT_comp_dir\s+\("(.*)"\)', line)
        if m and offset is not None:
            dirs[offset] = m.group(1)
            offset = None
    return dirs


def sequences(dump, cwd_of, repo):
    """Yields line sequences as lists of (address, group)."""
    dirs, files = {}, {}
    pending = None
    seq = []
    row = re.compile(r"^0x([0-9a-f]+)\s+\d+\s+\d+\s+(\d+)\s.*?(end_sequence)?\s*$")
    for line in dump.splitlines():
        m = re.match(r"^debug_line\[0x([0-9a-f]+)\]", line)
        if m:
            dirs, files, seq = {0: cwd_of.get(int(m.group(1), 16), "")}, {}, []
            continue
        m = re.match(r'^include_directories\[\s*(\d+)\] = "(.*)"', line)
        if m:
            d = m.group(2)
            dirs[int(m.group(1))] = d if d.startswith("/") else dirs[0] + "/" + d
            continue
        m = re.match(r"^file_names\[\s*(\d+)\]:", line)
        if m:
            pending = [int(m.group(1)), None]
            continue
        m = re.match(r'^\s+name: "(.*)"', line)
        if m and pending:
            pending[1] = m.group(1)
            continue
        m = re.match(r"^\s+dir_index: (\d+)", line)
        if m and pending:
            index, name = pending
            base = dirs.get(int(m.group(1)), dirs[0])
            path = name if name.startswith("/") else base + "/" + name
            files[index] = (group_of(path, repo), path)
            pending = None
            continue
        m = row.match(line)
        if m:
            seq.append((int(m.group(1), 16), files.get(int(m.group(2)), ("unknown", "?"))))
            if m.group(3):
                yield seq
                seq = []


def main():
    dwarfdump, elf, repo = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")
    max_core = int(sys.argv[4]) if len(sys.argv) > 4 else None
    start, end = text_range(elf)
    def run(*args):
        return subprocess.run(
            [dwarfdump, *args, elf], check=True, capture_output=True, text=True
        ).stdout

    dump = run("--debug-line")
    cwd_of = comp_dirs(run("--debug-info", "--recurse-depth=0"))

    owner = [(NO_LINES, "")] * (end - start)
    for seq in sequences(dump, cwd_of, repo):
        if not seq or not start <= seq[0][0] < end:
            continue  # a discarded function's sequence
        for (addr, group), (next_addr, _) in zip(seq, seq[1:]):
            for a in range(max(addr, start), min(next_addr, end)):
                owner[a - start] = group
    totals, core_files = {}, {}
    for group, path in owner:
        totals[group] = totals.get(group, 0) + 1
        if group in (CORE, ADAPTER):
            name = path[len(repo) + 1:]
            core_files[name] = core_files.get(name, 0) + 1

    width = max(len(g) for g in totals)
    for group, size in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {group:<{width}}  {size:6d} bytes  {100 * size / len(owner):5.1f} %")
    print(f"  {'.text':<{width}}  {len(owner):6d} bytes")
    print("by source file (framewire and framewire-smoltcp):")
    for name, size in sorted(core_files.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<{width}}  {size:6d} bytes")
    core, adapter = totals.get(CORE, 0), totals.get(ADAPTER, 0)
    print(f"core's share: {core} bytes; core + adapter: {core + adapter} bytes")
    if max_core is not None and core > max_core:
        print(f"code_share: the core's {core} bytes are over {max_core}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
