#!/usr/bin/env python3
"""Interop check (issue 3 item 7a): does transformers + the public auto-round package load OUR auto_round
checkpoint, and what logits does it compute?

Steps:
  1. (with --omniround BIN) quantize SOURCE with our C++ binary: `BIN quantize SOURCE -o OUT/model --rtn`
     (skipped if OUT/model exists and --requantize is not given);
  2. load OUT/model with transformers.AutoModelForCausalLM (the auto-round package provides the quantizer;
     backend chosen by auto-round, CPU); auto-round forces the model to float16 on this backend, so the model
     is then cast back to float32 (`model.float()`: fp16 scales are exact in f32, so the dequantized weights are
     exactly scales * (u - zero)) and the logits are computed in f32;
  3. independently dequantize the checkpoint with a few lines of numpy (AUTOROUND.md section 5), put the weights
     into a plain float32 Qwen3ForCausalLM and compare its logits with the auto-round-loaded ones (checks that
     the loader reads our files the way we meant them);
  4. write OUT/transformers_logits.safetensors: input_ids I32 [T] (seeded random ids >= 3), logits F32 [T, V]
     (transformers + auto-round, f32) — the C++ test compares our engine's logits on OUT/model with these.

Prints a JSON summary (versions, backend, relative differences). Exit status 1 if loading fails or the two
transformers paths disagree by more than 1e-4 relative.

Usage: /work/venv/bin/python tools/interop_check_ours.py [--source tests/data/qwen3/untied]
         [--out tests/data/interop/ours_rtn] [--omniround build-ref/omniround] [--requantize] [--tokens 40]
"""

import argparse
import json
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM, Qwen3ForCausalLM

REPO = Path(__file__).resolve().parent.parent
IDS_SEED = 20261127


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


def fixed_ids(vocab, count):
    return np.random.default_rng(IDS_SEED).integers(3, vocab, size=count).astype(np.int32)


def read_tensors(ckpt):
    out = {}
    for f in sorted(Path(ckpt).glob("model*.safetensors")):
        with safe_open(str(f), "pt") as h:
            for k in h.keys():
                out[k] = h.get_tensor(k)
    return out


def dequantize_4bit(tensors, group_size):
    """W[n, k] = scales[k // g, n] * (u[k, n] - (zero_nibble + 1)) for every <p>.qweight (4-bit only)."""
    dense = {}
    shifts = np.arange(0, 32, 4, dtype=np.uint32)
    for name in [k[:-len(".qweight")] for k in tensors if k.endswith(".qweight")]:
        qw = tensors[name + ".qweight"].numpy().view(np.uint32)            # [K/8, N]
        qz = tensors[name + ".qzeros"].numpy().view(np.uint32)             # [K/g, N/8]
        sc = tensors[name + ".scales"].numpy().astype(np.float32)          # [K/g, N]
        u = ((qw[:, None, :] >> shifts[None, :, None]) & 0xF).reshape(-1, qw.shape[1])          # [K, N]
        z = ((qz[:, :, None] >> shifts[None, None, :]) & 0xF).reshape(qz.shape[0], -1) + 1       # [K/g, N]
        k_idx = np.arange(u.shape[0]) // group_size
        w = sc[k_idx] * (u.astype(np.float32) - z[k_idx].astype(np.float32))
        dense[name + ".weight"] = torch.from_numpy(np.ascontiguousarray(w.T))
    return dense


def plain_model_logits(ckpt, ids):
    """float32 Qwen3ForCausalLM with our own dequantization of the checkpoint."""
    config = AutoConfig.from_pretrained(str(ckpt))
    qc = config.quantization_config
    group_size = qc["group_size"] if isinstance(qc, dict) else qc.group_size
    del config.quantization_config
    config._attn_implementation = "eager"
    model = Qwen3ForCausalLM(config).float().eval()
    tensors = read_tensors(ckpt)
    state = {k: v.float() for k, v in tensors.items() if not k.endswith((".qweight", ".qzeros", ".scales", ".g_idx"))}
    state.update(dequantize_4bit(tensors, group_size))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise SystemExit(f"plain model: missing {missing}, unexpected {unexpected}")
    if config.tie_word_embeddings:
        model.tie_weights()
    with torch.no_grad():
        return model(torch.from_numpy(ids).long()[None]).logits[0].float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=str(REPO / "tests/data/qwen3/untied"))
    ap.add_argument("--out", default=str(REPO / "tests/data/interop/ours_rtn"))
    ap.add_argument("--omniround", default=None, help="our binary; quantizes SOURCE into OUT/model with --rtn")
    ap.add_argument("--requantize", action="store_true")
    ap.add_argument("--tokens", type=int, default=40)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    ckpt = out / "model"
    if args.omniround and (args.requantize or not ckpt.exists()):
        if ckpt.exists():
            shutil.rmtree(ckpt)
        out.mkdir(parents=True, exist_ok=True)
        cmd = [args.omniround, "quantize", args.source, "-o", str(ckpt), "--rtn"]
        print("running:", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True)
    if not ckpt.exists():
        raise SystemExit(f"{ckpt} does not exist (pass --omniround BIN to make it)")

    config = AutoConfig.from_pretrained(str(ckpt))
    ids = fixed_ids(config.vocab_size, args.tokens)
    summary = {"checkpoint": str(ckpt), "torch": torch.__version__, "transformers": version("transformers"),
               "auto-round": version("auto-round")}
    try:
        model = AutoModelForCausalLM.from_pretrained(str(ckpt), device_map="cpu").eval()
    except Exception as e:  # the finding is the exact failure
        summary["load_error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(summary, indent=2))
        sys.exit(1)
    q_proj = model.model.layers[0].self_attn.q_proj
    summary["linear_class"] = f"{type(q_proj).__module__}.{type(q_proj).__name__}"
    summary["loaded_dtype"] = str(model.dtype)
    x = torch.from_numpy(ids).long()[None]
    with torch.no_grad():
        logits_default = model(x).logits[0].float()
        # transformers refuses .float() on quantized models; nn.Module.float casts the fp16 scales and the
        # embeddings/norms (all exact in f32) without touching the packed int32 tensors.
        torch.nn.Module.float(model)
        logits = model(x).logits[0].float()
    plain = plain_model_logits(ckpt, ids)
    summary["rel_f32_vs_own_dequant"] = rel(logits, plain)
    summary["rel_default_dtype_vs_f32"] = rel(logits_default, logits)
    save_file({"input_ids": torch.from_numpy(ids).contiguous(), "logits": logits.contiguous()},
              str(out / "transformers_logits.safetensors"))
    print(json.dumps(summary, indent=2))
    if summary["rel_f32_vs_own_dequant"] > 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main()
