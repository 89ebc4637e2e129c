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

  tiny-w4a16/transformer/  the same model, W4 group 32 symmetric round-to-nearest of every Linear inside the
                           blocks (AUTOROUND.md sections 3-5), auto_round format (packing auto_round:auto_gptq),
                           quantized and packed by tools/gptq_pack_reference.py (numpy, no code shared with the
                           C++ tree); biases of quantized Linears as F16, as the exporter writes them.
  tiny-w4a16/golden.safetensors: output F32 [2, 16, 16], the velocity of diffusers' model carrying exactly the
                           dequantized weights, on the inputs of tiny/golden.safetensors.

Deterministic: seeded, single-threaded.
Usage: venv/bin/python tools/make_flux_fixtures.py [--out tests/data/flux]
"""

import argparse
import shutil
from pathlib import Path

import json
import sys

import numpy as np
import torch
from diffusers import FluxTransformer2DModel
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gptq_pack_reference as gpr  # noqa: E402  (the independent numpy RTN and packer)

GROUP_SIZE = 32
BLOCK_LISTS = ("transformer_blocks.", "single_transformer_blocks.")

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

    write_w4a16(Path(args.out) / "tiny-w4a16", tdir, model,
                dict(hidden_states=hidden_states, encoder_hidden_states=encoder_hidden_states,
                     pooled_projections=pooled, timestep=timestep, img_ids=img_ids, txt_ids=txt_ids,
                     guidance=guidance), out)


def write_w4a16(out_dir, bf16_dir, model, inputs, bf16_output):
    tdir = out_dir / "transformer"
    if tdir.exists():
        shutil.rmtree(tdir)
    tdir.mkdir(parents=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}  # f32 holding the BF16 values
    files = {}
    quantized = set()
    for name, w in state.items():
        module = name[: -len(".weight")] if name.endswith(".weight") else None
        if module and module.startswith(BLOCK_LISTS) and w.ndim == 2 and (module + ".bias") in state:
            n_out, k_in = w.shape
            assert n_out % 32 == 0 and k_in % GROUP_SIZE == 0, name
            codes, scales, zeros = gpr.rtn(w.numpy().astype(np.float32), 4, GROUP_SIZE, True)
            for part, arr in gpr.pack_linear(codes, scales, zeros, 4).items():
                files[f"{module}.{part}"] = torch.from_numpy(np.ascontiguousarray(arr))
            deq = gpr.dequantize(codes, scales, zeros, GROUP_SIZE)
            bias16 = state[module + ".bias"].to(torch.float16)
            files[module + ".bias"] = bias16
            state[name] = torch.from_numpy(deq)
            state[module + ".bias"] = bias16.float()
            quantized.add(module)
    for name, v in model.state_dict().items():
        module = name.rsplit(".", 1)[0]
        if module in quantized:
            continue
        files[name] = v.to(torch.bfloat16)
    save_file(files, str(tdir / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    config = json.loads((bf16_dir / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "auto-round", "packing_format": "auto_round:auto_gptq", "bits": 4,
        "group_size": GROUP_SIZE, "sym": True, "data_type": "int",
        "block_name_to_quantize": "transformer_blocks,single_transformer_blocks", "iters": 0}
    (tdir / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    model.load_state_dict(state)
    with torch.no_grad():
        out = model(**inputs, return_dict=False)[0]
    save_file({"output": out.contiguous().float()}, str(out_dir / "golden.safetensors"))
    rel = ((out - bf16_output).pow(2).sum() / bf16_output.pow(2).sum()).sqrt().item()
    print(f"wrote {tdir} ({len(quantized)} quantized Linears) and {out_dir / 'golden.safetensors'}: "
          f"W4A16 vs BF16 velocity rel. L2 {rel:.4f}")


if __name__ == "__main__":
    main()
