#!/usr/bin/env python3
"""Golden fixtures for the C++ FLUX transformer (diffusers' FluxTransformer2DModel).

Writes, under tests/data/flux/:

  tiny/transformer/config.json                         diffusers config (FluxTransformer2DModel, save_pretrained)
  tiny/transformer/diffusion_pytorch_model.safetensors BF16 weights, random (seeded), real tensor names
  tiny/golden.safetensors                              inputs and float32 reference outputs, below

The model has the real structure at a small width: 2 double-stream + 2 single-stream blocks, 2 heads of 16
(inner 32), axes_dims_rope (4, 6, 6), in_channels 16, T5 width 24, CLIP width 20, guidance embedding on.
Every weight is drawn from a normal distribution (no zero or unit vectors: norm weights are 1 + noise, so a
misread norm weight shows), stored as BF16, and the reference runs in float32 on exactly those BF16 values.

golden.safetensors:
  hidden_states         F32 [2, 16, 16]   packed latents (a 4 x 4 token grid)
  encoder_hidden_states F32 [2, 5, 24]
  pooled_projections    F32 [2, 20]
  timestep              F32 [2]           sigma (the pipeline's timestep / 1000)
  guidance              F32 [2]
  img_ids               F32 [16, 3]       (0, row, column)
  txt_ids               F32 [5, 3]        zeros
  temb                  F32 [2, 32]       time_text_embed output
  rope_cos, rope_sin    F32 [21, 16]      pos_embed output over [txt; img]
  block{i}_img, block{i}_txt  F32         outputs of block i (double blocks 0, 1, then single blocks 2, 3)
  output                F32 [2, 16, 16]   the velocity

Deterministic: seeded, single-threaded.
Usage: venv/bin/python tools/make_flux_fixtures.py [--out tests/data/flux]
"""

import argparse
import shutil
from pathlib import Path

import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file

CONFIG = dict(patch_size=1, in_channels=16, out_channels=None, num_layers=2, num_single_layers=2,
              attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24, pooled_projection_dim=20,
              guidance_embeds=True, axes_dims_rope=(4, 6, 6))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/flux")
    args = ap.parse_args()
    torch.manual_seed(20261201)
    torch.set_num_threads(1)

    model = FluxTransformer2DModel(**CONFIG).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and ("norm" in name and "linear" not in name):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.ndim == 2:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn_like(p))
    model = model.to(torch.bfloat16)

    out_dir = Path(args.out) / "tiny"
    tdir = out_dir / "transformer"
    if tdir.exists():
        shutil.rmtree(tdir)
    model.save_pretrained(tdir, safe_serialization=True)
    model = model.to(torch.float32)  # the BF16 values, exactly, computed in f32

    B, rows, cols, Nt = 2, 4, 4, 5
    Ni = rows * cols
    g = torch.Generator().manual_seed(7)
    hidden_states = torch.randn(B, Ni, CONFIG["in_channels"], generator=g)
    encoder_hidden_states = torch.randn(B, Nt, CONFIG["joint_attention_dim"], generator=g)
    pooled = torch.randn(B, CONFIG["pooled_projection_dim"], generator=g)
    timestep = torch.tensor([0.7, 0.25])
    guidance = torch.tensor([3.5, 1.5])
    img_ids = torch.zeros(Ni, 3)
    img_ids[:, 1] = torch.arange(rows).repeat_interleave(cols).float()
    img_ids[:, 2] = torch.arange(cols).repeat(rows).float()
    txt_ids = torch.zeros(Nt, 3)

    captured = {}

    def keep(name):
        def hook(_module, _inputs, output):
            captured[name] = output
        return hook

    model.time_text_embed.register_forward_hook(keep("temb"))
    model.pos_embed.register_forward_hook(keep("rope"))
    blocks = list(model.transformer_blocks) + list(model.single_transformer_blocks)
    for i, b in enumerate(blocks):
        b.register_forward_hook(keep(f"block{i}"))

    with torch.no_grad():
        out = model(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states,
                    pooled_projections=pooled, timestep=timestep, img_ids=img_ids, txt_ids=txt_ids,
                    guidance=guidance, return_dict=False)[0]

    tensors = dict(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states,
                   pooled_projections=pooled, timestep=timestep, guidance=guidance, img_ids=img_ids,
                   txt_ids=txt_ids, temb=captured["temb"], rope_cos=captured["rope"][0].float(),
                   rope_sin=captured["rope"][1].float(), output=out)
    for i in range(len(blocks)):
        a, b = captured[f"block{i}"]
        # Each block returns (encoder_hidden_states, hidden_states): text first.
        assert a.shape[1] == Nt and b.shape[1] == Ni, (a.shape, b.shape)
        tensors[f"block{i}_txt"] = a
        tensors[f"block{i}_img"] = b
    save_file({k: v.contiguous().float() for k, v in tensors.items()}, str(out_dir / "golden.safetensors"))
    print(f"wrote {tdir} and {out_dir / 'golden.safetensors'}: output rms {out.pow(2).mean().sqrt():.4f}")


if __name__ == "__main__":
    main()
