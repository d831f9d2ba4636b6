"""cs.packetstream 20240630 side of framewire's loopback packet-stream bench
(tests/benches/loopback.rs).

Measures the real `cs.packetstream.PacketConnection` over one loopback TCP
connection, the way the Rust contenders of the bench are measured: 16-byte
requests of user rq_type 0, echoed by a request handler that returns the
payload. The echo server is a forked process (no GIL shared with the
client), so client and server each have their own interpreter; each runs the
original's own threads (receive loop, send loop, its `Later` handler pool).

    packetstream_bench.py MODE [--grace S|default] [--window W] [--secs S]
                               [--n N] [--client-cpu C] [--server-cpu S]
                               [--rtts] [--timeout S]

MODE `pipelined`: the client submits a window of W requests
(`conn.submit(0, 0, payload)`, W `Result`s), then waits for all W answers,
repeatedly, for `--secs` seconds after a tenth of that as warm-up; rate =
answered requests per second.

MODE `rtt`: synchronous requests (`conn(0, payload)`, submit and wait), each
timed; N round trips after N/10 untimed ones (at most `--secs`/10 seconds of
them), stopping early once `--secs` seconds of timed round trips have passed
(but after at least 20) (with the default grace a round
trip is about 20 ms). Reports the median and p99.

--grace: `packet_grace` in seconds for BOTH connections, or "default" (the
original's DEFAULT_PACKET_GRACE, 0.01 s: the send loop sleeps that long when
its queue runs dry, before flushing).

Every answer is checked (ok bit, flags 0, payload). Each process pins itself
(`os.sched_setaffinity`, inherited by the original's threads, which start
later) when a CPU is given. Both sockets have TCP_NODELAY, as the Rust side.

stdout carries only the final JSON line:
{"impl": "cs.packetstream", "mode": ..., "grace": seconds, "window": W,
 "secs": timed seconds, "requests": n, "rate": requests per second,
 "median_us": ..., "p99_us": ... (rtt), "rtts_us": [sorted, with --rtts],
 "client_cpu": ..., "server_cpu": ...}
The real stdout is dup'ed to a private fd and fd 1 is pointed at stderr
before cs.* is imported, because cs.progress/cs.upd print status lines on
stdout. On a watchdog expiry (--timeout, default 120 s) it prints
{"ok": false, "timeout": true} and exits 3.
"""
import os
import sys

# --- keep stdout clean: our own output goes to a private dup of fd 1 ---------
_OUT_FD = os.dup(1)
os.dup2(2, 1)
_OUT = os.fdopen(_OUT_FD, "w", buffering=1)

import argparse  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from cs.packetstream import DEFAULT_PACKET_GRACE, PacketConnection  # noqa: E402

PAYLOAD = b"0123456789abcdef"
WANT = (True, 0, PAYLOAD)


def pin(cpu):
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def parse_grace(text):
    if text == "default":
        return None
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError("grace must be >= 0")
    return value


def watchdog(seconds, done):
    def bark():
        if done.wait(seconds):
            return
        print(f"packetstream_bench: watchdog: not finished within {seconds} s", file=sys.stderr, flush=True)
        _OUT.write(json.dumps({"impl": "cs.packetstream", "ok": False, "timeout": True}) + "\n")
        _OUT.flush()
        os._exit(3)

    threading.Thread(target=bark, name="watchdog", daemon=True).start()


def echo(rq_type, flags, payload):
    """The request handler: the payload back, flags 0."""
    if rq_type != 0:
        raise ValueError(f"unexpected rq_type {rq_type}")
    return payload


def serve(listener, grace, cpu):
    """The forked echo server: one connection until the client's EOF."""
    pin(cpu)
    sock, _ = listener.accept()
    listener.close()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
    conn = PacketConnection((rfile, wfile), "bench-server", request_handler=echo, packet_grace=grace)
    with conn:
        conn.join_recv()
    rfile.close()
    wfile.close()
    sock.close()


def check(got):
    if tuple(got) != WANT:
        raise SystemExit(f"bad echo: {tuple(got)!r}")


def pipelined(conn, secs, window):
    def one_window():
        results = [conn.submit(0, 0, PAYLOAD) for _ in range(window)]
        for R in results:
            check(R())

    warm = time.perf_counter()
    while time.perf_counter() - warm < secs / 10:
        one_window()
    done = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < secs:
        one_window()
        done += window
    return {"secs": time.perf_counter() - t0, "requests": done}


def rtt(conn, secs, n, all_rtts):
    warm = time.perf_counter()
    for _ in range(max(n // 10, 1)):
        check(conn(0, PAYLOAD))
        if time.perf_counter() - warm >= secs / 10:
            break
    rtts = []
    t0 = time.perf_counter()
    while len(rtts) < n and (len(rtts) < 20 or time.perf_counter() - t0 < secs):
        t = time.perf_counter()
        got = conn(0, PAYLOAD)
        rtts.append(time.perf_counter() - t)
        check(got)
    total = time.perf_counter() - t0
    rtts.sort()

    def pct(p):
        return rtts[round((len(rtts) - 1) * p)] * 1e6

    out = {"secs": total, "requests": len(rtts), "median_us": pct(0.5), "p99_us": pct(0.99)}
    if all_rtts:
        out["rtts_us"] = [round(r * 1e6, 2) for r in rtts]
    return out


def main():
    ap = argparse.ArgumentParser(prog="packetstream_bench.py", description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["pipelined", "rtt"])
    ap.add_argument("--grace", type=parse_grace, default=0.0, help='packet_grace seconds or "default"')
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--secs", type=float, default=0.3)
    ap.add_argument("--n", type=int, default=2000, help="round trips (rtt)")
    ap.add_argument("--rtts", action="store_true", help="rtt: also print every round trip (rtts_us, sorted)")
    ap.add_argument("--client-cpu", type=int)
    ap.add_argument("--server-cpu", type=int)
    ap.add_argument("--timeout", type=float, default=120.0, help="watchdog seconds (exit 3)")
    args = ap.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    # Fork before any thread exists in this process.
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            serve(listener, args.grace, args.server_cpu)
        except BaseException as e:  # report, never fall back into the client's code
            print(f"packetstream_bench: server: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    listener.close()
    done = threading.Event()
    watchdog(args.timeout, done)
    pin(args.client_cpu)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rfile, wfile = sock.makefile("rb"), sock.makefile("wb")
    conn = PacketConnection((rfile, wfile), "bench-client", packet_grace=args.grace)
    with conn:
        if args.mode == "pipelined":
            out = pipelined(conn, args.secs, args.window)
        else:
            out = rtt(conn, args.secs, args.n, args.rtts)
    # leaving `with conn:` sent ERQ and EOF and waited for the server's EOF
    rfile.close()
    wfile.close()
    sock.close()
    _, status = os.waitpid(pid, 0)
    done.set()
    if status != 0:
        raise SystemExit(f"echo server exited with status {status}")
    out.update(
        impl="cs.packetstream",
        ok=True,
        mode=args.mode,
        grace=DEFAULT_PACKET_GRACE if args.grace is None else args.grace,
        window=args.window if args.mode == "pipelined" else 1,
        rate=out["requests"] / out["secs"],
        client_cpu=args.client_cpu,
        server_cpu=args.server_cpu,
    )
    _OUT.write(json.dumps(out) + "\n")
    _OUT.flush()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stderr.flush()
    # Do not let a stuck worker thread of the original turn a finished run
    # into a hang.
    os._exit(code)
