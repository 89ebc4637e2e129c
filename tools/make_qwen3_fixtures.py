#!/usr/bin/env python3
"""Golden fixtures for the C++ Qwen3 engine (BF16 and W4A16).

For each small random Qwen3ForCausalLM config this writes, under tests/data/qwen3/:

  <name>/                 BF16 checkpoint (save_pretrained: config.json, model.safetensors) + golden.safetensors
  <name>-w4a16/           auto_round checkpoint (packing auto_round:auto_gptq), packed by the independent
                          packer below, + golden.safetensors computed from the dequantized weights
  untied-w4a16-gptq/      (untied only) auto_gptq layout, quant_method "gptq", g_idx, real zero 8 in qzeros,
                          model.layers.0.mlp.down_proj kept BF16 via extra_config

Every golden is computed in float32 (eager attention) from the exact weights the checkpoint encodes.
golden.safetensors holds:
  input_ids          I32 [T]
  logits             F32 [T, V]       full-sequence logits of input_ids
  hidden_states      F32 [L+1, T, D]  [0] = embeddings, [i] = raw output of decoder layer i-1 (NO final norm,
                                      also for the last layer; HF's output_hidden_states normalises the last one)
  final_hidden       F32 [T, D]       model.norm(hidden_states[L]) (what HF returns as hidden_states[-1])
  greedy_ids         I32 [32]         greedy continuation of input_ids (full recompute each step)
  greedy_top2_gap    F32 [32]         top1 - top2 logit at each generated step (near-tie tolerance)

The packer here follows AUTOROUND.md sections 2 and 5 directly and shares no code with the C++ tree.
Deterministic: seeded, single-threaded; re-running rewrites byte-identical files.

Usage: /work/venv/bin/python tools/make_qwen3_fixtures.py [--out tests/data/qwen3]
"""

import argparse
import json
import os
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen3Config, Qwen3ForCausalLM

GROUP_SIZE = 128
BITS = 4
MAXQ = 2 ** (BITS - 1)  # 8: full-range symmetric maps the dominant extreme to -8
GREEDY_STEPS = 32
AUTOROUND_VERSION = "omniround-fixture"

# name -> (config kwargs, prompt length, seed, config.json style, init scales)
# config.json style "v5" keeps transformers' rope_parameters; "v4" rewrites it to a top-level rope_theta +
# rope_scaling null, as the released Qwen3 checkpoints on the Hub are written, so both parser paths are covered.
# Init scales (embedding std, Linear std * sqrt(fan_in), lm_head std) were picked so that the greedy continuation
# does not collapse onto one repeated token and its top-2 gaps stay well above 1e-4.
FIXTURES = {
    "tied": (
        dict(vocab_size=512, hidden_size=128, num_hidden_layers=2, num_attention_heads=4, head_dim=64,
             num_key_value_heads=2, intermediate_size=384, tie_word_embeddings=True, rope_theta=10000.0,
             rms_norm_eps=1e-6, max_position_embeddings=256),
        29, 1234, "v5", (1.0, 3.0, None)),
    "untied": (
        dict(vocab_size=640, hidden_size=256, num_hidden_layers=2, num_attention_heads=4, head_dim=64,
             num_key_value_heads=1, intermediate_size=384, tie_word_embeddings=False, rope_theta=1e6,
             rms_norm_eps=1e-5, max_position_embeddings=256),
        37, 5678, "v4", (0.5, 1.0, 0.5)),
}
GPTQ_BF16_LAYER = "model.layers.0.mlp.down_proj"


# ----------------------------------------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------------------------------------

def build_model(cfg_kwargs, seed, scales):
    """Random Qwen3 with BF16-representable weights; the std is large enough for non-trivial activations."""
    torch.manual_seed(seed)
    config = Qwen3Config(**cfg_kwargs, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    config._attn_implementation = "eager"
    model = Qwen3ForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(seed)
    embed_std, linear_gain, head_std = scales
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                # RMSNorm / q_norm / k_norm weights: random around 1 so a missing multiply is caught.
                p.copy_(torch.empty(p.shape).uniform_(0.6, 1.4, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * embed_std)
            elif "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * head_std)
            else:
                fan_in = p.shape[1]
                p.copy_(torch.randn(p.shape, generator=gen) * (linear_gain / fan_in ** 0.5))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model.float()


def linear_names(model):
    """Every Linear inside model.layers (the quantized set), in module order."""
    return [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and n.startswith("model.layers.")]


# ----------------------------------------------------------------------------------------------------------
# Goldens
# ----------------------------------------------------------------------------------------------------------

@torch.no_grad()
def compute_golden(model, input_ids):
    ids = torch.tensor(input_ids, dtype=torch.long)[None]
    layer_out = {}

    def keep(i):
        def hook(_mod, _inp, out):
            layer_out[i] = (out[0] if isinstance(out, tuple) else out)[0].clone()
        return hook

    handles = [layer.register_forward_hook(keep(i)) for i, layer in enumerate(model.model.layers)]
    out = model(ids, output_hidden_states=True, use_cache=False)
    for h in handles:
        h.remove()
    n_layers = len(model.model.layers)
    hidden = [out.hidden_states[0][0]] + [layer_out[i] for i in range(n_layers)]
    # HF's intermediate entries are the raw layer outputs; its last one is normalised. Check both claims.
    for i in range(1, n_layers):
        assert torch.equal(out.hidden_states[i][0], hidden[i])
    final_hidden = model.model.norm(hidden[-1])
    assert torch.allclose(out.hidden_states[-1][0], final_hidden, rtol=0, atol=1e-6)

    seq = ids
    greedy, gaps = [], []
    for _ in range(GREEDY_STEPS):
        last = model(seq, use_cache=False).logits[0, -1]
        top2 = torch.topk(last, 2)
        greedy.append(int(top2.indices[0]))
        gaps.append(float(top2.values[0] - top2.values[1]))
        seq = torch.cat([seq, top2.indices[:1].view(1, 1)], dim=1)

    return {
        "input_ids": torch.tensor(input_ids, dtype=torch.int32),
        "logits": out.logits[0].float().contiguous(),
        "hidden_states": torch.stack(hidden).float().contiguous(),
        "final_hidden": final_hidden.float().contiguous(),
        "greedy_ids": torch.tensor(greedy, dtype=torch.int32),
        "greedy_top2_gap": torch.tensor(gaps, dtype=torch.float32),
    }


# ----------------------------------------------------------------------------------------------------------
# Independent W4A16 packer (AUTOROUND.md sections 2 and 5), numpy only
# ----------------------------------------------------------------------------------------------------------

def rtn_full_range_sym(w):
    """w: f32 [N, K]. Returns (q int8 [N, K] in [-8, 7], s f16 [N, K/g], w_hat f32 [N, K])."""
    n_out, k_in = w.shape
    assert k_in % GROUP_SIZE == 0, "fixture shapes keep K a multiple of the group size"
    groups = w.reshape(n_out, k_in // GROUP_SIZE, GROUP_SIZE)
    wmin = np.minimum(groups.min(axis=2), 0.0)
    wmax = np.maximum(groups.max(axis=2), 0.0)
    m = -wmin
    big_m = wmax
    s = np.where(big_m < m, m / MAXQ, -big_m / MAXQ).astype(np.float32)
    s = s.astype(np.float16).astype(np.float32)  # the scale is stored as fp16; quantize against that value
    tiny = np.abs(s) < 1e-5
    s = np.where(tiny, np.where(np.signbit(s), -1e-5, 1e-5), s).astype(np.float32)
    s = s.astype(np.float16)
    s32 = s.astype(np.float32)[:, :, None]
    q = np.clip(np.rint(groups / s32), -MAXQ, MAXQ - 1)  # np.rint: round half to even
    w_hat = (s32 * q).astype(np.float32).reshape(n_out, k_in)
    return q.astype(np.int8).reshape(n_out, k_in), s, w_hat


def pack_rows_of_nibbles(u):
    """u: uint [R*8, C] values 0..15 -> int32 [R, C], row 8r+j in bits 4j..4j+3 of word r."""
    rows, cols = u.shape
    assert rows % 8 == 0
    u = u.astype(np.uint32).reshape(rows // 8, 8, cols)
    words = np.zeros((rows // 8, cols), dtype=np.uint32)
    for j in range(8):
        words |= u[:, j, :] << np.uint32(4 * j)
    return words.view(np.int32)


def pack_linear(w, zero_nibble):
    """Pack one Linear [N, K]. zero_nibble: 7 (stored zero - 1, auto_round) or 8 (real zero, some gptq files)."""
    n_out, k_in = w.shape
    q, s, w_hat = rtn_full_range_sym(w)
    u = (q.astype(np.int32) + MAXQ).T  # [K, N], 0..15
    qweight = pack_rows_of_nibbles(u)
    zeros = np.full((n_out, k_in // GROUP_SIZE), zero_nibble, dtype=np.uint32)
    qzeros = pack_rows_of_nibbles(zeros).T.copy()  # nibble order runs along N: [K/g, N/8]
    scales = np.ascontiguousarray(s.T)  # [K/g, N]
    return {"qweight": qweight, "qzeros": qzeros, "scales": scales}, w_hat


def unpack_nibbles(words):
    """int32 [R, C] -> uint8 [R*8, C], inverse of pack_rows_of_nibbles (written separately on purpose)."""
    w = words.view(np.uint32)
    out = np.empty((w.shape[0] * 8, w.shape[1]), dtype=np.uint8)
    for j in range(8):
        out[j::8] = (w >> np.uint32(4 * j)) & np.uint32(0xF)
    return out


def dequantize_from_file(tensors, prefix, zero_offset):
    """Loader-style dequantization: W[n, k] = scales[k/g, n] * (u[k, n] - zero), zero = nibble + zero_offset."""
    u = unpack_nibbles(tensors[prefix + ".qweight"]).astype(np.float32)  # [K, N]
    zero_nibbles = unpack_nibbles(np.ascontiguousarray(tensors[prefix + ".qzeros"].T)).T.astype(np.float32)
    scales = tensors[prefix + ".scales"].astype(np.float32)  # [K/g, N]
    k_in = u.shape[0]
    group = np.arange(k_in) // GROUP_SIZE
    zero = zero_nibbles[group] + zero_offset  # [K, N]
    return (scales[group] * (u - zero)).T.astype(np.float32)  # [N, K]


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------

def write_json(path, obj):
    path.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def rewrite_config_v4_style(config_path):
    """Released Qwen3 checkpoints carry top-level rope_theta + rope_scaling; exercise that spelling too."""
    cfg = json.loads(config_path.read_text())
    rope = cfg.pop("rope_parameters")
    assert rope.get("rope_type", "default") == "default"
    cfg["rope_theta"] = rope["rope_theta"]
    cfg["rope_scaling"] = None
    write_json(config_path, cfg)


def save_bf16_checkpoint(model, out_dir, style):
    if out_dir.exists():
        shutil.rmtree(out_dir)
    bf16 = Qwen3ForCausalLM(model.config).eval()
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    bf16.save_pretrained(out_dir, safe_serialization=True)
    if style == "v4":
        rewrite_config_v4_style(out_dir / "config.json")


def save_golden(golden, path):
    save_file({k: v.contiguous() for k, v in golden.items()}, str(path), metadata={"format": "pt"})


def write_quantized_checkpoint(model, bf16_dir, out_dir, layout):
    """layout "auto_round" (zero-1 = 7 in qzeros) or "gptq" (real zero 8, g_idx, one layer kept 16-bit).

    Returns {linear name: f32 weight the golden must use}."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    state = model.state_dict()
    quantized = linear_names(model)
    kept_16bit = [GPTQ_BF16_LAYER] if layout == "gptq" else []
    zero_nibble = 8 if layout == "gptq" else 7

    tensors = {}
    used_weights = {}
    for name, value in state.items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue  # tied: only embed_tokens is stored, as save_pretrained does
        layer = name[: -len(".weight")] if name.endswith(".weight") else None
        if layer in quantized and layer not in kept_16bit:
            packed, w_hat = pack_linear(value.numpy().astype(np.float32), zero_nibble)
            for suffix, arr in packed.items():
                tensors[f"{layer}.{suffix}"] = torch.from_numpy(arr)
            if layout == "gptq":
                k_in = value.shape[1]
                tensors[f"{layer}.g_idx"] = torch.arange(k_in, dtype=torch.int32) // GROUP_SIZE
            used_weights[layer] = w_hat
        else:
            tensors[name] = value.to(torch.bfloat16).contiguous()
    save_file(dict(sorted(tensors.items())), str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    cfg = json.loads((bf16_dir / "config.json").read_text())
    if layout == "auto_round":
        qcfg = {
            "quant_method": "auto-round",
            "packing_format": "auto_round:auto_gptq",
            "bits": BITS, "group_size": GROUP_SIZE, "sym": True, "data_type": "int",
            "block_name_to_quantize": "model.layers",
            "autoround_version": AUTOROUND_VERSION,
        }
    else:
        qcfg = {
            "quant_method": "gptq",
            "bits": BITS, "group_size": GROUP_SIZE, "sym": True, "data_type": "int",
            "desc_act": False, "true_sequential": False, "damp_percent": 0.01,
            "block_name_to_quantize": "model.layers",
            "autoround_version": AUTOROUND_VERSION,
            "extra_config": {GPTQ_BF16_LAYER: {"bits": 16, "data_type": "fp"}},
        }
    cfg["quantization_config"] = qcfg
    write_json(out_dir / "config.json", cfg)
    write_json(out_dir / "quantization_config.json", qcfg)
    if (bf16_dir / "generation_config.json").exists():
        shutil.copyfile(bf16_dir / "generation_config.json", out_dir / "generation_config.json")

    self_check_packed(out_dir, model, used_weights, kept_16bit, zero_offset=0 if layout == "gptq" else 1)
    return used_weights


def self_check_packed(out_dir, model, used_weights, kept_16bit, zero_offset):
    """Re-read the file with the loader-style dequantizer and compare with the golden's weights bit for bit."""
    # BF16 tensors have no numpy dtype: convert only the packed ones.
    tensors = {k: v.numpy() for k, v in load_file(str(out_dir / "model.safetensors")).items()
               if v.dtype != torch.bfloat16}
    for layer, w_hat in used_weights.items():
        deq = dequantize_from_file(tensors, layer, zero_offset)
        assert deq.shape == w_hat.shape and np.array_equal(deq, w_hat), f"dequantized {layer} differs"
        n_out = w_hat.shape[0]
        assert tensors[layer + ".qzeros"].shape == (w_hat.shape[1] // GROUP_SIZE, n_out // 8)
        s = tensors[layer + ".scales"]
        assert (s < 0).any() and (s > 0).any(), f"{layer}: expected scales of both signs"
        orig = model.state_dict()[layer + ".weight"].numpy()
        # RTN error bound: half a step for codes inside the range, one step where a code sits at a clamp edge
        # (the fp16-rounded scale can push the extreme just past -8 or +7).
        step = np.repeat(np.abs(s.astype(np.float32)).T, GROUP_SIZE, axis=1)
        codes = unpack_nibbles(tensors[layer + ".qweight"]).T.astype(np.int32) - 8
        err = np.abs(orig - w_hat)
        inside = (codes > -8) & (codes < 7)
        assert np.all(err[inside] <= 0.5 * step[inside] * 1.001), f"{layer}: RTN error above half a step"
        assert np.all(err <= step * 1.001), f"{layer}: RTN error above one step"
    for layer in kept_16bit:
        assert layer + ".qweight" not in tensors and layer + ".scales" not in tensors


def model_with_weights(model, replacements):
    clone = Qwen3ForCausalLM(model.config).eval().float()
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer, w in replacements.items():
            clone.get_submodule(layer).weight.copy_(torch.from_numpy(w))
    return clone


def reload_check(bf16_dir, golden):
    """The saved BF16 checkpoint, reloaded by transformers, must reproduce the golden logits."""
    reloaded = Qwen3ForCausalLM.from_pretrained(bf16_dir, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        logits = reloaded(golden["input_ids"].long()[None], use_cache=False).logits[0]
    assert torch.equal(logits, golden["logits"]), f"{bf16_dir}: reloaded logits differ"


def describe(name, golden):
    gap = golden["greedy_top2_gap"]
    logits = golden["logits"]
    print(f"  {name}: T={golden['input_ids'].numel()} logits std {logits.std():.3f}, "
          f"min greedy top2 gap {gap.min():.4g}, greedy ids {golden['greedy_ids'][:12].tolist()}...")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "tests/data/qwen3"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # reproducible float summation order
    torch.use_deterministic_algorithms(True)

    for name, (cfg_kwargs, prompt_len, seed, style, scales) in FIXTURES.items():
        print(f"fixture {name}")
        model = build_model(cfg_kwargs, seed, scales)
        rng = np.random.default_rng(seed)
        input_ids = rng.integers(3, cfg_kwargs["vocab_size"], size=prompt_len).tolist()

        bf16_dir = out / name
        save_bf16_checkpoint(model, bf16_dir, style)
        golden = compute_golden(model, input_ids)
        save_golden(golden, bf16_dir / "golden.safetensors")
        reload_check(bf16_dir, golden)
        describe(name, golden)

        layouts = [("auto_round", f"{name}-w4a16")]
        if name == "untied":
            layouts.append(("gptq", f"{name}-w4a16-gptq"))
        for layout, qname in layouts:
            used = write_quantized_checkpoint(model, bf16_dir, out / qname, layout)
            qgolden = compute_golden(model_with_weights(model, used), input_ids)
            save_golden(qgolden, out / qname / "golden.safetensors")
            rel = (qgolden["logits"] - golden["logits"]).norm() / golden["logits"].norm()
            print(f"    {qname}: {len(used)} Linears packed; logits rel. diff vs BF16 {rel:.4f}")
            describe(qname, qgolden)


if __name__ == "__main__":
    main()
