"""A Python 3 peer speaking socktools 0.2's wire format, written from WIRE.md.

socktools itself is Python 2 only (it cannot run here), so this peer encodes
exactly as its `TCPSock` + `JSONParseMixin` do:

    frame := struct.pack('>I', len(body)) + body
    body  := json.dumps([msg_type, msg_data])        (Python defaults)

and its line mode (`TCPLinemodeMixin`): one message per `readline()`, the
`\\n` included, no prefix. Unlike the original it reads exactly (the HOWTO's
point), so large messages work.

    socktools_peer.py server json|line     echo server; prints "PORT <n>".
        json: every message is decoded and re-encoded with json.dumps, so the
              reply is Python's own encoding of the same value.
    socktools_peer.py client json|line PORT
        json: sends MESSAGES (below), expects each echoed value back; prints
              the raw bodies it received as hex JSON lines for the caller.
"""
import json
import socket
import struct
import sys

MESSAGES = [
    [1, {"text": "hi", "n": [1, 2.5, None]}],
    ["chat", "h\u00e9"],
    [2, {"quote": "say \"hi\"\\now", "ctrl": "\t\n\r\x01", "emoji": "\U0001f430"}],
    [3, [1.0, 1e16, 1e-05, 0.1, -0.0, 123456789.125, 2**53 + 1, -(2**63)]],
    [4, None],
    [5, {"b": True, "z": False, "nested": {"deep": [[], {}]}}],
    [6, "x" * 100_000],
]
LINES = [b"hello\n", b"second line\r\n", b"\n", b"caf\xc3\xa9\n", b"y" * 50_000 + b"\n"]


def read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None if not buf else bytes(buf)
        buf += chunk
    return bytes(buf)


def read_frame(sock):
    head = read_exact(sock, 4)
    if head is None:
        return None
    if len(head) < 4:
        raise EOFError("close inside header")
    (n,) = struct.unpack(">I", head)
    body = read_exact(sock, n) if n else b""
    if body is None or len(body) < n:
        raise EOFError("close inside body")
    return body


def encode(msg_type, msg_data):
    body = json.dumps([msg_type, msg_data]).encode("ascii")
    return struct.pack(">I", len(body)) + body


def serve(mode):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    print("PORT", listener.getsockname()[1], flush=True)
    conn, _ = listener.accept()
    count = 0
    if mode == "json":
        while True:
            body = read_frame(conn)
            if body is None:
                break
            msg_type, msg_data = json.loads(body)
            conn.sendall(encode(msg_type, msg_data))
            count += 1
    else:
        f = conn.makefile("rb")
        while True:
            line = f.readline()
            if not line:
                break
            conn.sendall(line)
            count += 1
    conn.close()
    print(json.dumps({"echoed": count}), flush=True)


def client(mode, port):
    conn = socket.create_connection(("127.0.0.1", port))
    ok = True
    if mode == "json":
        for msg_type, msg_data in MESSAGES:
            frame = encode(msg_type, msg_data)
            conn.sendall(frame)
            body = read_frame(conn)
            if body != frame[4:]:
                ok = False
                print("MISMATCH", frame[4:][:200], body[:200] if body else body, file=sys.stderr)
    else:
        for line in LINES:
            conn.sendall(line)
        f = conn.makefile("rb")
        for line in LINES:
            got = f.readline()
            if got != line:
                ok = False
                print("MISMATCH", line[:80], got[:80], file=sys.stderr)
    conn.shutdown(socket.SHUT_WR)
    tail = conn.recv(1)
    conn.close()
    print(json.dumps({"ok": ok, "clean_close": tail == b""}), flush=True)
    sys.exit(0 if ok and tail == b"" else 1)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve(sys.argv[2])
    elif sys.argv[1] == "client":
        client(sys.argv[2], int(sys.argv[3]))
    else:
        sys.exit("usage: socktools_peer.py server json|line | client json|line PORT")
