"""py-bson 0.5.10 side of framewire's BSON benchmark (tests/benches/ratios.rs).

Measures the original's `sendobj`/`recvobj` between two Python sockets over
loopback TCP, with the WIRE.md 50-byte benchmark document
`{"seq": i, "pad": b"x" * 26}`, and prints one JSON line with its rate.

    pybson_bench.py MODE N [--window W] [--client-cpu C] [--server-cpu S]

MODE is `rtt` (send one object, wait for its echo, N times) or `pipelined`
(send W objects, then receive their W echoes, until N have gone). The echo
server is a forked process (no GIL shared with the client) that answers every
object with `sendobj(recvobj())`, as an application of the original would.
Per object, `sendobj` is `dumps` + one `sendall`, and `recvobj` two `recv`
calls (the 4-byte length, then the rest) + `loads`: three syscalls per object
on each side.

Two more modes, for the bound analysis only (they are not py-bson's
`sendobj`/`recvobj`, so no target is measured against them):

* `batched`: py-bson's `dumps`/`loads` with the batching done by hand, like
  framewire's `queue`+`flush`: each window is one `sendall` of the W
  documents joined; both sides read with `recv(65536)` into a buffer and cut
  documents out of it; the echo server answers everything one read brought
  with one `sendall`.
* `codec`: no sockets: `loads(dumps(obj))` N times in one process (one
  encode and one decode; an echoed object costs two of each).
Each process pins itself to its CPU with `os.sched_setaffinity` when one is
given, so the Rust side can be measured with the same placement. Both sockets
have TCP_NODELAY, as the Rust side does, so Nagle's algorithm does not decide
the pipelined rate.

Output: {"impl": "py-bson", "mode": ..., "n": ..., "window": ..., "secs": ...,
"rate": objects per second, "rtt_us": mean round trip (rtt mode),
"cpu_secs": CPU time of client and server together during the timed part
(from /proc/<pid>/schedstat, both single-threaded; null if unavailable),
"cpu_rate": objects per CPU-second, "client_cpu": ..., "server_cpu": ...}
"""
import argparse
import json
import os
import socket
import sys
import time
from struct import unpack_from

import bson

bson.patch_socket()

WARMUP = 200


def small(seq):
    return {"seq": seq, "pad": b"x" * 26}


def cpu_ns(pid):
    """CPU time of process `pid`'s main thread so far, in ns, or None."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_sum(pids):
    values = [cpu_ns(p) for p in pids]
    return None if None in values else sum(values)


def with_cpu(out, before, after):
    """Adds cpu_secs and cpu_rate to `out` (null when /proc has no schedstat)."""
    if before is None or after is None or after <= before:
        out.update(cpu_secs=None, cpu_rate=None)
    else:
        out.update(cpu_secs=(after - before) / 1e9, cpu_rate=out["n"] / ((after - before) / 1e9))
    return out


def pin(cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def serve(listener, cpu):
    pin(cpu)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.close()
    while True:
        obj = conn.recvobj()
        if obj is None:
            break
        conn.sendobj(obj)
    conn.close()


def take_docs(buf):
    """Cut every complete document off the front of `buf` (a bytearray)."""
    docs, pos = [], 0
    while len(buf) - pos >= 4:
        size = unpack_from("<i", buf, pos)[0]
        if len(buf) - pos < size:
            break
        docs.append(bytes(buf[pos : pos + size]))
        pos += size
    del buf[:pos]
    return docs


def serve_batched(listener, cpu):
    pin(cpu)
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    listener.close()
    buf = bytearray()
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
        out = [bson.dumps(bson.loads(doc)) for doc in take_docs(buf)]
        if out:
            conn.sendall(b"".join(out))
    conn.close()


def batched(conn, start, n, window):
    seq = start
    end = start + n
    buf = bytearray()
    while seq < end:
        batch = min(window, end - seq)
        conn.sendall(b"".join(bson.dumps(small(seq + k)) for k in range(batch)))
        got = 0
        while got < batch:
            chunk = conn.recv(65536)
            if not chunk:
                raise SystemExit("echo server closed early")
            buf += chunk
            for doc in take_docs(buf):
                back = bson.loads(doc)
                if back["seq"] != seq + got:
                    raise SystemExit(f"bad echo for seq {seq + got}: {back!r}")
                got += 1
        seq += batch


def codec(n):
    t0 = time.perf_counter()
    for seq in range(n):
        back = bson.loads(bson.dumps(small(seq)))
        if back["seq"] != seq:
            raise SystemExit(f"bad codec round trip for {seq}")
    return time.perf_counter() - t0


def rtt(conn, start, n):
    for seq in range(start, start + n):
        conn.sendobj(small(seq))
        back = conn.recvobj()
        if back is None or back["seq"] != seq:
            raise SystemExit(f"bad echo for seq {seq}: {back!r}")


def pipelined(conn, start, n, window):
    seq = start
    end = start + n
    while seq < end:
        batch = min(window, end - seq)
        for k in range(batch):
            conn.sendobj(small(seq + k))
        for k in range(batch):
            back = conn.recvobj()
            if back is None or back["seq"] != seq + k:
                raise SystemExit(f"bad echo for seq {seq + k}: {back!r}")
        seq += batch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["rtt", "pipelined", "batched", "codec"])
    ap.add_argument("n", type=int)
    ap.add_argument("--window", type=int, default=64)
    ap.add_argument("--client-cpu", type=int)
    ap.add_argument("--server-cpu", type=int)
    args = ap.parse_args()

    doc = bson.dumps(small(0))
    if len(doc) != 50:
        raise SystemExit(f"benchmark document is {len(doc)} bytes, WIRE.md says 50")

    if args.mode == "codec":
        pin(args.client_cpu)
        codec(WARMUP)
        before = cpu_sum([os.getpid()])
        secs = codec(args.n)
        after = cpu_sum([os.getpid()])
        out = {"impl": "py-bson", "mode": "codec", "n": args.n, "window": 1, "secs": secs,
               "rate": args.n / secs, "client_cpu": args.client_cpu, "server_cpu": None}
        print(json.dumps(with_cpu(out, before, after)), flush=True)
        return 0

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    pid = os.fork()
    if pid == 0:
        try:
            (serve_batched if args.mode == "batched" else serve)(listener, args.server_cpu)
        finally:
            os._exit(0)
    port = listener.getsockname()[1]
    listener.close()
    pin(args.client_cpu)
    conn = socket.create_connection(("127.0.0.1", port))
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    if args.mode == "rtt":
        run = rtt
    elif args.mode == "batched":
        run = lambda c, s, n: batched(c, s, n, args.window)  # noqa: E731
    else:
        run = lambda c, s, n: pipelined(c, s, n, args.window)  # noqa: E731
    run(conn, 0, WARMUP)
    cpu_before = cpu_sum([os.getpid(), pid])
    t0 = time.perf_counter()
    run(conn, WARMUP, args.n)
    secs = time.perf_counter() - t0
    cpu_after = cpu_sum([os.getpid(), pid])

    conn.close()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit(f"echo server exited with status {status}")
    out = {
        "impl": "py-bson",
        "mode": args.mode,
        "n": args.n,
        "window": 1 if args.mode == "rtt" else args.window,
        "secs": secs,
        "rate": args.n / secs,
        "client_cpu": args.client_cpu,
        "server_cpu": args.server_cpu,
    }
    if args.mode == "rtt":
        out["rtt_us"] = secs / args.n * 1e6
    print(json.dumps(with_cpu(out, cpu_before, cpu_after)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
