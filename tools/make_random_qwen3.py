#!/usr/bin/env python3
"""A random-weight Qwen3ForCausalLM checkpoint of a chosen shape, for speed benchmarks (not for quality).

Weights are N(0, 0.02) in BF16 (norm weights 1 + N(0, 0.1)), written with the safetensors package in the
Hugging Face layout, with the shipped tiny model's tokenizer files copied beside them (vocab 8192).

Usage: venv/bin/python tools/make_random_qwen3.py OUT_DIR [--hidden 1024] [--intermediate 3072] [--layers 8]
       [--heads 16] [--kv-heads 8] [--head-dim 128] [--seed 0]
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "models" / "tiny-qwen3"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--intermediate", type=int, default=3072)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--heads", type=int, default=16)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((TINY / "config.json").read_text())
    config.update(hidden_size=a.hidden, intermediate_size=a.intermediate, num_hidden_layers=a.layers,
                  num_attention_heads=a.heads, num_key_value_heads=a.kv_heads, head_dim=a.head_dim,
                  layer_types=["full_attention"] * a.layers, tie_word_embeddings=True)
    V, D, I, hd = config["vocab_size"], a.hidden, a.intermediate, a.head_dim
    rng = np.random.default_rng(a.seed)

    def w(*shape, mean=0.0, std=0.02):
        return torch.from_numpy(rng.normal(mean, std, size=shape).astype(np.float32)).to(torch.bfloat16)

    t = {"model.embed_tokens.weight": w(V, D), "model.norm.weight": w(D, mean=1.0, std=0.1)}
    for l in range(a.layers):
        p = f"model.layers.{l}."
        t[p + "input_layernorm.weight"] = w(D, mean=1.0, std=0.1)
        t[p + "post_attention_layernorm.weight"] = w(D, mean=1.0, std=0.1)
        t[p + "self_attn.q_norm.weight"] = w(hd, mean=1.0, std=0.1)
        t[p + "self_attn.k_norm.weight"] = w(hd, mean=1.0, std=0.1)
        t[p + "self_attn.q_proj.weight"] = w(a.heads * hd, D)
        t[p + "self_attn.k_proj.weight"] = w(a.kv_heads * hd, D)
        t[p + "self_attn.v_proj.weight"] = w(a.kv_heads * hd, D)
        t[p + "self_attn.o_proj.weight"] = w(D, a.heads * hd)
        t[p + "mlp.gate_proj.weight"] = w(I, D)
        t[p + "mlp.up_proj.weight"] = w(I, D)
        t[p + "mlp.down_proj.weight"] = w(D, I)
    save_file(t, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        shutil.copy(TINY / f, out / f)
    print(f"wrote {out}: {sum(x.numel() for x in t.values()) / 1e6:.1f}M parameters")


if __name__ == "__main__":
    main()
