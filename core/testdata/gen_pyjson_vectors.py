#!/usr/bin/env python3
"""Regenerate pyjson_vectors.jsonl: Python's json.dumps output for many values.

    python3 core/testdata/gen_pyjson_vectors.py > core/testdata/pyjson_vectors.jsonl

One JSON object per line: {"name", "value", "ascii", "unicode"} where
"ascii" is json.dumps(v) and "unicode" json.dumps(v, ensure_ascii=False), both
as hex of the UTF-8 bytes, and "value" describes v exactly in a tagged form a
Rust test can rebuild without going through a float or string parser:
  {"n": 0}            None
  {"b": true}         bool
  {"i": "123"}        int (decimal text, any size)
  {"f": "3ff0..."}    float (IEEE-754 bits, 16 hex digits, big-endian)
  {"s": "68c3a9"}     str (UTF-8 bytes as hex)
  {"l": [v, ...]}     list
  {"o": [[key_hex, v], ...]}   dict with str keys, insertion order
"""
import json
import math
import random
import struct
import sys

rng = random.Random(20240630)


def tag(v):
    if v is None:
        return {"n": 0}
    if isinstance(v, bool):
        return {"b": v}
    if isinstance(v, int):
        return {"i": str(v)}
    if isinstance(v, float):
        return {"f": struct.pack(">d", v).hex()}
    if isinstance(v, str):
        return {"s": v.encode("utf-8").hex()}
    if isinstance(v, (list, tuple)):
        return {"l": [tag(x) for x in v]}
    if isinstance(v, dict):
        return {"o": [[k.encode("utf-8").hex(), tag(x)] for k, x in v.items()]}
    raise TypeError(v)


cases = []


def add(name, v):
    cases.append((name, v))


# --- the WIRE.md goldens and message shapes
add("wire_chat_obj", [1, {"text": "hi", "n": [1, 2.5, None]}])
add("wire_chat_str", ["chat", "h\u00e9"])
add("msg_null_data", [0, None])
add("msg_empty_obj", [7, {}])
add("msg_empty_list", ["t", []])
add("msg_nested", ["deep", {"a": {"b": {"c": [[], [{}], [1, [2, [3]]]]}}, "z": True, "y": False}])
add("msg_key_order", [2, {"zeta": 1, "alpha": 2, "mid": 3, "": 4}])

# --- strings
add("str_all_ascii_controls", "".join(chr(c) for c in range(0, 0x20)))
add("str_printable_ascii", "".join(chr(c) for c in range(0x20, 0x7f)))
add("str_del_and_latin1", "".join(chr(c) for c in range(0x7f, 0x100)))
add("str_quotes_backslashes", 'say "hi" \\ \\\\ \\" /slash/ \'single\'')
add("str_bmp_edges", "\u0100\u07ff\u0800\ud7ff\ue000\uffef\ufeff\ufffd\uffff")
add("str_astral", "\U00010000\U0001f430\U0001f600\U0010ffff")
add("str_emoji_mix", "caf\u00e9 \u2603 \U0001f44d\U0001f3fd na\u00efve \u4e2d\u6587")
add("str_empty", "")
add("str_line_separators", "a\u2028b\u2029c\u0085d")
for i in range(300):
    n = rng.randrange(0, 12)
    chars = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            c = rng.randrange(0, 0x80)
        elif r < 0.5:
            c = rng.randrange(0x80, 0x800)
        elif r < 0.8:
            c = rng.randrange(0x800, 0x10000)
            if 0xD800 <= c < 0xE000:
                c = 0x41
        else:
            c = rng.randrange(0x10000, 0x110000)
        chars.append(chr(c))
    add("str_random_%d" % i, "".join(chars))

# --- ints
for v in [0, 1, -1, 42, 2**31 - 1, -2**31, 2**32, 2**53 - 1, 2**53, 2**53 + 1, -2**53 - 1,
          2**63 - 1, -2**63, 2**63, 2**64 - 1, 2**64, 2**100, -2**100, 2**127 - 1, -2**127]:
    add("int_%d" % v, v)

# --- floats
specials = [0.0, -0.0, 1.0, -1.0, 2.5, 0.1, 0.2, 0.1 + 0.2, 1 / 3, 2 / 3, 100.0, 1e15, 1e16, 1e17,
            9999999999999998.0, 1e16 + 2, 12345678901234567890.0, 1e-4, 1e-5, 0.00012345, 1.5e-5,
            1e22, 1e23, 1e100, 1e-100, 1.7976931348623157e308, 2.2250738585072014e-308,
            2.225073858507201e-308, 5e-324, 1e-323, 4.9406564584124654e-324, math.pi, math.e,
            2.0**53, 2.0**53 + 2, 2.0**63, 2.0**64, 123456.789, 0.5, 0.25, 1e300 * 10, 3e-310]
for i, v in enumerate(specials):
    add("float_special_%d" % i, v)
    add("float_special_neg_%d" % i, -v)
for k in range(-325, 310):
    add("float_pow10_%d" % k, float("1e%d" % k))
    add("float_7pow10_%d" % k, float("7.25e%d" % k))
for i in range(1500):
    bits = rng.getrandbits(64)
    v = struct.unpack(">d", bits.to_bytes(8, "big"))[0]
    if math.isnan(v) or math.isinf(v):
        continue
    add("float_bits_%d" % i, v)
for i in range(500):
    digits = rng.randrange(1, 18)
    mant = rng.randrange(10 ** (digits - 1), 10 ** digits)
    v = float("%de%d" % (mant, rng.randrange(-30, 30)))
    add("float_decimal_%d" % i, v)
add("float_nan", float("nan"))
add("float_inf", float("inf"))
add("float_neg_inf", float("-inf"))
add("float_list_nonfinite", [float("nan"), float("inf"), -float("inf"), 1.0])

# --- structures
add("obj_unicode_keys", {"cl\u00e9": 1, "\U0001f430": [1.5, "x"], "a\"b": None, "tab\t": {}})
add("list_mixed", [None, True, False, 0, -0.0, 1.0, "s", [], {}, [[]], {"k": [None]}])
add("obj_many", {("k%d" % i): i * 1.5 for i in range(30)})


def main(out):
    seen = set()
    for name, v in cases:
        assert name not in seen, name
        seen.add(name)
        line = {
            "name": name,
            "value": tag(v),
            "ascii": json.dumps(v).encode("utf-8").hex(),
            "unicode": json.dumps(v, ensure_ascii=False).encode("utf-8").hex(),
        }
        out.write(json.dumps(line, sort_keys=True) + "\n")


main(sys.stdout)
