#!/usr/bin/env python3
"""Writes the checked-in seed corpus of the fuzz targets (fuzz/seeds/<target>/).

Every seed is a golden vector of /work/shared/WIRE.md (produced by the real
Python originals) in the input layout of its target (see fuzz/src/lib.rs):

    config[16] n_cuts:u8 cut[n_cuts] data

An all-zero configuration is each framing's plain configuration.

The `found-*` seeds of packet_connection and borrowed_connection are the
scenarios of connection_scenarios.txt (operation lists in the targets' Debug
notation), written in the stable input encoding of fuzz/src/connection.rs.

Run it from anywhere; it rewrites the seeds it owns (`wire-*`, and `found-*`
of the two connection targets; never `crash-*`). `--check` then decodes every
connection seed with the built target (`cargo +nightly fuzz fmt`) and
compares it with its scenario.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def unhex(s):
    return bytes.fromhex("".join(s.split()))


def seed(config=b"", cuts=(), data=b""):
    config = bytes(config) + bytes(16 - len(config))
    return config + bytes([len(cuts)]) + bytes(cuts) + data


def raw(config=b"", data=b""):
    return bytes(config) + bytes(16 - len(config)) + data


# WIRE.md §1 (py-bson 0.5.10)
BSON_HELLO = unhex("16000000 02 68656c6c6f00 06000000 776f726c6400 00")
BSON_BENCH = unhex("3200000010736571000000000005706164001a00000000787878787878787878787878787878787878787878787878787800")
BSON_EMPTY = unhex("0500000000")
BSON_NESTED = unhex("1f0000000461001700000010300001000000033100080000000a6200000000")
BSON_INT64 = unhex("10000000 12 6e00 0500000000000000 00")
BSON_INT32 = unhex("0c000000 10 6e00 05000000 00")
BSON_DOCS = [BSON_HELLO, BSON_BENCH, BSON_EMPTY, BSON_NESTED, BSON_INT64, BSON_INT32]

# WIRE.md §2 (cs.packetstream 20240630)
PACKETS = [
    unhex("08 02 02 01 68656c6c6f"),
    unhex("06 03 0e 02 616263"),
    unhex("05 02 03 05 01 78"),
    unhex("07 02 04 68656c6c6f"),
    unhex("07 02 3c 666c616773"),
    unhex("04 0c 83 7c 66"),
    unhex("1a 05 00 657863657074696f6e20647572696e672068616e646c6572"),
    unhex("814b822c04") + bytes(range(200)),
    unhex("03000200"),  # EOF
    unhex("03010200"),  # ERQ
]
EOF_PACKET, ERQ_PACKET = PACKETS[8], PACKETS[9]

# WIRE.md §3 (socktools)
SOCKTOOLS = [
    unhex("00000028 5b312c207b2274657874223a20226869222c20226e223a205b312c20322e352c206e756c6c5d7d5d"),
    unhex("00000013 5b2263686174222c2022685c7530306539225d"),
]

# WIRE.md §4 (Real Python socket tutorial)


def tutorial(content_type, encoding, content):
    hdr = json.dumps(
        {"byteorder": "little", "content-type": content_type,
         "content-encoding": encoding, "content-length": len(content)},
        ensure_ascii=False).encode("utf-8")
    return len(hdr).to_bytes(2, "big") + hdr + content


TUTORIAL_REQUEST = tutorial("text/json", "utf-8", json.dumps(
    {"action": "search", "value": "morpheus"}, ensure_ascii=False).encode("utf-8"))
TUTORIAL_RESPONSE = tutorial("text/json", "utf-8", json.dumps(
    {"result": "Follow the white rabbit. \U0001f430"}, ensure_ascii=False).encode("utf-8"))
TUTORIAL_BINARY = tutorial("binary/custom-client-binary-type", "binary", b"searchmorpheus")
assert TUTORIAL_REQUEST[:2] == b"\x00\x67"

ONES = (1,) * 40

SEEDS = {
    "framing_length": [
        seed(data=b"".join(SOCKTOOLS)),
        seed(cuts=ONES, data=b"".join(SOCKTOOLS)),
        seed(cuts=(3, 5, 7), data=SOCKTOOLS[0] + SOCKTOOLS[1][:6]),
        # cs.packetstream's length: BSUInt (field 9).
        seed(config=[9], data=b"".join(PACKETS)),
        seed(config=[9], cuts=(1, 2, 3, 4, 5, 6), data=b"".join(PACKETS)),
        # u16 little-endian counting itself, and an over-long frame skipped.
        seed(config=[2, 1, 0, 0, 1], data=b"\x04\x00hi\x05\x00abc"),
        seed(config=[0, 0, 0, 0, 2, 9], data=b"\x00\x00\x00\x01a\x00\x00\x00\x0aABCDEFGHIJ\x00\x00\x00\x02bc"),
        seed(data=b"\xff\xff\xff\xffabc"),
    ],
    "framing_delimited": [
        seed(data=b"hello\nworld\n"),
        seed(config=[0, 0, 0, 0, 0, 0, 0, 0, 0, 2], cuts=(1, 1, 1, 1, 1, 1), data=b"hello\n"),  # socktools line mode
        seed(config=[0, 0, 0, 0, 0, 0, 0, 0, 0, 1], data=b"a\r\nb\n\r\r\n\r\n"),
        seed(config=[1, 1, 0], data=b"a\r\nb\rc\n\r\n\r\r\n\r"),  # "\r\n" delimiter
        seed(config=[0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 5], data=b"abcdefgh\nok\n"),  # limit 4, skip
    ],
    "framing_fixed": [
        seed(data=b"abcdefgh"),
        seed(config=[3], cuts=(1, 1, 4), data=b"abcdef"),
        seed(config=[50], data=BSON_BENCH),
    ],
    "framing_json_header": [
        seed(data=TUTORIAL_REQUEST),
        seed(cuts=(1, 2, 50, 3), data=TUTORIAL_RESPONSE),
        seed(data=TUTORIAL_BINARY + TUTORIAL_REQUEST),
    ],
    "framing_bson": [
        seed(data=b"".join(BSON_DOCS)),
        seed(cuts=ONES, data=b"".join(BSON_DOCS)),
        seed(data=b"\x00\x00\x00\x00" + BSON_HELLO),  # py-bson's L=0 quirk: refused
        seed(config=[17, 0, 0, 1], data=BSON_BENCH + BSON_HELLO),  # limit 16, skip
    ],
    "framing_packet": [
        seed(data=b"".join(PACKETS)),
        seed(cuts=(1, 2, 3, 4, 5, 6, 7, 8, 9), data=b"".join(PACKETS)),
        seed(data=unhex("0aa0808080800029076e6f") + unhex("140082808003a08080800081808080808080808000")),
        seed(config=[1], data=unhex("8005 02 02 01 68656c6c6f")),  # non-canonical, strict
    ],
    "length_tokio": [
        seed(data=b"".join(SOCKTOOLS)),
        seed(cuts=(1, 1, 1, 1, 10), data=b"".join(SOCKTOOLS)),
        seed(config=[2, 1, 0, 0, 1], data=b"\x04\x00hi\x05\x00abc"),
        seed(config=[0, 0, 2, 0xfe], data=b"\xab\xcd\x00\x00\x00\x07hello"),
    ],
    "bson_document": BSON_DOCS + [
        unhex("0c000000 11 6e00 05000000 00"),  # py-bson's uint64 (0x11)
        # py-bson dicts with extended-JSON-looking keys ({"a": {"$oid": ...}},
        # {"$date": 5}, {"a": {"$date": {"$numberLong": "5"}}}, {"$oid": ...}),
        # which the bson crate's serde path reads as other types.
        unhex("300000000361002800000002246f69640019000000303030313032303330343035303630373038303930613062000000"),
        unhex("10000000102464617465000500000000"),
        unhex("2c00000003610024000000032464617465001800000002246e756d6265724c6f6e6700020000003500000000"),
        unhex("2800000002246f696400190000003030303130323033303430353036303730383039306130620000"),
    ],
    "packet_wire": [raw(data=p) for p in PACKETS]
    + [raw(config=[1], data=unhex("8005 02 02 01 68656c6c6f"))],
    "packet_connection_input": [
        # Requests, ERQ, EOF: what a cs.packetstream client sends.
        seed(data=PACKETS[0] + PACKETS[1] + ERQ_PACKET + EOF_PACKET),
        seed(cuts=(1,) * 30, data=PACKETS[0] + PACKETS[0] + PACKETS[2] + EOF_PACKET),
        # Responses to requests never sent, then a transport EOF.
        seed(data=PACKETS[3] + PACKETS[4] + PACKETS[6]),
        # A malformed marker (wire type 0 that is not EOF/ERQ).
        seed(data=unhex("03070200") + PACKETS[0]),
        # The observed shutdown: a slow request, ERQ, EOF.
        seed(cuts=(5,), data=unhex("061e0201736c6f77") + ERQ_PACKET + EOF_PACKET),
    ],
}


# The connection targets (fuzz/src/connection.rs): configurations are
# `#[derive(Arbitrary)]` structs (integers little-endian, a bool one byte,
# an Option a bool byte then the value); then operations, each a code byte
# and its fields (`who` one byte, A = 0; Inject's bytes a length byte first).
ALLOC_CFG = [
    ("max_packet_len", "u16"), ("receive_extra", "u16"), ("accept_requests", "bool"),
    ("max_pending_outbound", "u8"), ("max_inflight_inbound", "u8"), ("max_tag", "u8"),
    ("max_transmit_buffer", "u16"), ("max_channels", "u8"), ("max_remembered_tags", "u8"),
    ("copy_threshold", "u8"), ("canonical", "bool"),
]
BORROWED_CFG = [
    ("rx_len", "u16"), ("tx_len", "u16"), ("max_packet_len", "Option<u16>"),
    ("accept_requests", "bool"), ("max_tag", "u8"), ("canonical", "bool"),
]
CONNECTION_TARGETS = {
    "packet_connection": [("a", ALLOC_CFG), ("b", ALLOC_CFG)],
    "borrowed_connection": [("a", BORROWED_CFG), ("b", BORROWED_CFG), ("alloc", ALLOC_CFG)],
}
# Op::code and the fields of each operation, in order.
OPS = {
    "Submit": (0, [("who", "Who"), ("channel", "u8"), ("rq_type", "u8"), ("flags", "u8"),
                   ("len", "u8"), ("timeout", "Option<u8>")]),
    "Respond": (1, [("who", "Who"), ("pick", "u8"), ("flags", "u8"), ("len", "u8")]),
    "Reject": (2, [("who", "Who"), ("pick", "u8")]),
    "Abandon": (3, [("who", "Who"), ("pick", "u8")]),
    "EndRequests": (4, [("who", "Who")]),
    "Close": (5, [("who", "Who")]),
    "OpenChannel": (6, [("who", "Who"), ("channel", "u8")]),
    "Write": (7, [("who", "Who"), ("n", "u16")]),
    "Read": (8, [("who", "Who"), ("n", "u16")]),
    "ShutWrite": (9, [("who", "Who")]),
    "Advance": (10, [("ms", "u16")]),
    "Inject": (11, [("who", "Who"), ("bytes", "bytes")]),
    "Lose": (12, [("who", "Who"), ("read", "u16"), ("both", "bool")]),
    "Craft": (13, [("who", "Who"), ("channel", "u8"), ("tag", "u8"), ("big_tag", "bool"),
                   ("rq_type_wire", "Option<u8>"), ("pflags", "u8"), ("len", "u8")]),
    "Replay": (14, [("who", "Who"), ("from", "u16"), ("len", "u16")]),
    "Flood": (15, [("who", "Who"), ("channel", "u8"), ("start", "u8"), ("step", "u8"),
                   ("count", "u8"), ("requests", "bool")]),
    "AnswerAll": (16, [("who", "Who"), ("ok", "bool")]),
}
# The operations each target knows (OpSet::CODES).
KNOWN_OPS = {"packet_connection": range(13), "borrowed_connection": range(17)}


def parse_debug(text):
    """A value in Rust's Debug notation: structs as (name, {field: value}),
    lists, integers, true/false, None/Some(x), and bare names (A, B)."""
    tokens = re.findall(r"[A-Za-z_][A-Za-z0-9_]*|-?\d+|[{}\[\](),:]", text)
    pos = 0

    def take(expected=None):
        nonlocal pos
        tok = tokens[pos]
        if expected is not None and tok != expected:
            raise ValueError(f"expected {expected!r}, got {tok!r} in {text!r}")
        pos += 1
        return tok

    def value():
        tok = take()
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
                if tokens[pos] == ",":
                    take()
            take("]")
            return items
        if re.fullmatch(r"-?\d+", tok):
            return int(tok)
        if tok in ("true", "false"):
            return tok == "true"
        if tok == "None":
            return None
        if pos < len(tokens) and tokens[pos] == "(":
            take("(")
            inner = value()
            if tokens[pos] == ",":
                take()
            take(")")
            if tok != "Some":
                raise ValueError(f"tuple {tok} in {text!r}")
            return ("Some", inner)
        if pos < len(tokens) and tokens[pos] == "{":
            take("{")
            fields = {}
            while tokens[pos] != "}":
                name = take()
                take(":")
                fields[name] = value()
                if tokens[pos] == ",":
                    take()
            take("}")
            return (tok, fields)
        return tok

    v = value()
    if pos != len(tokens):
        raise ValueError(f"trailing tokens in {text!r}")
    return v


def encode_field(kind, v):
    if kind == "u8":
        return bytes([v])
    if kind == "u16":
        return v.to_bytes(2, "little")
    if kind == "bool":
        return bytes([1 if v else 0])
    if kind == "Who":
        return bytes([{"A": 0, "B": 1}[v]])
    if kind.startswith("Option<"):
        if v is None:
            return b"\0"
        assert v[0] == "Some", v
        return b"\1" + encode_field(kind[7:-1], v[1])
    if kind == "bytes":
        assert len(v) <= 255
        return bytes([len(v)]) + bytes(v)
    raise ValueError(kind)


def encode_struct(schema, fields):
    assert set(fields) == {n for n, _ in schema}, (schema, fields)
    return b"".join(encode_field(k, fields[n]) for n, k in schema)


def load_scenarios():
    """{(target, name): {"cfgs": {field: (Type, fields)}, "ops": [(Op, fields)]}}"""
    scenarios = {}
    current = None
    with open(os.path.join(HERE, "connection_scenarios.txt")) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.fullmatch(r"\[(\w+)/([\w-]+)\]", line)
            if m:
                current = {"cfgs": {}, "ops": []}
                scenarios[(m.group(1), m.group(2))] = current
                continue
            m = re.fullmatch(r"(\w+): (\w+ \{.*\})", line)
            if m:
                current["cfgs"][m.group(1)] = parse_debug(m.group(2))
            else:
                current["ops"].append(parse_debug(line))
    return scenarios


def encode_scenario(target, scenario):
    out = b""
    for field, schema in CONNECTION_TARGETS[target]:
        out += encode_struct(schema, scenario["cfgs"][field][1])
    for name, fields in scenario["ops"]:
        code, schema = OPS[name]
        assert code in KNOWN_OPS[target], (target, name)
        out += bytes([code]) + encode_struct(schema, fields)
    return out


def check_scenarios(scenarios):
    """Decodes every written connection seed with the built target and
    compares it with its scenario (struct names aside)."""
    def plain(v):
        if isinstance(v, tuple) and v[0] != "Some":
            return {k: plain(x) for k, x in v[1].items()}
        if isinstance(v, tuple):
            return ("Some", plain(v[1]))
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    fuzz_dir = os.path.dirname(HERE)
    failed = 0
    for (target, name), scenario in scenarios.items():
        path = os.path.join(HERE, target, name)
        out = subprocess.run(
            ["cargo", "+nightly", "fuzz", "fmt", "--fuzz-dir", fuzz_dir, target, path],
            capture_output=True, text=True, check=True)
        out = out.stdout + out.stderr  # cargo-fuzz prints the value on stderr
        decoded = plain(parse_debug(out[out.index("Scenario"):]))
        want = {k: plain(v) for k, v in scenario["cfgs"].items()}
        want["ops"] = [plain(op) for op in scenario["ops"]]
        ok = decoded == want
        failed += not ok
        print(f"{target}/{name}: {'decodes to its scenario' if ok else 'DIFFERS'}")
    if failed:
        sys.exit(f"{failed} connection seeds decode to other scenarios")


def main():
    for target, seeds in SEEDS.items():
        d = os.path.join(HERE, target)
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            if name.startswith("wire-"):
                os.remove(os.path.join(d, name))
        for s in seeds:
            name = "wire-" + hashlib.sha1(s).hexdigest()[:16]
            with open(os.path.join(d, name), "wb") as f:
                f.write(s)
        print(f"{target}: {len(seeds)} seeds")
    scenarios = load_scenarios()
    for target in CONNECTION_TARGETS:
        d = os.path.join(HERE, target)
        os.makedirs(d, exist_ok=True)
        for name in os.listdir(d):
            if name.startswith("found-"):
                os.remove(os.path.join(d, name))
        n = 0
        for (t, name), scenario in scenarios.items():
            if t == target:
                with open(os.path.join(d, name), "wb") as f:
                    f.write(encode_scenario(target, scenario))
                n += 1
        print(f"{target}: {n} scenario seeds")
    if "--check" in sys.argv[1:]:
        check_scenarios(scenarios)


if __name__ == "__main__":
    main()
