#!/usr/bin/env python3
"""Interop fixtures for the safetensors reader and writer, made with the reference `safetensors` package.

    /work/venv/bin/python tools/make_safetensors_fixtures.py
        writes tests/data/safetensors/reference.safetensors (written by the reference implementation) and
        tests/data/safetensors/reference_expected.json (dtype, shape, raw bytes in hex and decoded values of every
        tensor, and the metadata). tests/io/safetensors_test.cpp reads the file with our reader and compares.

    /work/venv/bin/python tools/make_safetensors_fixtures.py --check-ours PATH
        the reverse direction: PATH is a file (or a checkpoint directory) written by our C++ writer from the
        reference tensors (safetensors_test writes build-*/safetensors_interop/ours.safetensors and
        ours_sharded/); checks that the reference implementation opens it and finds the same tensors and bytes.

Deterministic: a fixed seed, and the reference writer's layout does not depend on anything else.
"""
import argparse
import json
import os
import sys

import numpy as np
import safetensors
from safetensors import TensorSpec, deserialize, safe_open, serialize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(REPO, "tests", "data", "safetensors")
# One entry only: the reference writer emits metadata in hash-map order, so several entries would make the
# fixture's bytes vary between runs.
METADATA = {"note": "omniround reference fixture: unicode \u2713, \"quotes\" and a \\ backslash"}


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns (no NaNs in our data)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    return (bits.astype(np.uint32) << 16).view(np.float32)


def make_tensors():
    """name -> (safetensors dtype name, numpy dtype name for TensorSpec, shape, raw array, decoded values or None)."""
    rng = np.random.default_rng(20240607)
    t = {}
    bf = f32_to_bf16_bits(rng.normal(0.0, 0.7, size=(4, 6)).astype(np.float32))
    t["model.embed_tokens.weight"] = ("BF16", "bfloat16", [4, 6], bf, bf16_bits_to_f32(bf))
    h = (rng.normal(0.0, 3.0, size=(7,))).astype(np.float16)
    t["layers.0.norm.weight"] = ("F16", "float16", [7], h, h.astype(np.float32))
    f = rng.normal(0.0, 1.0, size=(3, 5)).astype(np.float32)
    t["layers.0.mlp.up_proj.weight"] = ("F32", "float32", [3, 5], f, f)
    i32 = rng.integers(-2**31, 2**31 - 1, size=(2, 4), dtype=np.int64).astype(np.int32)
    t["layers.0.qweight"] = ("I32", "int32", [2, 4], i32, i32)
    u8 = rng.integers(0, 256, size=(9,), dtype=np.int64).astype(np.uint8)
    t["u8_bytes"] = ("U8", "uint8", [9], u8, u8)
    i64 = np.array([-(2**52) + 7, 123456789012345, -3], dtype=np.int64)
    t["i64_values"] = ("I64", "int64", [3], i64, i64)
    f64 = np.array([np.pi, -1.0e-300], dtype=np.float64)
    t["f64_values"] = ("F64", "float64", [2], f64, f64)
    i16 = np.array([-32768, 12345, -1], dtype=np.int16)
    t["i16_values"] = ("I16", "int16", [3], i16, i16)
    i8 = np.array([-128, 127, -5, 9], dtype=np.int8)
    t["i8_values"] = ("I8", "int8", [2, 2], i8.reshape(2, 2), i8)
    b = np.array([True, False, False, True, True], dtype=np.bool_)
    t["bool_mask"] = ("BOOL", "bool", [5], b, b.astype(np.uint8))
    f8 = np.array([0x38, 0xC0, 0x7E, 0x01], dtype=np.uint8)  # raw E4M3 codes: 1.0, -2.0, 448, tiny
    t["f8_codes"] = ("F8_E4M3", "float8_e4m3fn", [4], f8, None)
    s = np.array([2.5], dtype=np.float32)
    t["scalar"] = ("F32", "float32", [], s.reshape(()), s)
    e = np.zeros((0, 3), dtype=np.float32)
    t["empty"] = ("F32", "float32", [0, 3], e, e.reshape(-1))
    return t


def write_reference():
    tensors = make_tensors()
    specs = {}
    for name, (_, np_name, shape, arr, _) in tensors.items():
        arr = np.ascontiguousarray(arr)
        specs[name] = TensorSpec(dtype=np_name, shape=shape, data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    data = bytes(serialize(specs, metadata=METADATA))
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "reference.safetensors"), "wb") as fh:
        fh.write(data)
    expected = {"metadata": METADATA, "writer": f"safetensors {safetensors.__version__}", "tensors": {}}
    for name, (st_dtype, _, shape, arr, values) in tensors.items():
        entry = {"dtype": st_dtype, "shape": shape, "hex": np.ascontiguousarray(arr).tobytes().hex()}
        if values is not None:
            entry["values"] = [v.item() if hasattr(v, "item") else v for v in np.asarray(values).reshape(-1)]
        expected["tensors"][name] = entry
    with open(os.path.join(OUT_DIR, "reference_expected.json"), "w", encoding="utf-8") as fh:
        json.dump(expected, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(f"wrote reference.safetensors ({len(data)} bytes, {len(tensors)} tensors) and reference_expected.json")


def check_ours(path):
    """Opens PATH (file or checkpoint directory) with the reference implementation and compares to make_tensors."""
    if os.path.isdir(path):
        index_path = os.path.join(path, "model.safetensors.index.json")
        with open(index_path, encoding="utf-8") as fh:
            index = json.load(fh)
        files = sorted(set(index["weight_map"].values()))
        total = index["metadata"]["total_size"]
    else:
        files, index, total = [os.path.basename(path)], None, None
        path = os.path.dirname(path) or "."
    expected = make_tensors()
    found = {}
    for fname in files:
        full = os.path.join(path, fname)
        # safe_open runs the reference validation (offsets contiguous, header well formed) and reads metadata.
        with safe_open(full, framework="numpy") as f:
            if f.metadata() != METADATA:
                sys.exit(f"FAIL {full}: metadata {f.metadata()} != {METADATA}")
            for name in f.keys():
                np_dtype = expected[name][3].dtype if name in expected else None
                if np_dtype is not None and expected[name][0] not in ("BF16", "F8_E4M3"):
                    arr = f.get_tensor(name)
                    if arr.dtype != np_dtype or not np.array_equal(arr.reshape(-1), expected[name][3].reshape(-1)):
                        sys.exit(f"FAIL {full}: tensor {name} values differ (numpy view)")
        with open(full, "rb") as fh:
            for name, info in deserialize(fh.read()):
                if name in found:
                    sys.exit(f"FAIL: tensor {name} in two files")
                found[name] = (info, fname)
        if index is not None:
            for name, (_, fn) in found.items():
                if fn == fname and index["weight_map"].get(name) != fname:
                    sys.exit(f"FAIL: index maps {name} to {index['weight_map'].get(name)}, found in {fname}")
    if set(found) != set(expected):
        sys.exit(f"FAIL: tensors {sorted(found)} != expected {sorted(expected)}")
    nbytes = 0
    for name, (st_dtype, _, shape, arr, _) in expected.items():
        info, _ = found[name]
        want = np.ascontiguousarray(arr).tobytes()
        nbytes += len(want)
        if info["dtype"] != st_dtype or list(info["shape"]) != shape or bytes(info["data"]) != want:
            sys.exit(f"FAIL: tensor {name}: {info['dtype']} {info['shape']} differs from {st_dtype} {shape} or bytes")
    if total is not None and total != nbytes:
        sys.exit(f"FAIL: index total_size {total} != {nbytes}")
    print(f"OK: {path if index else files[0]}: {len(found)} tensors in {len(files)} file(s) match, read by "
          f"safetensors {safetensors.__version__}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check-ours", metavar="PATH", help="verify a file or directory written by our writer")
    args = ap.parse_args()
    if args.check_ours:
        check_ours(args.check_ours)
    else:
        write_reference()


if __name__ == "__main__":
    main()
