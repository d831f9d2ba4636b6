#!/usr/bin/env python3
"""Writes the checked-in seed corpus of the fuzz targets (fuzz/seeds/<target>/).

Every seed is a golden vector of /work/shared/WIRE.md (produced by the real
Python originals) in the input layout of its target (see fuzz/src/lib.rs):

    config[16] n_cuts:u8 cut[n_cuts] data

An all-zero configuration is each framing's plain configuration. Run it from
anywhere; it rewrites the seed directories it owns (not packet_connection,
whose seeds are minimised fuzzer finds: see fuzz/README.md).
"""
import hashlib
import json
import os

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


if __name__ == "__main__":
    main()
