#!/usr/bin/env python3
"""Golden of the whole FLUX denoising loop (diffusers' FluxPipeline) for tests/pipelines/diffusion/
flux_pipeline_test.cpp: a tiny pipeline assembled from
  tests/data/flux/tiny-pipeline/transformer/   written here: the tiny FLUX transformer of make_flux_fixtures.py at
                                               in_channels 64 (the 2x2 patches of the VAE's 16 latent channels)
  tests/data/flux/pipeline/vae/, scheduler/    the tiny VAE and the FLUX.1-dev scheduler config
                                               (tools/make_flux_pipeline_fixtures.py)
run by FluxPipeline in float32 with given encoder outputs (no text encoders: prompt_embeds, pooled_prompt_embeds,
and for true CFG negative_prompt_embeds, negative_pooled_prompt_embeds) and given packed latents, 64 x 64 px,
3 steps, guidance 3.5.

tests/data/flux/tiny-pipeline/golden.safetensors:
  prompt_embeds [8, 24], pooled [20], negative_prompt_embeds [8, 24], negative_pooled [20]
  latents        [1, 16, 64]      the packed initial latents
  cfg1_step{i}   [1, 16, 64]      packed latents after step i (true_cfg_scale 1: the conditional branch only)
  cfg1_image     U8 [64, 64, 3]   the decoded image (diffusers' float image, round(255 x) as its PIL path does)
  cfg2_step{i}, cfg2_image        the same with true_cfg_scale 2.0 and the negative embeddings

Deterministic: seeded, single-threaded.  Usage: venv/bin/python tools/make_flux_pipeline_golden.py
"""
import shutil
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "flux"
CONFIG = dict(patch_size=1, in_channels=64, out_channels=None, num_layers=2, num_single_layers=2,
              attention_head_dim=16, num_attention_heads=2, joint_attention_dim=24, pooled_projection_dim=20,
              guidance_embeds=True, axes_dims_rope=(4, 6, 6))
SIZE, STEPS, NT = 64, 3, 8


def main():
    torch.manual_seed(20261202)
    torch.set_num_threads(1)
    transformer = FluxTransformer2DModel(**CONFIG).eval()
    with torch.no_grad():
        for name, p in transformer.named_parameters():
            if p.ndim == 1 and "norm" in name and "linear" not in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif p.ndim == 2:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            else:
                p.copy_(0.1 * torch.randn_like(p))
    transformer = transformer.to(torch.bfloat16)
    out = DATA / "tiny-pipeline"
    if (out / "transformer").exists():
        shutil.rmtree(out / "transformer")
    transformer.save_pretrained(out / "transformer", safe_serialization=True)
    transformer = transformer.to(torch.float32)
    vae = AutoencoderKL.from_pretrained(DATA / "pipeline" / "vae", torch_dtype=torch.float32).eval()
    scheduler = FlowMatchEulerDiscreteScheduler.from_pretrained(DATA / "pipeline" / "scheduler")
    pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None,
                        tokenizer_2=None, transformer=transformer)

    g = torch.Generator().manual_seed(11)
    t = dict(prompt_embeds=torch.randn(1, NT, 24, generator=g), pooled=torch.randn(1, 20, generator=g),
             negative_prompt_embeds=torch.randn(1, NT, 24, generator=g), negative_pooled=torch.randn(1, 20, generator=g))
    latents = torch.randn(1, (SIZE // 16) ** 2, 64, generator=g)
    golden = {k: v[0] for k, v in t.items()}
    golden["latents"] = latents
    for tag, scale in (("cfg1", 1.0), ("cfg2", 2.0)):
        steps = []

        def keep(_pipe, _i, _t, kw):
            steps.append(kw["latents"].detach().clone())
            return kw
        extra = {}
        if scale > 1:
            extra = dict(negative_prompt_embeds=t["negative_prompt_embeds"],
                         negative_pooled_prompt_embeds=t["negative_pooled"], true_cfg_scale=scale)
        with torch.no_grad():
            image = pipe(prompt_embeds=t["prompt_embeds"], pooled_prompt_embeds=t["pooled"], latents=latents.clone(),
                         height=SIZE, width=SIZE, num_inference_steps=STEPS, guidance_scale=3.5, output_type="np",
                         callback_on_step_end=keep, **extra).images[0]
        for i, s in enumerate(steps):
            golden[f"{tag}_step{i}"] = s
        golden[f"{tag}_image"] = torch.from_numpy(np.round(image * 255).astype(np.uint8))
    save_file({k: v.contiguous() for k, v in golden.items()}, str(out / "golden.safetensors"))
    print(f"wrote {out}: {len(golden)} tensors; image mean {golden['cfg1_image'].float().mean():.2f}")


if __name__ == "__main__":
    main()
