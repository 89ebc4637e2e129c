#!/usr/bin/env python3
"""A minimal Hugging Face -> GGUF converter for Qwen3ForCausalLM checkpoints (16-bit), for tools/compare_llama_cpp.sh.

llama.cpp's own convert_hf_to_gguf.py wants sentencepiece for any Qwen2/Qwen3 model and then refuses our
byte-level BPE tokenizer (its pre-tokenizer is identified by a hash of known tokenizers' outputs). This script
writes the same kind of file directly with llama.cpp's `gguf` Python package: compare_llama_cpp.sh puts the copy
that ships with the llama.cpp source it builds (vendor/llama.cpp/gguf-py) on PYTHONPATH, so no PyPI `gguf` is
installed. The safetensors files are read here (header + raw bytes, BF16/F16/F32), without torch.

What is written:
- general.architecture = qwen3 and the qwen3.* hyperparameters llama.cpp reads: context_length,
  embedding_length, block_count, feed_forward_length, attention.head_count, attention.head_count_kv,
  attention.key_length, attention.value_length, attention.layer_norm_rms_epsilon, rope.freq_base.
- Tensors, renamed to llama.cpp's names. 2-D weights in --outtype (f16, bf16 or f32), 1-D norm weights in F32
  as llama.cpp's converter keeps them. No Q/K row permutation: llama.cpp applies it only for its LLaMA-style
  (interleaved-pair) rope; qwen2/qwen3 use the NEOX (half-split) rope, the Hugging Face layout as it is.
  A tied model (no lm_head.weight, or tie_word_embeddings) gets no output.weight; llama.cpp then uses
  token_embd.weight as the LM head.
- The tokenizer from tokenizer.json: tokenizer.ggml.model = gpt2 (byte-level BPE), pre = qwen2 (checked: the
  Split regex must be Qwen2's), tokens (ids without a token become [PADn], UNUSED), token types (NORMAL, CONTROL
  for special added tokens, USER_DEFINED for other added ones), merges, bos/eos/pad ids from config.json /
  generation_config.json, add_bos_token from tokenizer_config.json, and its chat template.
  Not carried over: the tokenizer's NFC normalizer (llama.cpp has none for BPE; a no-op on ASCII text).

Usage: PYTHONPATH=.../llama.cpp/gguf-py venv/bin/python tools/hf_to_gguf.py MODEL_DIR OUT.gguf [--outtype f16]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
except ImportError:
    sys.exit("hf_to_gguf: error: the gguf package is not importable; put llama.cpp's gguf-py on PYTHONPATH "
             "(tools/compare_llama_cpp.sh does)")

# Qwen2's pre-tokenizer regex, as in its tokenizer.json; llama.cpp's "qwen2" pre-tokenizer implements it.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")

PER_LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def die(msg):
    sys.exit(f"hf_to_gguf: error: {msg}")


def read_safetensors(model_dir):
    """{name: (dtype string, shape, numpy uint8 view of the bytes)} over all shards, memory-mapped."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        die(f"no *.safetensors in {model_dir}")
    out = {}
    for f in files:
        raw = np.memmap(f, dtype=np.uint8, mode="r")
        n = int.from_bytes(raw[:8].tobytes(), "little")
        header = json.loads(raw[8:8 + n].tobytes())
        base = 8 + n
        for name, info in header.items():
            if name == "__metadata__":
                continue
            if name in out:
                die(f"tensor {name} appears in more than one safetensors file")
            a, b = info["data_offsets"]
            out[name] = (info["dtype"], tuple(info["shape"]), raw[base + a:base + b])
    return out


def to_f32(dtype, shape, data):
    if dtype == "BF16":
        return (data.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if dtype == "F16":
        return data.view(np.float16).astype(np.float32).reshape(shape)
    if dtype == "F32":
        return data.view(np.float32).reshape(shape).copy()
    die(f"unsupported tensor dtype {dtype} (BF16, F16 or F32 checkpoints only)")


def convert_tensor(dtype, shape, data, outtype):
    """(array, raw_dtype) for GGUFWriter.add_tensor; 1-D tensors in F32."""
    if len(shape) == 1 or outtype == "f32":
        return to_f32(dtype, shape, data), None
    if outtype == "bf16":
        if dtype == "BF16":
            return np.array(data.view(np.uint16).reshape(shape)), gguf.GGMLQuantizationType.BF16
        x = to_f32(dtype, shape, data)
        bits = x.view(np.uint32).astype(np.uint64)
        # round to nearest even, as torch's f32 -> bf16 (inputs here are finite weights)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        return bits.astype(np.uint16), gguf.GGMLQuantizationType.BF16
    if dtype == "F16":
        return np.array(data.view(np.float16).reshape(shape)), None
    x = to_f32(dtype, shape, data)
    big = np.abs(x) > 65504
    if big.any():
        print(f"hf_to_gguf: warning: {int(big.sum())} values beyond the F16 range are clamped", file=sys.stderr)
        x = np.clip(x, -65504, 65504)
    return x.astype(np.float16), None


def load_json(path, required=True):
    if not path.exists():
        if required:
            die(f"{path} not found")
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def first_id(v):
    if isinstance(v, list):
        return v[0] if v else None
    return v


def add_tokenizer(w, model_dir, config):
    tok = load_json(model_dir / "tokenizer.json")
    tcfg = load_json(model_dir / "tokenizer_config.json", required=False)
    gcfg = load_json(model_dir / "generation_config.json", required=False)
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        die(f"tokenizer.json model type is {model.get('type')!r}; only byte-level BPE is supported")
    pre = tok.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    regexes = [p.get("pattern", {}).get("Regex") for p in parts if p.get("type") == "Split"]
    if not any(p.get("type") == "ByteLevel" for p in parts):
        die("tokenizer.json has no ByteLevel pre-tokenizer; only GPT-2-style byte-level BPE is supported")
    if regexes != [QWEN2_SPLIT]:
        die(f"the tokenizer's Split regex {regexes} is not Qwen2's; llama.cpp's 'qwen2' pre-tokenizer would "
            "tokenize differently")

    vocab = model["vocab"]
    added = {t["id"]: t for t in tok.get("added_tokens", [])}
    n_vocab = max([config.get("vocab_size", 0), len(vocab)] + [i + 1 for i in added] + [max(vocab.values()) + 1])
    tokens = [None] * n_vocab
    types = [gguf.TokenType.UNUSED] * n_vocab
    for text, i in vocab.items():
        tokens[i] = text
        types[i] = gguf.TokenType.NORMAL
    for i, t in added.items():
        tokens[i] = t["content"]
        types[i] = gguf.TokenType.CONTROL if t.get("special") else gguf.TokenType.USER_DEFINED
    for i in range(n_vocab):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)

    def special(key):
        for src in (gcfg, config):
            if src.get(key) is not None:
                return first_id(src[key])
        return None

    bos, eos, pad = special("bos_token_id"), special("eos_token_id"), special("pad_token_id")
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if pad is not None:
        w.add_pad_token_id(pad)
    w.add_add_bos_token(bool(tcfg.get("add_bos_token", False)))
    w.add_add_eos_token(bool(tcfg.get("add_eos_token", False)))
    if tcfg.get("chat_template"):
        w.add_chat_template(tcfg["chat_template"])
    return n_vocab, len(merges), bos, eos


def main():
    ap = argparse.ArgumentParser(description="Qwen3ForCausalLM (Hugging Face layout) -> GGUF")
    ap.add_argument("model_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--outtype", choices=("f16", "bf16", "f32"), default="f16")
    a = ap.parse_args()

    config = load_json(a.model_dir / "config.json")
    archs = config.get("architectures") or []
    if config.get("model_type") != "qwen3" or archs != ["Qwen3ForCausalLM"]:
        die(f"{a.model_dir} is not a Qwen3ForCausalLM checkpoint (model_type {config.get('model_type')!r}, "
            f"architectures {archs})")
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        die(f"rope_type {rope_type!r} is not supported (default only)")
    theta = rope.get("rope_theta", config.get("rope_theta"))
    if theta is None:
        die("no rope_theta in config.json")
    if config.get("attention_bias"):
        die("attention_bias = true is not supported")
    if config.get("use_sliding_window"):
        die("sliding-window attention is not supported")

    L = config["num_hidden_layers"]
    D = config["hidden_size"]
    H = config["num_attention_heads"]
    KV = config.get("num_key_value_heads", H)
    hd = config.get("head_dim") or D // H
    tied = bool(config.get("tie_word_embeddings", False))

    w = gguf.GGUFWriter(a.out, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN3])
    w.add_name(a.model_dir.resolve().name)
    w.add_context_length(config["max_position_embeddings"])
    w.add_embedding_length(D)
    w.add_block_count(L)
    w.add_feed_forward_length(config["intermediate_size"])
    w.add_head_count(H)
    w.add_head_count_kv(KV)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_layer_norm_rms_eps(config["rms_norm_eps"])
    w.add_rope_freq_base(float(theta))
    w.add_file_type({"f16": gguf.LlamaFileType.MOSTLY_F16, "bf16": gguf.LlamaFileType.MOSTLY_BF16,
                     "f32": gguf.LlamaFileType.ALL_F32}[a.outtype])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    n_vocab, n_merges, bos, eos = add_tokenizer(w, a.model_dir, config)

    tensors = read_safetensors(a.model_dir)
    expected = set(GLOBAL) - {"lm_head.weight"}
    expected |= {f"model.layers.{l}.{k}" for l in range(L) for k in PER_LAYER}
    missing = sorted(expected - set(tensors))
    if not tied and "lm_head.weight" not in tensors:
        missing.append("lm_head.weight")
    if missing:
        die(f"missing tensors: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    n_params = 0
    for name, (dtype, shape, data) in tensors.items():
        if name in GLOBAL:
            if name == "lm_head.weight" and tied:
                continue  # a tied head saved anyway: llama.cpp reuses token_embd
            gname = GLOBAL[name]
        elif name.startswith("model.layers."):
            rest = name[len("model.layers."):]
            layer, _, key = rest.partition(".")
            if not layer.isdigit() or int(layer) >= L or key not in PER_LAYER:
                die(f"unexpected tensor {name}")
            gname = f"blk.{int(layer)}.{PER_LAYER[key]}"
        else:
            die(f"unexpected tensor {name}")
        if name == "model.embed_tokens.weight" and shape[0] != n_vocab:
            die(f"embedding has {shape[0]} rows but the tokenizer {n_vocab} tokens")
        arr, raw = convert_tensor(dtype, shape, data, a.outtype)
        w.add_tensor(gname, arr, raw_dtype=raw)
        n = 1
        for s in shape:
            n *= s
        n_params += n

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {a.out}: qwen3, {L} layers, {n_params / 1e6:.2f}M parameters, {a.outtype}, vocab {n_vocab} "
          f"({n_merges} merges, bos {bos}, eos {eos}){', tied embeddings' if tied else ''}")


if __name__ == "__main__":
    main()
