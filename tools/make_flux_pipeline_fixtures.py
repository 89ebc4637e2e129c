#!/usr/bin/env python3
"""Golden fixtures for the C++ FLUX pipeline pieces around the transformer: the flow-matching Euler scheduler,
the 2x2 latent packing and the AutoencoderKL decoder, against diffusers (FluxPipeline,
FlowMatchEulerDiscreteScheduler, AutoencoderKL).

Writes, under tests/data/flux/pipeline/:

  scheduler/scheduler_config.json         FLUX.1-dev's scheduler config, exactly its published fields
  scheduler_schnell/scheduler_config.json FLUX.1-schnell's (static shift 1), written by diffusers' save_config
  scheduler_shift3/scheduler_config.json  a static shift of 3 (save_config)
  scheduler_linear/scheduler_config.json  dev's dynamic shift with time_shift_type "linear" (save_config)
  vae/config.json                         AutoencoderKL config (save_config): the FLUX structure at a small width
  vae/diffusion_pytorch_model.safetensors BF16 weights, random (seeded): every decoder.* tensor, and one encoder
                                          tensor (encoder.conv_in.*) to show that the decoder ignores the encoder
                                          (all of it would double the fixture)
  golden.safetensors                      inputs and float32 references, below

The VAE: block_out_channels (8, 16, 24, 24), layers_per_block 2, latent_channels 16, norm_num_groups 4,
4 x UpDecoderBlock2D, mid_block_add_attention true, use_quant_conv / use_post_quant_conv false, FLUX's
scaling_factor 0.3611 and shift_factor 0.1159. As in FLUX the up blocks narrow 24 -> 24 -> 16 -> 8, so
up_blocks.2 and .3 open with a 1x1 conv_shortcut, the first three end in an upsampler, and the mid block
attends over all latent positions with one head as wide as the channels. Weights are drawn from normal
distributions (norm weights 1 + noise, biases noise: nothing zero or one), stored as BF16; the reference runs
in float32 on exactly those BF16 values.

golden.safetensors (F32 unless noted):
  sched_<config>_<steps>_<seq>_sigmas     [steps + 1]  scheduler.sigmas after FluxPipeline's retrieve_timesteps
  sched_<config>_<steps>_<seq>_timesteps  [steps]      scheduler.timesteps
      for dev at (28, 4096), (4, 256), (4, 1024) and (1, 4096); schnell at (4, 4096); shift3 and linear at
      (28, 4096)
  euler_sample                            [2, 6, 64]     the sample before step 0
  euler_velocity                          [4, 2, 6, 64]  the model output of steps 0..3
  euler_f32                               [4, 2, 6, 64]  the sample after each step (dev at (4, 256)), float32
  euler_bf16                              [4, 2, 6, 64]  the same with sample and velocity in BF16 (the values
                                                         are BF16, stored as F32)
  pack_unpacked [1, 16, 8, 10], pack_packed [1, 20, 64], pack_img_ids [20, 3]
                                          _pack_latents / _prepare_latent_image_ids at a 64 x 80 image
  vae_packed     [2, 6, 64]               final latents of a 48 x 32 image (packed), the decode input
  vae_unpacked   [2, 16, 6, 4]            _unpack_latents
  vae_z          [2, 16, 6, 4]            latents / scaling_factor + shift_factor
  vae_conv_in    [2, 24, 6, 4]            decoder.conv_in output
  vae_mid        [2, 24, 6, 4]            decoder.mid_block output
  vae_up0        [2, 24, 12, 8]           decoder.up_blocks[0] output
  vae_image      [2, 3, 48, 32]           vae.decode(z)
  vae_uint8      U8 [2, 48, 32, 3]        image_processor.postprocess(image, "pil"), as arrays

Deterministic: seeded, single-threaded, JSON written with sorted keys.
Usage: venv/bin/python tools/make_flux_pipeline_fixtures.py [--out tests/data/flux]
"""

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.flux.pipeline_flux import FluxPipeline, calculate_shift, retrieve_timesteps
from safetensors.torch import save_file

# FLUX.1-dev's scheduler/scheduler_config.json, field for field (the file predates diffusers' newer fields).
DEV_SCHEDULER = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "_diffusers_version": "0.30.0.dev0",
    "base_image_seq_len": 256,
    "base_shift": 0.5,
    "max_image_seq_len": 4096,
    "max_shift": 1.15,
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
}
OTHER_SCHEDULERS = {
    "schnell": dict(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False),
    "shift3": dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False),
    "linear": dict(DEV_SCHEDULER, time_shift_type="linear"),
}
SCHEDULE_CASES = {
    "dev": [(28, 4096), (4, 256), (4, 1024), (1, 4096)],
    "schnell": [(4, 4096)],
    "shift3": [(28, 4096)],
    "linear": [(28, 4096)],
}

VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                  up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 24, 24), layers_per_block=2,
                  act_fn="silu", latent_channels=16, norm_num_groups=4, sample_size=64, scaling_factor=0.3611,
                  shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False, mid_block_add_attention=True,
                  force_upcast=True)


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def flux_schedule(scheduler, steps, image_seq_len):
    """The schedule FluxPipeline.__call__ sets: linear sigmas in float64, mu from calculate_shift."""
    sigmas = np.linspace(1.0, 1 / steps, steps)
    cfg = scheduler.config
    mu = calculate_shift(image_seq_len, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                         cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
    retrieve_timesteps(scheduler, steps, "cpu", sigmas=sigmas, mu=mu)
    scheduler.set_begin_index(0)
    return scheduler.sigmas.clone(), scheduler.timesteps.clone()


def schedulers(out, tensors):
    dev_dir = out / "scheduler"
    write_json(dev_dir / "scheduler_config.json", DEV_SCHEDULER)
    made = {"dev": FlowMatchEulerDiscreteScheduler.from_pretrained(dev_dir)}
    for name, cfg in OTHER_SCHEDULERS.items():
        d = out / f"scheduler_{name}"
        if d.exists():
            shutil.rmtree(d)
        sch = FlowMatchEulerDiscreteScheduler(**{k: v for k, v in cfg.items() if not k.startswith("_")})
        sch.save_config(d)
        # save_config writes diffusers' own version and key order; rewrite sorted so re-runs give identical bytes.
        write_json(d / "scheduler_config.json", json.loads((d / "scheduler_config.json").read_text()))
        made[name] = FlowMatchEulerDiscreteScheduler.from_pretrained(d)
    for name, cases in SCHEDULE_CASES.items():
        for steps, seq in cases:
            sigmas, timesteps = flux_schedule(made[name], steps, seq)
            tensors[f"sched_{name}_{steps}_{seq}_sigmas"] = sigmas
            tensors[f"sched_{name}_{steps}_{seq}_timesteps"] = timesteps

    # Four Euler steps of the dev schedule at (4, 256) on given tensors, in float32 and in BF16.
    g = torch.Generator().manual_seed(11)
    sample = torch.randn(2, 6, 64, generator=g)
    velocity = torch.randn(4, 2, 6, 64, generator=g)
    tensors["euler_sample"] = sample
    tensors["euler_velocity"] = velocity
    for dtype, key in ((torch.float32, "euler_f32"), (torch.bfloat16, "euler_bf16")):
        sch = made["dev"]
        _, timesteps = flux_schedule(sch, 4, 256)
        x = sample.to(dtype)
        outs = []
        for i, t in enumerate(timesteps):
            x = sch.step(velocity[i].to(dtype), t, x, return_dict=False)[0]
            assert x.dtype == dtype
            outs.append(x.float())
        tensors[key] = torch.stack(outs)


def packing(tensors):
    g = torch.Generator().manual_seed(12)
    h, w = 8, 10  # a 64 x 80 image
    unpacked = torch.randn(1, 16, h, w, generator=g)
    tensors["pack_unpacked"] = unpacked
    tensors["pack_packed"] = FluxPipeline._pack_latents(unpacked, 1, 16, h, w)
    tensors["pack_img_ids"] = FluxPipeline._prepare_latent_image_ids(1, h // 2, w // 2, "cpu", torch.float32)


def init_weights(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / fan_in ** 0.5)


def vae(out, tensors):
    torch.manual_seed(20261202)
    model = AutoencoderKL(**VAE_CONFIG).eval()
    init_weights(model)
    model = model.to(torch.bfloat16)
    vdir = out / "vae"
    if vdir.exists():
        shutil.rmtree(vdir)
    model.save_config(vdir)
    write_json(vdir / "config.json", json.loads((vdir / "config.json").read_text()))
    state = {k: v.contiguous() for k, v in model.state_dict().items()
             if k.startswith("decoder.") or k.startswith("encoder.conv_in.")}
    save_file(state, str(vdir / "diffusion_pytorch_model.safetensors"), metadata={"format": "pt"})
    model = model.to(torch.float32)  # the BF16 values, exactly, computed in f32

    B, height, width = 2, 48, 32
    h, w = 2 * (height // 16), 2 * (width // 16)
    g = torch.Generator().manual_seed(13)
    packed = torch.randn(B, (h // 2) * (w // 2), 64, generator=g)
    unpacked = FluxPipeline._unpack_latents(packed, height, width, 2 ** (len(VAE_CONFIG["block_out_channels"]) - 1))
    # FluxPipeline.__call__'s decode step.
    z = (unpacked / model.config.scaling_factor) + model.config.shift_factor

    captured = {}

    def keep(name):
        def hook(_module, _inputs, output):
            captured[name] = output
        return hook

    model.decoder.conv_in.register_forward_hook(keep("conv_in"))
    model.decoder.mid_block.register_forward_hook(keep("mid"))
    model.decoder.up_blocks[0].register_forward_hook(keep("up0"))
    with torch.no_grad():
        image = model.decode(z, return_dict=False)[0]
    processor = VaeImageProcessor(vae_scale_factor=2 ** (len(VAE_CONFIG["block_out_channels"]) - 1))
    pil = processor.postprocess(image, output_type="pil")
    u8 = torch.from_numpy(np.stack([np.asarray(p) for p in pil]))
    assert u8.dtype == torch.uint8 and tuple(u8.shape) == (B, height, width, 3), u8.shape
    tensors.update(vae_packed=packed, vae_unpacked=unpacked, vae_z=z, vae_conv_in=captured["conv_in"],
                   vae_mid=captured["mid"], vae_up0=captured["up0"], vae_image=image)
    tensors["vae_uint8"] = u8
    clipped = ((image < -1) | (image > 1)).float().mean().item()
    print(f"vae: image rms {image.pow(2).mean().sqrt():.4f}, {100 * clipped:.1f}% of values clipped by postprocess")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/data/flux")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out) / "pipeline"
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    schedulers(out, tensors)
    packing(tensors)
    vae(out, tensors)
    save_file({k: (v if v.dtype == torch.uint8 else v.float()).contiguous() for k, v in tensors.items()},
              str(out / "golden.safetensors"))
    print(f"wrote {out}: {len(tensors)} golden tensors")


if __name__ == "__main__":
    main()
