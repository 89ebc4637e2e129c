#!/usr/bin/env python3
"""PNG fixtures for tests/io/image/png_test.cpp, written without libpng (Python's zlib and struct only), so the
C++ reader is checked against an independent writer. For each NAME, tests/data/png/NAME.png and NAME.rgb (the
8-bit RGB bytes a reader must produce: alpha dropped, gray and palette expanded, 16-bit cut to the high byte).
Standard library only; deterministic.

Usage: python3 tools/make_png_fixtures.py [--out tests/data/png]
"""
import argparse
import json
import math
import random
import struct
import zlib
from pathlib import Path

W, H = 7, 5


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_row(kind, row, prev, bpp):
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - pred) & 0xFF)
    return bytes([kind]) + bytes(out)


def png(width, height, depth, color, rows, palette=None, filters=None):
    """rows: raw scanline bytes (already packed for depth < 8)."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    bpp = max(1, channels * depth // 8)
    raw = b""
    prev = bytes(len(rows[0]))
    for y, row in enumerate(rows):
        raw += filter_row(filters[y % len(filters)] if filters else 0, row, prev, bpp)
        prev = row
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))
    if palette:
        out += chunk(b"PLTE", bytes(v for rgb in palette for v in rgb))
    return out + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/png")
    out = Path(ap.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261201)
    rgb = [[(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(W)] for _ in range(H)]
    flat = lambda px: bytes(v for row in px for p in row for v in p)  # noqa: E731
    cases = {}
    cases["rgb8"] = (png(W, H, 8, 2, [bytes(v for p in r for v in p) for r in rgb]), flat(rgb))
    cases["filters"] = (png(W, H, 8, 2, [bytes(v for p in r for v in p) for r in rgb], filters=[1, 2, 3, 4, 0]),
                        flat(rgb))
    alpha = [[rng.randrange(256) for _ in range(W)] for _ in range(H)]
    cases["rgba8"] = (png(W, H, 8, 6, [bytes(v for p, a in zip(r, ar) for v in (*p, a)) for r, ar in zip(rgb, alpha)]),
                      flat(rgb))
    gray = [[rng.randrange(256) for _ in range(W)] for _ in range(H)]
    cases["gray8"] = (png(W, H, 8, 0, [bytes(r) for r in gray]), flat([[(g, g, g) for g in r] for r in gray]))
    g2 = [[rng.randrange(4) for _ in range(W)] for _ in range(H)]

    def pack2(r):
        bits = r + [0] * (-len(r) % 4)
        return bytes((bits[i] << 6) | (bits[i + 1] << 4) | (bits[i + 2] << 2) | bits[i + 3] for i in range(0, len(bits), 4))
    cases["gray2"] = (png(W, H, 2, 0, [pack2(r) for r in g2]), flat([[(v * 85,) * 3 for v in r] for r in g2]))
    pal = [(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(6)]
    idx = [[rng.randrange(6) for _ in range(W)] for _ in range(H)]
    cases["palette"] = (png(W, H, 8, 3, [bytes(r) for r in idx], palette=pal), flat([[pal[i] for i in r] for r in idx]))
    rgb16 = [[tuple(rng.randrange(65536) for _ in range(3)) for _ in range(W)] for _ in range(H)]
    cases["rgb16"] = (png(W, H, 16, 2, [b"".join(struct.pack(">HHH", *p) for p in r) for r in rgb16]),
                      flat([[tuple(v >> 8 for v in p) for p in r] for r in rgb16]))
    # A perturbed copy of rgb8 and the comparison metrics of the pair (vLLM-Omni's definitions, Python floats),
    # for `omniround compare` (tests/cli/compare_cli_test.cpp).
    noisy = [[tuple(min(255, max(0, v + rng.choice((-9, -3, 0, 0, 2, 5, 14)))) for v in p) for p in r] for r in rgb]
    cases["rgb8_noisy"] = (png(W, H, 8, 2, [bytes(v for p in r for v in p) for r in noisy]), flat(noisy))
    for name, (data, want) in cases.items():
        (out / f"{name}.png").write_bytes(data)
        (out / f"{name}.rgb").write_bytes(want)
    a, b = list(flat(rgb)), list(flat(noisy))
    n = len(a)
    sq = sum((x - y) ** 2 for x, y in zip(a, b))
    mse = sq / n
    metrics = {
        "cosine_similarity": sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))),
        "mae": sum(abs(x - y) for x, y in zip(a, b)) / n, "mse": mse, "rmse": math.sqrt(mse),
        "max_abs": max(abs(x - y) for x, y in zip(a, b)), "l2": math.sqrt(sq),
        "relative_l2": math.sqrt(sq) / math.sqrt(sum(x * x for x in a)),
        "psnr_db": 20 * math.log10(255) - 10 * math.log10(mse)}
    (out / "rgb8_vs_noisy.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} PNG fixtures to {out}")


if __name__ == "__main__":
    main()
