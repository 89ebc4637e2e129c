#!/usr/bin/env python3
"""Block-gradient golden fixtures for the C++ AutoRound backward passes (issue 3, item 2b).

Writes tests/data/autoround/block_sym/ (bits 4, group 128, full-range symmetric) and block_asym/ (bits 4,
group 64, asymmetric), each with config.json, scheme.json and block.safetensors, per the shared contract:

  model.layers.0.<...>            block weights (HF names), values rounded to BF16, stored F32
  <p>.v, <p>.alpha, <p>.beta      trainable parameters at non-trivial values (V ~ U(-0.3, 0.3),
                                  alpha/beta ~ U(0.55, 1.0), inside [0, 1] so the clamp is inactive)
  <p>.weight_qdq                  the fake-quant weight W^ (f32, not rounded to BF16)
  <p>.grad_v/.grad_alpha/.grad_beta  dL/d. from PyTorch autograd through the STE QDQ (tools/autoround_torch.py)
  x, y_ref, y_q, loss, grad_x     block input [B, T, D], target, quantized block output, masked MSE, dL/dx

y_ref is the unquantized block applied to x + 0.05*noise, so the loss has a component the weights cannot
explain and all gradients are non-trivial. Positions 0..T-1 in every sample, causal attention, no padding,
eager attention, float32 throughout, one thread. Deterministic: re-running writes byte-identical files.

Usage: /work/venv/bin/python tools/make_block_grad_fixtures.py [--out tests/data/autoround]
"""

import argparse
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen3Config
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autoround_torch as art  # noqa: E402

CONFIG = dict(vocab_size=64, hidden_size=128, num_hidden_layers=1, num_attention_heads=2, head_dim=64,
              num_key_value_heads=1, intermediate_size=256, rms_norm_eps=1e-6, rope_theta=10000.0,
              max_position_embeddings=64, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
              pad_token_id=0)
# Keys written to config.json (what transformers needs to rebuild the block and omni::load_qwen3_config reads).
CONFIG_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim",
               "num_key_value_heads", "intermediate_size", "hidden_act", "rms_norm_eps", "rope_parameters",
               "max_position_embeddings", "tie_word_embeddings", "attention_bias", "bos_token_id",
               "eos_token_id", "pad_token_id", "layer_types")
BATCH, SEQ = 2, 24
# name -> (bits, group_size, sym, seed)
FIXTURES = {
    "block_sym": (4, 128, True, 31337),
    "block_asym": (4, 64, False, 4242),
}
PREFIX = "model.layers.0."


def bf16_round(t):
    return t.to(torch.bfloat16).to(torch.float32)


def make_config():
    config = Qwen3Config(**CONFIG)
    config._attn_implementation = "eager"
    return config


def build_layer(config, gen):
    """A Qwen3DecoderLayer with BF16-representable random weights: Linear N(0, 1/fan_in), norms U(0.6, 1.4)."""
    layer = Qwen3DecoderLayer(config, layer_idx=0).float().eval()
    with torch.no_grad():
        for name, p in layer.named_parameters():
            if p.dim() == 1:
                p.copy_(bf16_round(0.6 + 0.8 * torch.rand(p.shape, generator=gen)))
            else:
                p.copy_(bf16_round(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5))
    return layer


def make_fixture(out_dir, bits, group_size, sym, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = make_config()
    layer = build_layer(config, gen)
    weights = {PREFIX + n: p.detach().clone() for n, p in layer.named_parameters()}

    x = torch.randn(BATCH, SEQ, config.hidden_size, generator=gen)
    x_ref_input = x + 0.05 * torch.randn(x.shape, generator=gen)
    kwargs = art.block_kwargs(config, BATCH, SEQ)
    with torch.no_grad():
        y_ref = art.run_block(layer, x_ref_input, kwargs)

    wrapped = art.wrap_decoder_layer(layer, bits=bits, group_size=group_size, sym=sym)
    with torch.no_grad():
        for w in wrapped.values():
            w.v.copy_(-0.3 + 0.6 * torch.rand(w.v.shape, generator=gen))
            w.alpha.copy_(0.55 + 0.45 * torch.rand(w.alpha.shape, generator=gen))
            w.beta.copy_(0.55 + 0.45 * torch.rand(w.beta.shape, generator=gen))

    for w in wrapped.values():
        w.keep_weight_grad = True
    x_in = x.clone().requires_grad_(True)
    y_q = art.run_block(layer, x_in, kwargs)
    loss = art.masked_mse_mean(y_q, y_ref)
    loss.backward()

    tensors = dict(weights)
    for name, w in wrapped.items():
        p = PREFIX + name
        tensors[p + ".v"] = w.v.detach().clone()
        tensors[p + ".alpha"] = w.alpha.detach().clone()
        tensors[p + ".beta"] = w.beta.detach().clone()
        with torch.no_grad():
            tensors[p + ".weight_qdq"] = w.qdq_weight().clone()
        tensors[p + ".grad_v"] = w.v.grad.detach().clone()
        tensors[p + ".grad_alpha"] = w.alpha.grad.detach().clone()
        tensors[p + ".grad_beta"] = w.beta.grad.detach().clone()
        # The autograd graph must agree with the hand-written section-2 formulas the C++ side implements.
        for g, ref in zip(("grad_v", "grad_alpha", "grad_beta"), art.explicit_grads(w, w.last_weight_qdq.grad)):
            got = tensors[p + "." + g]
            if not torch.any(got != 0):
                raise RuntimeError(f"{p}.{g} is all zero: fixture would not test anything")
            rel = ((got - ref).norm() / ref.norm()).item()
            if rel > 1e-5:
                raise RuntimeError(f"{p}.{g}: autograd vs explicit formula differ, relative {rel:.3g}")
    tensors["x"] = x.clone()
    tensors["y_ref"] = y_ref.detach().clone()
    tensors["y_q"] = y_q.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()
    tensors["grad_x"] = x_in.grad.detach().clone()
    tensors = {k: v.contiguous().to(torch.float32) for k, v in sorted(tensors.items())}

    out_dir.mkdir(parents=True, exist_ok=True)
    full = config.to_dict()
    cfg = {k: full[k] for k in CONFIG_KEYS}
    cfg["architectures"] = ["Qwen3ForCausalLM"]
    cfg["dtype"] = "float32"
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    scheme = {"bits": bits, "group_size": group_size, "sym": sym, "batch": BATCH, "seq": SEQ,
              "loss": "masked_mse_mean"}
    (out_dir / "scheme.json").write_text(json.dumps(scheme, indent=2) + "\n")
    save_file(tensors, str(out_dir / "block.safetensors"))
    return loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/data/autoround"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name, (bits, gs, sym, seed) in FIXTURES.items():
        loss = make_fixture(Path(args.out) / name, bits, gs, sym, seed)
        print(f"{name}: bits {bits} group {gs} sym {sym} loss {loss:.6g}")


if __name__ == "__main__":
    main()
