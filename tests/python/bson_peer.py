"""py-bson 0.5.10 peer for framewire's interop tests.

Uses the real `bson` package's socket extension (`patch_socket`, `sendobj`,
`recvobj`), exactly as an application of the original would.

    bson_peer.py server          listen on 127.0.0.1:0, print "PORT <n>", echo
                                 every received object back with sendobj until
                                 the peer closes; print a JSON summary line.
    bson_peer.py client PORT     connect, send the catalogue of every type,
                                 a 70 KB document and 10,000 small documents
                                 back to back; check the echoed values; exit 1
                                 on any mismatch.
"""
import datetime
import json
import socket
import sys
import threading
import uuid

import bson
from bson import network

bson.patch_socket()


def catalogue():
    """One document per py-bson type mapping (WIRE.md section 1)."""
    return [
        {"hello": "world"},
        {"t": True, "f": False},
        {"i32": 42, "i32_min": -(2**31), "i32_max": 2**31 - 1},
        {"i64": 2**40, "i64_min": -(2**63), "i64_max": 2**63 - 1, "i64_neg": -(2**31) - 1},
        {"u64": 2**64 - 1, "u64_lo": 2**63},
        {"float": 3.25, "neg": -1e300, "tiny": 5e-324, "zero": 0.0},
        {"str": "hello", "utf8": "h\u00e9llo \U0001f430", "empty": "", "": "empty key"},
        {"bytes": b"\x00\x01\xfe\xff", "empty_bytes": b""},
        {"uuid": uuid.UUID("12345678-1234-5678-1234-567812345678")},
        {"dt": datetime.datetime(2024, 6, 30, 12, 0, 0, 123000, tzinfo=datetime.timezone.utc)},
        {"none": None},
        {"nested": {"a": {"b": [1, "two", 3.5, None, {"c": True}]}}, "empty_doc": {}},
        {"list": [1, 2, 3], "tuple": (4, "five"), "empty_list": []},
    ]


def expected_echo(doc):
    """What a value-preserving echo gives back, as py-bson decodes it."""
    out = {}
    for k, v in doc.items():
        if isinstance(v, tuple):
            v = list(v)
        if isinstance(v, dict):
            v = expected_echo(v)
        if isinstance(v, list):
            v = [expected_echo(x) if isinstance(x, dict) else x for x in v]
        out[k] = v
    return out


def big_document():
    return {"kind": "big", "blob": b"\xab" * 70_000, "text": "x" * 100}


def small(seq):
    return {"seq": seq, "pad": b"x" * 26}


def server():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print("PORT", listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    count = 0
    while True:
        obj = conn.recvobj()
        if obj is None:
            break
        conn.sendobj(obj)
        count += 1
    conn.close()
    print(json.dumps({"echoed": count}), flush=True)


def client(port):
    conn = socket.create_connection(("127.0.0.1", port))
    sent = catalogue() + [big_document()] + [small(i) for i in range(10_000)]

    def sender():
        for doc in sent:
            conn.sendobj(doc)
        conn.shutdown(socket.SHUT_WR)

    t = threading.Thread(target=sender)
    t.start()
    mismatches = 0
    received = 0
    for doc in sent:
        got = conn.recvobj()
        if got is None:
            print("early close after", received, file=sys.stderr)
            sys.exit(1)
        received += 1
        want = expected_echo(doc)
        if got != want:
            mismatches += 1
            if mismatches < 5:
                print("MISMATCH want", repr(want)[:300], "got", repr(got)[:300], file=sys.stderr)
    t.join()
    tail = conn.recvobj()
    conn.close()
    print(json.dumps({"received": received, "mismatches": mismatches, "clean_close": tail is None}), flush=True)
    sys.exit(0 if mismatches == 0 and tail is None else 1)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server()
    elif sys.argv[1] == "client":
        client(int(sys.argv[2]))
    else:
        sys.exit("usage: bson_peer.py server | client PORT")
