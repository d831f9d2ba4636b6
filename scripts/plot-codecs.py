#!/usr/bin/env python3
"""Decode throughput plot from the codecs bench's CSV, as a hand-written SVG.

    cargo bench -p framewire-tests --bench codecs      # writes target/codecs.csv
    python3 scripts/plot-codecs.py [CSV] [SVG]         # default: target/codecs.csv -> docs/decode-throughput.svg

One panel per framing (small multiples, the length framing first): decode
throughput in GB/s (10^9 bytes of wire input per second, log scale) against
the payload size (16 B .. 64 KiB, log scale), one line each for framewire's
FramedStream (`Bytes` frames, and frames lent as slices), tokio-util's
equivalent codec where there is one, and a memcpy of the same bytes (the
physical limit). No dependencies beyond the standard library.
"""

import csv
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (CSV group, title, [(tokio-util contender, short name, dash)], bare splitter or None)
PANELS = [
    ("length", "LengthPrefixed (u32 BE)",
     [("tokio-util LengthDelimitedCodec", "LengthDelimitedCodec", "")],
     "bare length decoder (slices)"),
    ("lines", "Delimited (\\n lines)",
     [("tokio-util AnyDelimiterCodec (Bytes)", "AnyDelimiterCodec", ""),
      ("tokio-util LinesCodec (String)", "LinesCodec", "6,4")],
     "bare memchr splitter (slices)"),
    ("bson", "BsonDocument",
     [("tokio-util LengthDelimitedCodec (BSON: u32 LE, adj 0, skip 0)", "LengthDelimitedCodec u32 LE", "")],
     None),
    ("fixed", "Fixed", [], None),
    ("json_header", "JsonHeader", [], None),
    ("packet", "PacketFraming (cs.packetstream)", [], None),
]

FW_BYTES = "framewire FramedStream poll_event (Bytes)"
FW_LEND = "framewire FramedStream drain_events_with (&[u8])"
MEMCPY = "memcpy of each chunk (reference)"

BLUE, RED, GREEN, GREY = "#1f5fbf", "#d03a2a", "#2e9e44", "#777777"

# Legend: (label, colour, dash)
LEGEND = [
    ("framewire FramedStream, Bytes frames (poll_event)", BLUE, ""),
    ("framewire FramedStream, frames lent as &[u8] (drain_events_with)", BLUE, "6,4"),
    ("tokio-util equivalent (named in the panel; dashed: LinesCodec)", RED, ""),
    ("bare hand-written splitter (length: slices; lines: memchr)", GREEN, "1,3"),
    ("memcpy of the same bytes (physical limit)", GREY, "2,3"),
]

W, H = 960, 660
COLS, ROWS = 3, 2
LEFT, TOP, RIGHT, BOTTOM = 60, 70, 20, 130
GAP_X, GAP_Y = 50, 70


def load(path):
    data = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["section"] != "decode" or row["metric"] != "gb_per_s":
                continue
            key = (row["group"], row["contender"])
            data.setdefault(key, {})[int(row["size_bytes"])] = float(row["value"])
    return data


def esc(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} B"


def main():
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "codecs.csv"
    dst = Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "decode-throughput.svg"
    data = load(src)
    if not data:
        sys.exit(f"{src}: no decode figures (run the codecs bench with its decode section)")

    sizes = sorted({s for series in data.values() for s in series})
    values = [v for series in data.values() for v in series.values() if v > 0]
    y_lo = 10 ** math.floor(math.log10(min(values)))
    y_hi = 10 ** math.ceil(math.log10(max(values)))
    x_lo, x_hi = math.log2(sizes[0]), math.log2(sizes[-1])

    pw = (W - LEFT - RIGHT - GAP_X * (COLS - 1)) / COLS
    ph = (H - TOP - BOTTOM - GAP_Y * (ROWS - 1)) / ROWS

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
        "Decode throughput by frame size (framewire codecs bench)</text>",
        f'<text x="{W / 2}" y="44" text-anchor="middle" fill="#444">'
        "GB/s of wire input (log scale) vs payload size (log scale); input fed in 64 KiB chunks; "
        "best of interleaved rounds</text>",
    ]

    def line(points, colour, dash, px, py, width=2):
        path = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in points if v > 0)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr}/>')
        for s, v in points:
            if v > 0:
                out.append(f'<circle cx="{px(s):.1f}" cy="{py(v):.1f}" r="2.5" fill="{colour}"/>')

    for i, (group, title, tokio, bare) in enumerate(PANELS):
        col, row = i % COLS, i // COLS
        x0 = LEFT + col * (pw + GAP_X)
        y0 = TOP + row * (ph + GAP_Y)

        def px(size, x0=x0):
            return x0 + (math.log2(size) - x_lo) / (x_hi - x_lo) * pw

        def py(v, y0=y0):
            return y0 + ph - (math.log10(v) - math.log10(y_lo)) / (math.log10(y_hi) - math.log10(y_lo)) * ph

        out.append(f'<text x="{x0 + pw / 2}" y="{y0 - 8}" text-anchor="middle" font-weight="bold">{esc(title)}</text>')
        out.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        decade = y_lo
        while decade <= y_hi * 1.0001:
            y = py(decade)
            out.append(f'<line x1="{x0}" x2="{x0 + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>')
            out.append(f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#444">{decade:g}</text>')
            for k in range(2, 10):
                if decade * k < y_hi:
                    ym = py(decade * k)
                    out.append(f'<line x1="{x0}" x2="{x0 + 4}" y1="{ym:.1f}" y2="{ym:.1f}" stroke="#bbb"/>')
            decade *= 10
        for s in sizes:
            x = px(s)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + ph}" stroke="#eeeeee"/>')
            out.append(f'<text x="{x:.1f}" y="{y0 + ph + 14}" text-anchor="middle" fill="#444">{size_label(s)}</text>')
        if col == 0:
            out.append(
                f'<text transform="translate({x0 - 42},{y0 + ph / 2}) rotate(-90)" text-anchor="middle" fill="#444">GB/s</text>'
            )
        series = [(MEMCPY, GREY, "2,3", 2)]
        if bare:
            series.append((bare, GREEN, "1,3", 2))
        series += [(name, RED, dash, 2) for name, _, dash in tokio]
        series += [(FW_BYTES, BLUE, "", 2), (FW_LEND, BLUE, "6,4", 2)]
        for name, colour, dash, width in series:
            if (group, name) in data:
                line(sorted(data[(group, name)].items()), colour, dash, px, py, width)
        note = "tokio-util: " + ", ".join(short for _, short, _ in tokio) if tokio else "no tokio-util equivalent"
        out.append(f'<text x="{x0 + pw - 6}" y="{y0 + ph - 8}" text-anchor="end" fill="#888">{esc(note)}</text>')

    ly = H - BOTTOM + 50
    for k, (label, colour, dash) in enumerate(LEGEND):
        lx = LEFT + (k % 2) * (W - LEFT - RIGHT) / 2
        y = ly + (k // 2) * 20
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<line x1="{lx}" x2="{lx + 30}" y1="{y}" y2="{y}" stroke="{colour}" stroke-width="2"{dash_attr}/>')
        out.append(f'<text x="{lx + 36}" y="{y + 4}">{esc(label)}</text>')
    out.append("</svg>")

    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("\n".join(out) + "\n")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
