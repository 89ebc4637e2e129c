#!/usr/bin/env python3
"""Golden fixtures for the C++ text encoders of FLUX: CLIPTextModel (text_encoder/) and T5EncoderModel
(text_encoder_2/), against transformers.

Writes, under tests/data/flux/:

  tiny-clip/text_encoder/config.json, model.safetensors   CLIPTextModel, save_pretrained, BF16 weights
  tiny-clip/golden.safetensors
  tiny-t5/text_encoder_2/config.json, model.safetensors    T5EncoderModel, save_pretrained, BF16 weights
  tiny-t5/golden.safetensors

Both models have the real structure and tensor names at a small width:
  CLIP: vocab 500, hidden 32, intermediate 80, 2 layers, 2 heads (hd 16), 77 positions, quick_gelu, the legacy
        config ids of FLUX's text_encoder (bos 0, eos 2, pad 1: pooling by argmax of the ids). The token layout
        is FLUX's: bos = 498, eos = pad = 499 (the last id), prompt ids below 498, padded to 77.
  T5:   vocab 300, d_model 32, d_kv 12, 4 heads (inner 48, unlike d_model), d_ff 56, 2 layers, gated-gelu,
        32 buckets, max distance 128. Prompts of 23 and 36 tokens + </s> = 1, padded with 0 to 40 (distances
        up to 39: the log buckets of 8-11, 12-15, 16-22, 23-31 and 32-45).
Every weight is drawn from a normal distribution (norm weights are 1 + noise, never one vectors), stored as
BF16, and the reference runs in float32 on exactly those BF16 values, with no attention mask (as FluxPipeline
calls both encoders).

tiny-clip/golden.safetensors:
  input_ids            I32 [2, 77]
  embeddings           F32 [2, 77, 32]   token + position embeddings (the first layer's input)
  layer{i}             F32 [2, 77, 32]   output of encoder layer i
  last_hidden_state    F32 [2, 77, 32]   after final_layer_norm
  pooler_output        F32 [2, 32]       legacy rule (eos_token_id 2): the row of the largest id
  eos_input_ids        I32 [2, 77]       ids whose eos (497) is not the largest id: the pad token 499 follows it
  eos_pooler_output    F32 [2, 32]       pooler_output of the same model with config eos_token_id 497 (the
                                         first-match rule) on eos_input_ids; argmax would pick the first pad
tiny-t5/golden.safetensors:
  input_ids            I32 [2, 40]
  position_bias        F32 [4, 40, 40]   block 0's compute_bias (shared by every layer)
  buckets              I32 [1201]        _relative_position_bucket(rel, bidirectional, 32, 128) for rel in
                                         -600..600 (every bucket, the clamp at >= 128 included)
  embeddings           F32 [2, 40, 32]   shared[ids]
  layer{i}             F32 [2, 40, 32]   output of block i
  last_hidden_state    F32 [2, 40, 32]   after final_layer_norm

Deterministic: seeded, single-threaded.
Usage: venv/bin/python tools/make_text_encoder_fixtures.py [--out tests/data/flux]
"""

import argparse
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

CLIP_CONFIG = dict(vocab_size=500, hidden_size=32, intermediate_size=80, num_hidden_layers=2,
                   num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu",
                   layer_norm_eps=1e-5, projection_dim=32, bos_token_id=0, eos_token_id=2, pad_token_id=1)
CLIP_BOS, CLIP_EOS, CLIP_LEN = 498, 499, 77

T5_CONFIG = dict(vocab_size=300, d_model=32, d_kv=12, num_heads=4, d_ff=56, num_layers=2,
                 feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                 relative_attention_max_distance=128, layer_norm_epsilon=1e-6, dropout_rate=0.0,
                 pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=False,
                 tie_word_embeddings=True)
T5_LEN = 40


def randomize(model, q_scale=None):
    """Normal weights: matrices ~ N(0, 1/in), norm weights 1 + noise, embeddings, biases and the relative bias noise."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed" in name or "shared" in name:
                p.copy_(0.7 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
                if q_scale is not None and name.endswith(".q.weight"):
                    p.mul_(q_scale)  # T5 does not scale its scores: keep the softmax away from one-hot


def save_bf16(model, directory):
    model = model.to(torch.bfloat16)
    if directory.exists():
        shutil.rmtree(directory)
    model.save_pretrained(directory, safe_serialization=True)
    return model.to(torch.float32)  # the BF16 values, exactly, computed in f32


def save_clip_bf16(model, directory):
    """As FLUX's text_encoder/model.safetensors holds it: names under text_model. (transformers 5 saves them without
    the prefix and reads both) and the int64 position_ids buffer older versions wrote. Checked by reading it back."""
    model = model.to(torch.bfloat16)
    if directory.exists():
        shutil.rmtree(directory)
    model.config.save_pretrained(directory)
    state = {"text_model." + k: v.contiguous() for k, v in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(CLIP_CONFIG["max_position_embeddings"])[None]
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    model = model.to(torch.float32)
    back = CLIPTextModel.from_pretrained(directory, dtype=torch.float32)
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k]), k
    return model


def layer_hooks(layers, captured):
    def keep(name):
        def hook(_module, _inputs, output):
            captured[name] = output[0] if isinstance(output, tuple) else output
        return hook
    for i, layer in enumerate(layers):
        layer.register_forward_hook(keep(f"layer{i}"))


def clip_ids(gen, lengths, eos, pad):
    rows = []
    for n in lengths:
        body = torch.randint(0, 497, (n,), generator=gen).tolist()
        row = [CLIP_BOS] + body + [eos]
        rows.append(row + [pad] * (CLIP_LEN - len(row)))
    return torch.tensor(rows, dtype=torch.long)


def make_clip(out_dir, gen):
    model = CLIPTextModel(CLIPTextConfig(**CLIP_CONFIG)).eval()
    randomize(model)
    model = save_clip_bf16(model, out_dir / "text_encoder")

    ids = clip_ids(gen, [9, 30], CLIP_EOS, CLIP_EOS)
    captured = {}
    layer_hooks(model.encoder.layers, captured)
    model.embeddings.register_forward_hook(lambda _m, _i, o: captured.__setitem__("embeddings", o))
    with torch.no_grad():
        out = model(input_ids=ids)
    first = dict(captured)  # the hooks fire again in the forward below
    # The legacy rule picks the first EOS here: check the reference did what flux.md §3.2 says.
    first_eos = (ids == CLIP_EOS).int().argmax(-1)
    assert torch.equal(out.pooler_output, out.last_hidden_state[torch.arange(2), first_eos])

    # The first-match rule, where it differs from argmax: eos 497 followed by pads of 499.
    eos_ids = clip_ids(gen, [5, 17], 497, 499)
    model.config.eos_token_id = 497
    model.eos_token_id = 497
    with torch.no_grad():
        eos_out = model(input_ids=eos_ids)
    assert not torch.equal(eos_out.pooler_output, eos_out.last_hidden_state[torch.arange(2), eos_ids.argmax(-1)])

    tensors = dict(input_ids=ids.int(), embeddings=first["embeddings"], last_hidden_state=out.last_hidden_state,
                   pooler_output=out.pooler_output, eos_input_ids=eos_ids.int(),
                   eos_pooler_output=eos_out.pooler_output)
    for i in range(CLIP_CONFIG["num_hidden_layers"]):
        tensors[f"layer{i}"] = first[f"layer{i}"]
    save_file({k: v.contiguous() if v.dtype == torch.int32 else v.contiguous().float() for k, v in tensors.items()},
              str(out_dir / "golden.safetensors"))
    print(f"wrote {out_dir}: last_hidden_state rms {out.last_hidden_state.pow(2).mean().sqrt():.4f}")


def make_t5(out_dir, gen):
    config = T5Config(**T5_CONFIG)
    model = T5EncoderModel(config).eval()
    randomize(model, q_scale=config.d_kv ** -0.5)
    model = save_bf16(model, out_dir / "text_encoder_2")

    rows = []
    for n in (23, 36):
        row = torch.randint(2, T5_CONFIG["vocab_size"], (n,), generator=gen).tolist() + [1]
        rows.append(row + [0] * (T5_LEN - len(row)))
    ids = torch.tensor(rows, dtype=torch.long)

    captured = {}
    layer_hooks(model.encoder.block, captured)
    model.encoder.embed_tokens.register_forward_hook(lambda _m, _i, o: captured.__setitem__("embeddings", o))
    attn0 = model.encoder.block[0].layer[0].SelfAttention
    with torch.no_grad():
        out = model(input_ids=ids)
        bias = attn0.compute_bias(T5_LEN, T5_LEN)[0]
        rel = torch.arange(-600, 601, dtype=torch.long)
        buckets = attn0._relative_position_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128)

    tensors = dict(input_ids=ids.int(), position_bias=bias.float(), buckets=buckets.int(),
                   embeddings=captured["embeddings"], last_hidden_state=out.last_hidden_state)
    for i in range(T5_CONFIG["num_layers"]):
        tensors[f"layer{i}"] = captured[f"layer{i}"]
    save_file({k: v.contiguous() if v.dtype == torch.int32 else v.contiguous().float() for k, v in tensors.items()},
              str(out_dir / "golden.safetensors"))
    print(f"wrote {out_dir}: last_hidden_state rms {out.last_hidden_state.pow(2).mean().sqrt():.4f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/flux")
    args = ap.parse_args()
    torch.manual_seed(20261202)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(11)
    make_clip(Path(args.out) / "tiny-clip", gen)
    make_t5(Path(args.out) / "tiny-t5", gen)


if __name__ == "__main__":
    main()
