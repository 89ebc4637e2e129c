#!/usr/bin/env python3
"""Golden fixtures for the C++ engine's second architecture, Qwen2ForCausalLM (BF16 and W4A16).

Writes, under tests/data/qwen2/:

  bias/          random Qwen2ForCausalLM in BF16 (save_pretrained: config.json, model.safetensors), q/k/v biases,
                 no q/k norm, untied lm_head, vocab 8192 = models/tiny-qwen3's tokenizer (copied in, with
                 tokenizer_config.json and generation_config.json), + golden.safetensors
  bias-w4a16/    the same model as an auto_round W4A16 checkpoint (packing auto_round:auto_gptq, group 128, sym),
                 packed by the independent numpy packer of tools/make_qwen3_fixtures.py; the q/k/v biases are
                 stored as `<layer>.bias` F16 [N] (what auto_round / auto_gptq QuantLinear writes), + golden
                 computed from the dequantized weights and the F16 biases

golden.safetensors has exactly the fields of the Qwen3 fixtures (see tools/make_qwen3_fixtures.py):
  input_ids I32 [T], logits F32 [T, V], hidden_states F32 [L+1, T, D] ([0] embeddings, [i] raw output of decoder
  layer i-1, no final norm), final_hidden F32 [T, D], greedy_ids I32 [32], greedy_top2_gap F32 [32].
All goldens: float32, eager attention, from the exact weights the checkpoint encodes.

Unlike Qwen3's defaults, transformers initialises every bias to 0 and every RMSNorm weight to 1: all of them are
overwritten with seeded random values here so nothing is tested on zeros / ones.

The packer, golden computation and self-checks are imported from tools/make_qwen3_fixtures.py (not modified).
Deterministic: seeded, single-threaded torch; re-running rewrites byte-identical files.

Usage: venv/bin/python tools/make_qwen2_fixtures.py [--out tests/data/qwen2]
"""

import argparse
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER_DIR = ROOT / "models/tiny-qwen3"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "generation_config.json")


def _load_qwen3_tools():
    sys.dont_write_bytecode = True  # leave no tools/__pycache__ behind
    spec = importlib.util.spec_from_file_location("make_qwen3_fixtures", Path(__file__).with_name(
        "make_qwen3_fixtures.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


q3 = _load_qwen3_tools()
GROUP_SIZE = q3.GROUP_SIZE
BITS = q3.BITS

SPECIAL_IDS = (8189, 8190, 8191)  # <|endoftext|>, <|im_start|>, <|im_end|> of models/tiny-qwen3/tokenizer.json
CONFIG = dict(
    vocab_size=8192, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, tie_word_embeddings=False, rms_norm_eps=1e-6,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0}, max_position_embeddings=512,
    use_sliding_window=False, bos_token_id=8189, eos_token_id=8189, pad_token_id=8189,
)
PROMPT_LEN = 20
SEED = 2025
# Init: embeddings N(0, EMBED_STD^2), Linear N(0, LINEAR_GAIN^2 / fan_in), lm_head N(0, HEAD_STD^2),
# q/k/v biases N(0, BIAS_STD^2), RMSNorm weights 1 + N(0, NORM_STD^2). Picked so that the layer outputs stay O(1),
# the greedy continuation does not collapse onto a loop and its top-2 gaps stay well above 1e-4.
EMBED_STD, LINEAR_GAIN, HEAD_STD, BIAS_STD, NORM_STD = 1.0, 1.0, 0.5, 0.5, 0.2


# ----------------------------------------------------------------------------------------------------------
# Model construction
# ----------------------------------------------------------------------------------------------------------

def make_config():
    config = Qwen2Config(**CONFIG)
    config._attn_implementation = "eager"
    assert config.hidden_size // config.num_attention_heads == 32
    return config


def build_model(seed):
    """Random Qwen2 with BF16-representable weights, no zero biases, no unit norm weights."""
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(make_config()).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias"):
                assert any(f"self_attn.{proj}.bias" in name for proj in ("q_proj", "k_proj", "v_proj")), name
                p.copy_(torch.randn(p.shape, generator=gen) * BIAS_STD)
            elif p.dim() == 1:
                assert "norm" in name, name  # input_layernorm, post_attention_layernorm, model.norm
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * NORM_STD)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * EMBED_STD)
            elif "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * HEAD_STD)
            else:
                fan_in = p.shape[1]
                p.copy_(torch.randn(p.shape, generator=gen) * (LINEAR_GAIN / fan_in ** 0.5))
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    names = [n for n, _ in model.named_parameters()]
    assert not any("q_norm" in n or "k_norm" in n for n in names)
    assert sum(n.endswith(".bias") for n in names) == 3 * CONFIG["num_hidden_layers"]
    return model.float()


def copy_tokenizer_files(out_dir):
    for f in TOKENIZER_FILES:
        shutil.copyfile(TOKENIZER_DIR / f, out_dir / f)


def save_bf16_checkpoint(model, out_dir):
    if out_dir.exists():
        shutil.rmtree(out_dir)
    bf16 = Qwen2ForCausalLM(model.config).eval()
    bf16.load_state_dict(model.state_dict())
    bf16 = bf16.to(torch.bfloat16)
    bf16.save_pretrained(out_dir, safe_serialization=True)
    copy_tokenizer_files(out_dir)  # replaces the generation_config.json save_pretrained wrote


# ----------------------------------------------------------------------------------------------------------
# W4A16 checkpoint (auto_round, packing auto_round:auto_gptq) with F16 biases
# ----------------------------------------------------------------------------------------------------------

def f16_bias(value):
    """The bias as the quantized checkpoint stores it (F16); the BF16 values must survive the conversion."""
    h = value.to(torch.float16)
    assert torch.equal(h.to(torch.float32), value), "a BF16 bias is not exactly representable in F16"
    return h.contiguous()


def write_quantized_checkpoint(model, bf16_dir, out_dir):
    """Returns ({linear name: f32 weight}, {linear name: f32 bias}) that the golden must use."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    state = model.state_dict()
    quantized = q3.linear_names(model)
    assert len(quantized) == 7 * CONFIG["num_hidden_layers"]

    tensors, used_weights, used_biases = {}, {}, {}
    for name, value in state.items():
        base, _, kind = name.rpartition(".")
        if base in quantized and kind == "weight":
            packed, w_hat = q3.pack_linear(value.numpy().astype(np.float32), zero_nibble=7)
            for suffix, arr in packed.items():
                tensors[f"{base}.{suffix}"] = torch.from_numpy(arr)
            used_weights[base] = w_hat
        elif base in quantized and kind == "bias":
            tensors[name] = f16_bias(value)
            used_biases[base] = tensors[name].to(torch.float32).numpy()
        else:
            tensors[name] = value.to(torch.bfloat16).contiguous()
    save_file(dict(sorted(tensors.items())), str(out_dir / "model.safetensors"), metadata={"format": "pt"})

    cfg = json.loads((bf16_dir / "config.json").read_text())
    qcfg = {  # exactly what tools/make_qwen3_fixtures.py writes for its *-w4a16 fixtures
        "quant_method": "auto-round",
        "packing_format": "auto_round:auto_gptq",
        "bits": BITS, "group_size": GROUP_SIZE, "sym": True, "data_type": "int",
        "block_name_to_quantize": "model.layers",
        "autoround_version": q3.AUTOROUND_VERSION,
    }
    cfg["quantization_config"] = qcfg
    q3.write_json(out_dir / "config.json", cfg)
    q3.write_json(out_dir / "quantization_config.json", qcfg)
    copy_tokenizer_files(out_dir)

    q3.self_check_packed(out_dir, model, used_weights, [], zero_offset=1)
    stored = load_file(str(out_dir / "model.safetensors"))
    for base, b in used_biases.items():
        t = stored[base + ".bias"]
        assert t.dtype == torch.float16 and t.shape == (state[base + ".weight"].shape[0],)
        assert np.array_equal(t.to(torch.float32).numpy(), b)
    assert sorted(used_biases) == sorted(n for n in quantized if n.rsplit(".", 1)[1] in ("q_proj", "k_proj", "v_proj"))
    return used_weights, used_biases


def model_with_weights(model, weights, biases):
    clone = Qwen2ForCausalLM(model.config).eval().float()
    clone.load_state_dict(model.state_dict())
    with torch.no_grad():
        for layer, w in weights.items():
            clone.get_submodule(layer).weight.copy_(torch.from_numpy(w))
        for layer, b in biases.items():
            clone.get_submodule(layer).bias.copy_(torch.from_numpy(b))
    return clone


def reload_check(bf16_dir, golden):
    """The saved BF16 checkpoint, reloaded by transformers' Auto class, must reproduce the golden logits."""
    reloaded = AutoModelForCausalLM.from_pretrained(bf16_dir, dtype=torch.float32,
                                                    attn_implementation="eager").eval()
    assert type(reloaded).__name__ == "Qwen2ForCausalLM"
    with torch.no_grad():
        logits = reloaded(golden["input_ids"].long()[None], use_cache=False).logits[0]
    assert torch.equal(logits, golden["logits"]), f"{bf16_dir}: reloaded logits differ"


def layer_stats(golden):
    h = golden["hidden_states"]
    return ", ".join(f"{float(x.pow(2).mean().sqrt()):.2f}" for x in h)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "tests/data/qwen2"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # reproducible float summation order
    torch.use_deterministic_algorithms(True)

    model = build_model(SEED)
    rng = np.random.default_rng(SEED)
    input_ids = rng.integers(0, min(SPECIAL_IDS), size=PROMPT_LEN).tolist()  # no special tokens in the prompt

    bf16_dir = out / "bias"
    save_bf16_checkpoint(model, bf16_dir)
    golden = q3.compute_golden(model, input_ids)
    q3.save_golden(golden, bf16_dir / "golden.safetensors")
    reload_check(bf16_dir, golden)
    q3.describe("bias", golden)
    print(f"    hidden_states rms per entry: {layer_stats(golden)}; "
          f"{len(set(golden['greedy_ids'].tolist()))} distinct greedy ids")

    qdir = out / "bias-w4a16"
    weights, biases = write_quantized_checkpoint(model, bf16_dir, qdir)
    qgolden = q3.compute_golden(model_with_weights(model, weights, biases), input_ids)
    q3.save_golden(qgolden, qdir / "golden.safetensors")
    rel = (qgolden["logits"] - golden["logits"]).norm() / golden["logits"].norm()
    print(f"    bias-w4a16: {len(weights)} Linears packed, {len(biases)} F16 biases; "
          f"logits rel. diff vs BF16 {rel:.4f}")
    q3.describe("bias-w4a16", qgolden)
    print(f"    hidden_states rms per entry: {layer_stats(qgolden)}; "
          f"{len(set(qgolden['greedy_ids'].tolist()))} distinct greedy ids")


if __name__ == "__main__":
    main()
