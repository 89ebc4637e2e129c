#!/usr/bin/env python3
"""Independent reference for the GPTQ-v1 packing (issue 11, finding 3): a numpy RTN quantizer, packer and
unpacker written from AUTOROUND.md sections 2 and 5, sharing no code with the C++ tree, and the fixtures
tests/quant/pack_reference_test.cpp checks our C++ RTN + packer + reader against.

Layout (the `auto_round:auto_gptq` packing and `auto_gptq` / GPTQ v1 checkpoints), for a Linear with K inputs,
N outputs, b bits and G groups:
  qweight I32 [K*b/32, N]  the codes u of column n packed along K;
  qzeros  I32 [G, N*b/32]  the STORED zero points (real zero - 1, GPTQ v1) of row g packed along N;
  scales  F16 [G, N]       may be negative (full-range symmetric).
For b = 2, 4, 8 a word holds 32/b whole values, value j of the word in bits [j*b, j*b+b). For b = 3 a block
of 32 values fills 3 words (auto_gptq's 3-bit layout, written out below word by word):
  word 0: values 0..9 at bits 3j,        bits 30-31 = low 2 bits of value 10
  word 1: bit 0 = high bit of value 10,  values 11..20 at bits 3(j-11)+1,  bit 31 = low bit of value 21
  word 2: bits 0-1 = high 2 bits of value 21, values 22..31 at bits 3(j-22)+2
The 3-bit packer and unpacker below follow this word-by-word description, not a bit-stream formulation.

RTN (AUTOROUND.md section 2 with V = 0, alpha = beta = 1; everything in float32, round half to even):
  wmin = min(min w, 0), wmax = max(max w, 0) per group
  sym  (maxq = 2^(b-1)): s = fp16(+(-wmin)/maxq) if wmax < -wmin else fp16(-wmax/maxq); |s| < 1e-5 -> +-fp16(1e-5)
        (a zero or -0 scale becomes +fp16(1e-5)); zero = maxq
  asym (maxq = 2^b - 1): s = fp16((wmax - wmin)/maxq); s < 1e-5 -> fp16(1e-5); zero = clamp(rint(-wmin/s), 0, maxq)
  u = clamp(rint(w / s) + zero, 0, 2^b - 1)     (a true f32 division by the f16 value)
Stored zero points are zero - 1 (GPTQ v1). A zero point of 0 has no representation there (our exporter refuses
it; the public auto-round 0.16.1 clamps it to a stored 0, i.e. it decodes as 1), so the fixtures contain none.

Fixtures (deterministic, seeded; re-running rewrites byte-identical files), under tests/data/pack/:
  b{2,3,4,8}.safetensors  for each case i of that width, prefix P = model.layers.{i}.mlp.down_proj:
      P.weight      F32 [N, K]  the random source weight
      P.qweight     I32, P.qzeros I32, P.scales F16   as the reference packed them (zero - 1 stored)
      P.ref_codes   U8 [N, K]   the reference's unsigned codes u
      P.ref_zeros   U8 [G, N]   the reference's REAL zero points
  manifest.json           the cases: file, prefix, bits, group_size, sym, out_features, in_features, groups

The weights mix random rows with rows made to hit the corners: exact round-half-even ties, a dominant-extreme
tie (wmax == -wmin), all-zero, floored (|s| < 1e-5) and fp16-subnormal scales, all-positive / all-negative rows
(asym zero point at the top of its range) and outliers that clamp.

Usage:
  tools/gptq_pack_reference.py [--out tests/data/pack]   write the fixtures (and self-check them)
  tools/gptq_pack_reference.py --check-public            also compare every case with the public auto-round's
                                                         RTN (quant_tensor_sym/asym) and packer (qlinear_torch_zp)
                                                         when `import auto_round` works
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

REPO = Path(__file__).resolve().parent.parent
BITS = (2, 3, 4, 8)
GROUPS = (32, 64, 128, -1)
N_OUT = 32                                   # a multiple of 32: qzeros of every width fill whole words
K_IN = {32: 96, 64: 128, 128: 256, -1: 160}  # 3, 2, 2 groups; per-channel over 160 inputs (5 x 32)
F32 = np.float32
SCALE_FLOOR = F32(1e-5)
FLOOR_F16 = np.float16(SCALE_FLOOR)


# ---------------------------------------------------------------------------------------------------------
# RTN (AUTOROUND.md section 2)
# ---------------------------------------------------------------------------------------------------------

def rtn(w, bits, group_size, sym):
    """w: f32 [N, K]. Returns codes u8 [N, K], scales f16 [G, N], real zero points u8 [G, N]."""
    assert w.dtype == F32
    n_out, k_in = w.shape
    g = k_in if group_size == -1 else group_size
    assert k_in % g == 0
    groups = k_in // g
    wg = w.reshape(n_out, groups, g)
    zero32 = F32(0)
    wmin = np.minimum(wg.min(axis=2), zero32)  # [N, G]
    wmax = np.maximum(wg.max(axis=2), zero32)
    if sym:
        maxq = F32(2 ** (bits - 1))
        neg_mag = -wmin
        from_max = ~(wmax < neg_mag)  # a tie goes to the negative scale
        s32 = np.where(from_max, -wmax / maxq, neg_mag / maxq).astype(F32)
        s16 = s32.astype(np.float16)
        floored = np.abs(s16.astype(F32)) < SCALE_FLOOR
        s16 = np.where(floored, np.where(s16.astype(F32) < zero32, -FLOOR_F16, FLOOR_F16), s16)
        zero = np.full((n_out, groups), 2 ** (bits - 1), dtype=F32)
    else:
        maxq = F32(2 ** bits - 1)
        s32 = ((wmax - wmin) / maxq).astype(F32)
        s16 = s32.astype(np.float16)
        floored = s16.astype(F32) < SCALE_FLOOR
        s16 = np.where(floored, FLOOR_F16, s16)
        zero = np.clip(np.rint((-wmin) / s16.astype(F32)), zero32, maxq).astype(F32)
    s = s16.astype(F32)
    x = (wg / s[:, :, None]).astype(F32)
    u = np.clip(np.rint(x) + zero[:, :, None], zero32, F32(2 ** bits - 1))
    codes = u.astype(np.uint8).reshape(n_out, k_in)
    return codes, np.ascontiguousarray(s16.T), np.ascontiguousarray(zero.astype(np.uint8).T)


# ---------------------------------------------------------------------------------------------------------
# Packer / unpacker along axis 0 (qweight packs along K = axis 0 of codes^T; qzeros along N, via a transpose)
# ---------------------------------------------------------------------------------------------------------

def pack_axis0(values, bits):
    """uint [L, C] values (< 2^bits) -> int32 [L*bits/32, C]."""
    v = values.astype(np.uint32)
    length, cols = v.shape
    assert int(v.max(initial=0)) < 2 ** bits
    if bits in (2, 4, 8):
        per = 32 // bits
        assert length % per == 0
        v = v.reshape(length // per, per, cols)
        words = np.zeros((length // per, cols), dtype=np.uint32)
        for j in range(per):
            words |= v[:, j, :] << np.uint32(bits * j)
    elif bits == 3:
        assert length % 32 == 0
        v = v.reshape(length // 32, 32, cols)
        w0 = np.zeros((length // 32, cols), dtype=np.uint32)
        w1 = np.zeros_like(w0)
        w2 = np.zeros_like(w0)
        for j in range(10):
            w0 |= v[:, j, :] << np.uint32(3 * j)
            w1 |= v[:, 11 + j, :] << np.uint32(3 * j + 1)
            w2 |= v[:, 22 + j, :] << np.uint32(3 * j + 2)
        w0 |= (v[:, 10, :] & np.uint32(3)) << np.uint32(30)
        w1 |= v[:, 10, :] >> np.uint32(2)
        w1 |= (v[:, 21, :] & np.uint32(1)) << np.uint32(31)
        w2 |= v[:, 21, :] >> np.uint32(1)
        words = np.stack([w0, w1, w2], axis=1).reshape(length // 32 * 3, cols)
    else:
        raise ValueError(f"bits {bits}")
    return words.view(np.int32)


def unpack_axis0(words, bits, length):
    """int32 [length*bits/32, C] -> uint8 [length, C]; the inverse of pack_axis0, written separately."""
    u = np.ascontiguousarray(words).view(np.uint32)
    cols = u.shape[1]
    out = np.zeros((length, cols), dtype=np.uint32)
    mask = np.uint32(2 ** bits - 1)
    if bits in (2, 4, 8):
        per = 32 // bits
        assert u.shape[0] * per == length
        for r in range(u.shape[0]):
            for j in range(per):
                out[r * per + j] = (u[r] >> np.uint32(bits * j)) & mask
    else:
        assert bits == 3 and u.shape[0] * 32 == length * 3
        for b in range(length // 32):
            w0, w1, w2 = u[3 * b], u[3 * b + 1], u[3 * b + 2]
            base = 32 * b
            for j in range(10):
                out[base + j] = (w0 >> np.uint32(3 * j)) & mask
                out[base + 11 + j] = (w1 >> np.uint32(3 * j + 1)) & mask
                out[base + 22 + j] = (w2 >> np.uint32(3 * j + 2)) & mask
            out[base + 10] = (w0 >> np.uint32(30)) | ((w1 & np.uint32(1)) << np.uint32(2))
            out[base + 21] = (w1 >> np.uint32(31)) | ((w2 & np.uint32(3)) << np.uint32(1))
    return out.astype(np.uint8)


def pack_linear(codes, scales, zeros, bits):
    """codes [N, K], scales f16 [G, N], real zeros [G, N] -> the checkpoint tensors (zero - 1 stored)."""
    assert int(zeros.min()) >= 1, "a zero point of 0 cannot be stored as zero - 1"
    stored = (zeros.astype(np.int32) - 1).astype(np.uint8)
    return {
        "qweight": pack_axis0(np.ascontiguousarray(codes.T), bits),
        "qzeros": np.ascontiguousarray(pack_axis0(np.ascontiguousarray(stored.T), bits).T),
        "scales": scales,
    }


def unpack_linear(tensors, bits, n_out, k_in):
    """Back to codes [N, K] and real zero points [G, N] (zero = stored + 1)."""
    codes = unpack_axis0(tensors["qweight"], bits, k_in).T
    stored = unpack_axis0(np.ascontiguousarray(tensors["qzeros"].T), bits, n_out).T
    return np.ascontiguousarray(codes), (stored.astype(np.int32) + 1).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------

def make_weight(rng, bits, group_size, sym):
    n_out, k_in = N_OUT, K_IN[group_size]
    g = k_in if group_size == -1 else group_size
    groups = k_in // g
    w = np.zeros((n_out, k_in), dtype=F32)
    t = F32(2.0 ** -7)  # an exact f16 scale: w / s below is exact in f32

    def per_group(row, fill):
        for gi in range(groups):
            w[row, gi * g:(gi + 1) * g] = fill(g).astype(F32)

    # Row 0: exact round-half-even ties (w / s = j + 0.5), the extremes of the group in its first two inputs.
    if sym:
        zero = 2 ** (bits - 1)
        lo_j, hi_j, top, bottom = -zero, zero - 1, zero * t, -(zero - 1) * t  # s = -top/zero = -t
    else:
        maxq = 2 ** bits - 1
        zp = maxq // 2
        lo_j, hi_j, top, bottom = -zp, maxq - zp - 1, (maxq - zp) * t, -zp * t  # s = t, zero = zp
    per_group(0, lambda n: np.concatenate([[top, bottom], (rng.integers(lo_j, hi_j + 1, n - 2) + 0.5) * t]))
    # Row 1: the two extremes equal in magnitude (sym: the tie picks the negative scale).
    def extremes_tie(n):
        a = F32(rng.uniform(0.02, 0.2))
        return np.concatenate([[a, -a], rng.uniform(-a, a, n - 2)])
    per_group(1, extremes_tie)
    # Row 2: sym all zero (scale floored to +fp16(1e-5)); asym all negative (zero point at the top, 2^b - 1).
    if sym:
        w[2] = 0
    else:
        per_group(2, lambda n: -rng.uniform(0.001, 0.1, n))
    # Row 3: tiny values: every scale is floored.
    if sym:
        per_group(3, lambda n: rng.uniform(-1e-6, 1e-6, n))
    else:
        per_group(3, lambda n: np.concatenate([[-2.5e-5], rng.uniform(-2.5e-5, 0.4e-5, n - 1)]))
    # Row 4: scales in fp16's subnormal range (1e-5 <= |s| < 6.1e-5).
    amp = 3e-5 * 2 ** (bits - 1)
    per_group(4, lambda n: rng.uniform(-amp, amp, n))
    # Row 5: sym all positive (negative scales, codes down to 0); asym mostly positive, a small negative minimum.
    if sym:
        per_group(5, lambda n: rng.uniform(0.0, 0.1, n))
    else:
        per_group(5, lambda n: np.concatenate([[-0.02], rng.uniform(0.0, 0.1, n - 1)]))
    # Row 6: outliers (one large value per group; the rest sit in a few codes). Asym: a negative one (a
    # positive outlier would round the zero point to 0 at 2 bits).
    def outliers(n):
        x = rng.normal(0, 0.02, n)
        x[rng.integers(0, n)] = (rng.choice([-1, 1]) if sym else -1) * 0.5
        return x
    per_group(6, outliers)
    # The rest: random normal rows of varied spread and offset.
    for r in range(7, n_out):
        sigma = float(np.exp(rng.uniform(np.log(0.005), np.log(0.2))))
        w[r] = rng.normal(rng.uniform(-0.3, 0.3) * sigma, sigma, k_in).astype(F32)
    if not sym:  # zero - 1 storage needs every zero point >= 1: redraw random rows that would give 0
        for r in range(n_out):
            while rtn(w[r:r + 1], bits, group_size, sym)[2].min() < 1:
                assert r >= 7, f"special row {r} has a zero point of 0"
                w[r] = rng.normal(0, 0.05, k_in).astype(F32)
    return w


def case_name(bits, group_size, sym):
    return f"b{bits}_{'sym' if sym else 'asym'}_g{'ch' if group_size == -1 else group_size}"


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------

def dequantize(codes, scales, zeros, group_size):
    """W[n, k] = scales[g, n] * (u[n, k] - zero[g, n]) in f32, as loaders do it."""
    n_out, k_in = codes.shape
    g = k_in if group_size == -1 else group_size
    gi = np.arange(k_in) // g
    s = scales.astype(F32).T[:, gi]
    z = zeros.astype(F32).T[:, gi]
    return (s * (codes.astype(F32) - z)).astype(F32)


def self_check(case, w, codes, scales, zeros, packed):
    bits, group_size = case["bits"], case["group_size"]
    c2, z2 = unpack_linear(packed, bits, case["out_features"], case["in_features"])
    assert np.array_equal(c2, codes) and np.array_equal(z2, zeros), case["name"]
    assert packed["qweight"].shape == (case["in_features"] * bits // 32, case["out_features"])
    assert packed["qzeros"].shape == (case["groups"], case["out_features"] * bits // 32)
    # A loose sanity bound on the reconstruction: within half a step (plus clamping) of the weight.
    w_hat = dequantize(codes, scales, zeros, group_size)
    g = case["in_features"] if group_size == -1 else group_size
    step = np.abs(scales.astype(F32)).T[:, np.arange(case["in_features"]) // g]
    inside = (codes > 0) & (codes < 2 ** bits - 1)
    assert np.all(np.abs(w_hat - w)[inside] <= 0.5 * step[inside] * (1 + 1e-6) + 1e-12), case["name"]


def check_public(case, w, codes, scales, zeros, packed):
    """The public auto-round's RTN and packer on the same weight. Returns a list of differences (text)."""
    import torch
    from auto_round.data_type.int import quant_tensor_asym, quant_tensor_sym
    from auto_round_extension.torch.qlinear_torch_zp import QuantLinear

    bits, group_size, sym = case["bits"], case["group_size"], case["sym"]
    n_out, k_in = w.shape
    fn = quant_tensor_sym if sym else quant_tensor_asym
    gs = k_in if group_size == -1 else group_size
    qdq, scale, zp = fn(torch.from_numpy(w.copy()), bits=bits, group_size=gs, v=0)
    scale = scale.reshape(n_out, -1)  # [N, G]
    zp = (zp if isinstance(zp, torch.Tensor) else torch.full_like(scale, float(zp))).reshape(n_out, -1)
    diffs = []
    if not np.array_equal(scale.to(torch.float16).numpy().T.view(np.uint16), scales.view(np.uint16)):
        diffs.append("scales")
    if not np.array_equal(zp.round().to(torch.int64).numpy().T, zeros.astype(np.int64)):
        diffs.append("zero points")
    if not np.array_equal(qdq.reshape(n_out, k_in).numpy().view(np.uint32),
                          dequantize(codes, scales, zeros, group_size).view(np.uint32)):
        diffs.append("fake-quant weight (codes)")
    # The public packer re-derives the codes as round(W / s + zp) from the weight it is handed; give it our
    # dequantized weight (exact in f32) so that this compares the packing alone.
    lin = torch.nn.Linear(k_in, n_out, bias=False)
    lin.weight.data = torch.from_numpy(dequantize(codes, scales, zeros, group_size))
    ql = QuantLinear(bits, gs, k_in, n_out, bias=False)
    ql.pack(lin, torch.from_numpy(scales.astype(F32).T.copy()), torch.from_numpy(zeros.astype(np.int64).T.copy()))
    if not np.array_equal(ql.qweight.numpy(), packed["qweight"]):
        diffs.append("qweight")
    if not np.array_equal(ql.qzeros.numpy(), packed["qzeros"]):
        diffs.append("qzeros")
    if not np.array_equal(ql.scales.numpy().view(np.uint16), scales.view(np.uint16)):
        diffs.append("packed scales")
    return diffs


# ---------------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "tests/data/pack"))
    ap.add_argument("--check-public", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"generator": "tools/gptq_pack_reference.py", "zero_point_convention": "zero_minus_one",
                "cases": []}
    public_report = {}
    for bits in BITS:
        rng = np.random.default_rng(20261211 + bits)
        tensors = {}
        index = 0
        for sym in (True, False):
            for group_size in GROUPS:
                k_in = K_IN[group_size]
                case = {"name": case_name(bits, group_size, sym), "file": f"b{bits}.safetensors",
                        "prefix": f"model.layers.{index}.mlp.down_proj", "bits": bits, "group_size": group_size,
                        "sym": sym, "out_features": N_OUT, "in_features": k_in,
                        "groups": 1 if group_size == -1 else k_in // group_size}
                w = make_weight(rng, bits, group_size, sym)
                codes, scales, zeros = rtn(w, bits, group_size, sym)
                packed = pack_linear(codes, scales, zeros, bits)
                self_check(case, w, codes, scales, zeros, packed)
                p = case["prefix"]
                tensors[p + ".weight"] = w
                for k, v in packed.items():
                    tensors[f"{p}.{k}"] = v
                tensors[p + ".ref_codes"] = codes
                tensors[p + ".ref_zeros"] = zeros
                manifest["cases"].append(case)
                if args.check_public:
                    public_report[case["name"]] = check_public(case, w, codes, scales, zeros, packed)
                index += 1
        path = out / f"b{bits}.safetensors"
        save_file(tensors, str(path))
        back = load_file(str(path))  # what the test will read
        assert all(np.array_equal(back[k], v) for k, v in tensors.items())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"wrote {len(manifest['cases'])} cases to {out} ({total} bytes)")
    if args.check_public:
        from importlib.metadata import version
        bad = {k: v for k, v in public_report.items() if v}
        print(f"public auto-round {version('auto-round')}: {len(public_report) - len(bad)} of "
              f"{len(public_report)} cases identical (RTN scales, zero points, packed qweight/qzeros/scales)")
        for k, v in bad.items():
            print(f"  {k}: differs in {', '.join(v)}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
