#!/usr/bin/env python3
"""Golden of text to image end to end (diffusers' FluxPipeline called with a prompt string) for
tests/pipelines/diffusion/flux_text_to_image_test.cpp and `omniround image`.

The pipeline folder is assembled from existing fixtures plus the two text encoders written here:
  transformer/     tests/data/flux/tiny-pipeline/transformer (joint_attention_dim 24, pooled_projection_dim 20)
  vae/, scheduler/ tests/data/flux/pipeline/{vae,scheduler} (FLUX.1-dev's scheduler config)
  tokenizer/       tests/data/tokenizers/clip/vocab_merges   (vocab.json + merges.txt, as FLUX.1-dev ships CLIP's)
  tokenizer_2/     tests/data/tokenizers/t5                  (tokenizer.json of a SentencePiece unigram)
  text_encoder/    written here: a CLIPTextModel of hidden 20 over the tokenizer's vocabulary, FLUX's legacy
                   eos_token_id 2 (pooling at the largest id: <|endoftext|> is the last id)
  text_encoder_2/  written here: a T5EncoderModel (gated GELU) of d_model 24 over tokenizer_2's vocabulary
The test builds the same folder at run time from these paths (nothing is stored twice).

The initial noise is omniround's own (FluxPipeline::noise: SplitMix64 + Box-Muller in double, row-major
[1, 16, h, w]), replicated here and passed to diffusers as packed latents, so the image depends on nothing
but the seed. Prompts run through diffusers' own tokenizer calls (CLIPTokenizer, T5TokenizerFast of
transformers 5.17), encoders, denoising loop and VAE in float32.

tests/data/flux/tiny-t2i/golden.safetensors, per case c in (plain, cfg):
  {c}_clip_ids I32 [77], {c}_t5_ids I32 [MAX_SEQ]   what the tokenizers gave
  {c}_prompt_embeds [MAX_SEQ, 24], {c}_pooled [20]  the encoders' outputs
  {c}_image U8 [64, 64, 3]                          round(255 x) of diffusers' float image
Deterministic: seeded, single-threaded.  Usage: venv/bin/python tools/make_flux_text_to_image_golden.py
"""
import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from safetensors.torch import save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, T5Config, T5EncoderModel, T5TokenizerFast

# The same random initialisation and BF16 save as the encoder goldens (one place for both).
from make_text_encoder_fixtures import randomize, save_bf16

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
OUT = DATA / "flux" / "tiny-t2i"
SIZE, STEPS, MAX_SEQ, SEED = 64, 3, 24, 7
CASES = {
    "plain": dict(prompt="A photo of a RED  sneaker,\tstudio light!", true_cfg_scale=1.0),
    "cfg": dict(prompt="a pair of trousers on a wooden table", negative_prompt="blurry, dark", true_cfg_scale=2.0),
}
MASK = (1 << 64) - 1


def omni_noise(seed, shape):
    """FluxPipeline::noise: SplitMix64(seed), u1 = ((next >> 11) + 1) / 2^53, u2 = (next >> 11) / 2^53, pairs
    z0 = sqrt(-2 ln u1) cos(2 pi u2), z1 = ... sin(...), in double, rounded to float."""
    state = seed & MASK

    def nxt():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    n = int(np.prod(shape))
    out = np.empty(n, dtype=np.float32)
    for i in range(0, n, 2):
        u1 = ((nxt() >> 11) + 1.0) / 9007199254740992.0
        u2 = (nxt() >> 11) / 9007199254740992.0
        r = math.sqrt(-2.0 * math.log(u1))
        out[i] = r * math.cos(2 * math.pi * u2)
        if i + 1 < n:
            out[i + 1] = r * math.sin(2 * math.pi * u2)
    return torch.from_numpy(out.reshape(shape))


def assemble(folder, clip_dir, t5_dir):
    for name, src in (("transformer", DATA / "flux" / "tiny-pipeline" / "transformer"),
                      ("vae", DATA / "flux" / "pipeline" / "vae"), ("scheduler", DATA / "flux" / "pipeline" / "scheduler"),
                      ("tokenizer", DATA / "tokenizers" / "clip" / "vocab_merges"),
                      ("tokenizer_2", DATA / "tokenizers" / "t5"), ("text_encoder", clip_dir),
                      ("text_encoder_2", t5_dir)):
        shutil.copytree(src, folder / name, ignore=shutil.ignore_patterns("broken", "*.jsonl", "tiny_valid"))


def main():
    torch.manual_seed(20261202)
    torch.set_num_threads(1)
    clip_tok = CLIPTokenizer.from_pretrained(DATA / "tokenizers" / "clip" / "vocab_merges")
    t5_tok = T5TokenizerFast.from_pretrained(DATA / "tokenizers" / "t5")
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(clip_tok), hidden_size=20, intermediate_size=40,
                                        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=77,
                                        hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=20,
                                        bos_token_id=0, eos_token_id=2, pad_token_id=1)).eval()
    assert clip_tok.eos_token_id == len(clip_tok) - 1, "legacy pooling needs <|endoftext|> as the largest id"
    randomize(clip)
    t5_config = T5Config(vocab_size=len(t5_tok), d_model=24, d_kv=8, num_heads=3, d_ff=48, num_layers=2,
                         feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                         relative_attention_max_distance=128, layer_norm_epsilon=1e-6, dropout_rate=0.0,
                         pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, is_encoder_decoder=False,
                         tie_word_embeddings=True)
    t5 = T5EncoderModel(t5_config).eval()
    randomize(t5, q_scale=t5_config.d_kv ** -0.5)
    OUT.mkdir(parents=True, exist_ok=True)
    clip = save_bf16(clip, OUT / "text_encoder")
    t5 = save_bf16(t5, OUT / "text_encoder_2")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pipe"
        assemble(folder, OUT / "text_encoder", OUT / "text_encoder_2")
        (folder / "model_index.json").write_text(json.dumps({
            "_class_name": "FluxPipeline", "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
            "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}))
        pipe = FluxPipeline(
            scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(folder / "scheduler"),
            vae=AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval(),
            text_encoder=clip, tokenizer=CLIPTokenizer.from_pretrained(folder / "tokenizer"),
            text_encoder_2=t5, tokenizer_2=T5TokenizerFast.from_pretrained(folder / "tokenizer_2"),
            transformer=FluxTransformer2DModel.from_pretrained(folder / "transformer", torch_dtype=torch.float32).eval())

        latent = 2 * (SIZE // 16)
        noise = omni_noise(SEED, (1, 16, latent, latent))
        packed = FluxPipeline._pack_latents(noise, 1, 16, latent, latent)
        golden = {}
        for tag, case in CASES.items():
            with torch.no_grad():
                embeds, pooled, _ = pipe.encode_prompt(prompt=case["prompt"], prompt_2=None,
                                                       max_sequence_length=MAX_SEQ)
                image = pipe(**case, latents=packed.clone(), height=SIZE, width=SIZE, num_inference_steps=STEPS,
                             guidance_scale=3.5, max_sequence_length=MAX_SEQ, output_type="np").images[0]
            golden[f"{tag}_clip_ids"] = clip_tok(case["prompt"], padding="max_length", max_length=77, truncation=True,
                                                 return_tensors="pt").input_ids[0].int()
            golden[f"{tag}_t5_ids"] = t5_tok(case["prompt"], padding="max_length", max_length=MAX_SEQ, truncation=True,
                                             return_tensors="pt").input_ids[0].int()
            golden[f"{tag}_prompt_embeds"] = embeds[0].float()
            golden[f"{tag}_pooled"] = pooled[0].float()
            golden[f"{tag}_image"] = torch.from_numpy(np.round(image * 255).astype(np.uint8))
    save_file({k: v.contiguous() for k, v in golden.items()}, str(OUT / "golden.safetensors"))
    print(f"wrote {OUT}: {len(golden)} tensors; plain image mean {golden['plain_image'].float().mean():.2f}, "
          f"cfg image mean {golden['cfg_image'].float().mean():.2f}")


if __name__ == "__main__":
    main()
