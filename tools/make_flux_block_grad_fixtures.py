#!/usr/bin/env python3
"""Golden gradients for the C++ FLUX blocks' backward (src/nn/flux_blocks.cpp) from PyTorch autograd.

diffusers' FluxTransformerBlock (double stream) and FluxSingleTransformerBlock at a small width with the real
structure: 2 heads of 8 (inner 16, MLP 64), 3-axis RoPE (2, 2, 4) from FluxPosEmbed, float32 throughout. Weights
are random (seeded; Linear weights N(0, 1/in), biases and RMSNorm weights away from 0 and 1 so a dropped bias or
norm weight shows). For each block the loss is L = sum(R_img * img_out) + sum(R_txt * txt_out) with a fixed random
upstream gradient R, and torch.autograd gives dL/d(img), dL/d(txt) and dL/dW of every Linear.

Writes tests/data/flux/block-grads/grads.safetensors (F32):
  img [2, 6, 16], txt [2, 3, 16], temb [2, 16]      block inputs (img: a 2 x 3 token grid; txt ids 0..2 on axis 0)
  rope_cos, rope_sin [2 * 9, 8]                     FluxPosEmbed over [txt; img], repeated per sample (the C++
                                                    block takes one row per joint token of every sample)
  dy.img, dy.txt                                    the upstream gradient R
  {double,single}.<param>                           block weights by their checkpoint names (".weight", ".bias")
  {double,single}.out.img, .out.txt                 the block outputs
  {double,single}.grad.img, .grad.txt               dL/d(inputs)
  {double,single}.grad.<linear>.weight              dL/dW of every Linear

Deterministic: seeded, single-threaded; regenerates byte-identical files.
Usage: venv/bin/python tools/make_flux_block_grad_fixtures.py [--out tests/data/flux/block-grads]
"""

import argparse
from pathlib import Path

import torch
from diffusers.models.transformers.transformer_flux import (FluxPosEmbed, FluxSingleTransformerBlock,
                                                            FluxTransformerBlock)
from safetensors.torch import save_file

HEADS, HEAD_DIM = 2, 8
DIM = HEADS * HEAD_DIM
AXES = (2, 2, 4)
B, NT, ROWS, COLS = 2, 3, 2, 3
NI = ROWS * COLS


def randomize(block):
    with torch.no_grad():
        for name, p in block.named_parameters():
            if p.ndim == 2:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:  # RMSNorm weights
                p.copy_(1.0 + 0.2 * torch.randn_like(p))


def run(block, prefix, img, txt, temb, rotary, r_img, r_txt, out):
    for name, p in block.state_dict().items():
        out[f"{prefix}.{name}"] = p.detach().clone()
    x = img.clone().requires_grad_(True)
    c = txt.clone().requires_grad_(True)
    # Both blocks return (encoder_hidden_states, hidden_states): text first.
    c_out, x_out = block(hidden_states=x, encoder_hidden_states=c, temb=temb, image_rotary_emb=rotary)
    loss = (r_img * x_out).sum() + (r_txt * c_out).sum()
    loss.backward()
    out[f"{prefix}.out.img"] = x_out.detach()
    out[f"{prefix}.out.txt"] = c_out.detach()
    out[f"{prefix}.grad.img"] = x.grad
    out[f"{prefix}.grad.txt"] = c.grad
    for name, m in block.named_modules():
        if isinstance(m, torch.nn.Linear):
            out[f"{prefix}.grad.{name}.weight"] = m.weight.grad.detach().clone()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/flux/block-grads")
    args = ap.parse_args()
    torch.manual_seed(20261202)
    torch.set_num_threads(1)

    double = FluxTransformerBlock(dim=DIM, num_attention_heads=HEADS, attention_head_dim=HEAD_DIM).eval()
    single = FluxSingleTransformerBlock(dim=DIM, num_attention_heads=HEADS, attention_head_dim=HEAD_DIM).eval()
    randomize(double)
    randomize(single)

    g = torch.Generator().manual_seed(11)
    img = torch.randn(B, NI, DIM, generator=g)
    txt = torch.randn(B, NT, DIM, generator=g)
    temb = torch.randn(B, DIM, generator=g)
    r_img = torch.randn(B, NI, DIM, generator=g)
    r_txt = torch.randn(B, NT, DIM, generator=g)
    txt_ids = torch.zeros(NT, 3)
    txt_ids[:, 0] = torch.arange(NT).float()
    img_ids = torch.zeros(NI, 3)
    img_ids[:, 1] = torch.arange(ROWS).repeat_interleave(COLS).float()
    img_ids[:, 2] = torch.arange(COLS).repeat(ROWS).float()
    cos, sin = FluxPosEmbed(theta=10000, axes_dim=list(AXES))(torch.cat([txt_ids, img_ids], dim=0))
    rotary = (cos.float(), sin.float())

    out = dict(img=img, txt=txt, temb=temb, rope_cos=rotary[0].repeat(B, 1), rope_sin=rotary[1].repeat(B, 1),
               **{"dy.img": r_img, "dy.txt": r_txt})
    run(double, "double", img, txt, temb, rotary, r_img, r_txt, out)
    run(single, "single", img, txt, temb, rotary, r_img, r_txt, out)

    dest = Path(args.out)
    dest.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous().float() for k, v in out.items()}, str(dest / "grads.safetensors"))
    print(f"wrote {dest / 'grads.safetensors'}: {len(out)} tensors; "
          f"|dL/dimg| double {out['double.grad.img'].norm():.4f}, single {out['single.grad.img'].norm():.4f}")


if __name__ == "__main__":
    main()
