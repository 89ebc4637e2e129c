#!/usr/bin/env python3
"""Independent reader for W2/W4/W8-A16 checkpoints in the GPTQ layout (auto_round with packing
auto_round:auto_gptq, and auto_gptq / quant_method "gptq"), following AUTOROUND.md section 5 directly.
numpy + safetensors only; shares no code with the C++ tree, so it can check what our exporter writes.

For every quantised Linear <p> (a tensor <p>.qweight exists) it dequantises
    W[n, k] = scales[g(k), n] * (u[k, n] - zero[g(k), n])
with u unpacked from qweight (input 8r+j of output n in bits 4j..4j+3 of word [r, n] at 4 bits), zero from qzeros
(stored zero - 1 for auto_round:auto_gptq and GPTQ v1, the real zero for GPTQ v2 / native auto_round; for
symmetric layers the stored values themselves decide), and g(k) = g_idx[k] or k // group_size.

Usage:
  read_auto_round.py CHECKPOINT_DIR                       list layers and check them
  read_auto_round.py CHECKPOINT_DIR --compare REF.safetensors
        compare with reference f32 weights named <p>.weight (exit 1 on any difference)
  read_auto_round.py CHECKPOINT_DIR --out DEQUANT.safetensors
        write the dequantised weights as f32 <p>.weight
"""

import argparse
import json
import os
import re
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file


def load_quant_config(ckpt_dir):
    with open(os.path.join(ckpt_dir, "config.json")) as f:
        cfg = json.load(f)
    if "quantization_config" in cfg:
        return cfg["quantization_config"]
    with open(os.path.join(ckpt_dir, "quantization_config.json")) as f:
        return json.load(f)


def tensor_files(ckpt_dir):
    """Map tensor name -> shard path."""
    index = os.path.join(ckpt_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        return {name: os.path.join(ckpt_dir, shard) for name, shard in weight_map.items()}
    path = os.path.join(ckpt_dir, "model.safetensors")
    with safe_open(path, framework="np") as f:
        return {name: path for name in f.keys()}


def layer_scheme(qc, name):
    """(bits, group_size, sym) of one layer: exact extra_config key, else the first regex key that searches."""
    bits, group, sym = qc["bits"], qc["group_size"], qc.get("sym", True)
    extra = qc.get("extra_config") or {}
    entry = extra.get(name)
    if entry is None:
        for key, value in extra.items():
            if any(c in key for c in "*+?^$()[]{}|\\") and re.search(key, name):
                entry = value
                break
    if entry:
        bits = entry.get("bits", bits)
        group = entry.get("group_size", group)
        sym = entry.get("sym", sym)
    return bits, group, sym


def unpack_along_rows(words, bits):
    """int32 [R, C] -> uint8 [R * 32/bits, C]: field j of word [r, c] becomes row r*(32/bits)+j."""
    per_word = 32 // bits
    w = words.astype(np.uint32)
    shifts = (np.arange(per_word, dtype=np.uint32) * bits)[None, :, None]
    fields = (w[:, None, :] >> shifts) & np.uint32((1 << bits) - 1)
    return fields.reshape(w.shape[0] * per_word, w.shape[1]).astype(np.uint8)


def unpack_along_cols(words, bits):
    """int32 [R, C] -> uint8 [R, C * 32/bits]: field j of word [r, c] becomes column c*(32/bits)+j."""
    return unpack_along_rows(words.T, bits).T


def zero_offset(qc, stored, bits, sym):
    """1 when qzeros hold zero - 1, 0 when they hold the real zero."""
    half = 1 << (bits - 1)
    if sym:
        if np.all(stored == half - 1):
            return 1
        if np.all(stored == half):
            return 0
        raise ValueError("symmetric layer with zero points %s" % np.unique(stored))
    if stored.max() == (1 << bits) - 1:
        return 0
    if qc.get("quant_method") in ("gptq", "auto_gptq"):
        fmt = qc.get("checkpoint_format")
        if fmt in ("gptq", "gptq_v2"):
            return 1 if fmt == "gptq" else 0
    elif "packing_format" in qc:
        pf = qc["packing_format"]
        if "gptqmodel" in pf or pf == "auto_round":
            return 0
        if "auto_gptq" in pf:
            return 1
    raise ValueError("ambiguous zero-point convention")


def dequantize_layer(get, qc, prefix):
    bits, group, sym = layer_scheme(qc, prefix)
    if bits not in (2, 4, 8):
        raise ValueError("%s: %d-bit layout not supported here" % (prefix, bits))
    qweight = get(prefix + ".qweight")
    scales = get(prefix + ".scales").astype(np.float32)
    codes = unpack_along_rows(qweight, bits).astype(np.int32)  # [K, N]
    K, N = codes.shape
    stored = unpack_along_cols(get(prefix + ".qzeros"), bits)[:, :N]
    zeros = stored.astype(np.int32) + zero_offset(qc, stored, bits, sym)
    group = K if group == -1 else group
    g_idx = get(prefix + ".g_idx", optional=True)
    g_of_k = g_idx.astype(np.int64) if g_idx is not None else np.arange(K) // group
    assert scales.shape == (-(-K // group), N), (prefix, scales.shape)
    w = scales[g_of_k, :] * (codes - zeros[g_of_k, :]).astype(np.float32)  # [K, N], f32 product
    return w.T.copy()  # [N, K] as in the dense checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--compare", help="reference f32 safetensors with <p>.weight")
    ap.add_argument("--out", help="write dequantised f32 weights here")
    args = ap.parse_args()

    qc = load_quant_config(args.checkpoint)
    files = tensor_files(args.checkpoint)

    def get(name, optional=False):
        if name not in files:
            if optional:
                return None
            raise KeyError(name)
        with safe_open(files[name], framework="np") as f:
            return f.get_tensor(name)

    prefixes = sorted(n[: -len(".qweight")] for n in files if n.endswith(".qweight"))
    print("quant_method=%s packing_format=%s bits=%s group_size=%s sym=%s: %d quantized layers"
          % (qc.get("quant_method"), qc.get("packing_format"), qc.get("bits"), qc.get("group_size"),
             qc.get("sym"), len(prefixes)))
    out = {}
    for p in prefixes:
        out[p + ".weight"] = dequantize_layer(get, qc, p)
        s = get(p + ".scales").astype(np.float32)
        print("  %-45s %-12s negative scales %5.1f%%" % (p, "x".join(map(str, out[p + ".weight"].shape)),
                                                         100.0 * np.mean(s < 0)))
    failed = False
    if args.compare:
        with safe_open(args.compare, framework="np") as f:
            names = list(f.keys())
            for name in names:
                ref = f.get_tensor(name).astype(np.float32)
                got = out.get(name)
                if got is None:
                    print("MISSING %s" % name)
                    failed = True
                    continue
                same = got.shape == ref.shape and np.array_equal(got.view(np.uint32), ref.view(np.uint32))
                diff = float(np.max(np.abs(got - ref))) if got.shape == ref.shape else float("inf")
                print("  %-50s %s (max |diff| %.3g)" % (name, "bit-exact" if same else "DIFFERS", diff))
                failed = failed or not same
        print("compare: %d tensors, %s" % (len(names), "FAILED" if failed else "all bit-exact"))
    if args.out:
        save_file(out, args.out)
        print("wrote %s" % args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
