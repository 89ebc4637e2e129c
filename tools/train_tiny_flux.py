#!/usr/bin/env python3
"""Trains models/tiny-flux: a small FLUX-architecture text-to-image model on Fashion-MNIST, saved as a real diffusers
FluxPipeline folder, plus an MLP classifier that scores prompt-following (models/tiny-flux/README.md is its card).

What it makes (diffusers 0.42.1 / transformers 5.17 classes, every component saved with save_pretrained):
  tokenizer/, tokenizer_2/      a CLIP byte-level BPE (BpeTrainer's algorithm) and a T5 Unigram (sentencepiece),
                                trained on models/tiny-qwen3/calibration.txt + the captions
  text_encoder/, text_encoder_2/  CLIPTextModel and T5EncoderModel, randomly initialised and frozen (BF16)
  vae/                          AutoencoderKL, 3 -> 16 latent channels, 32 x 32 px -> 8 x 8 latents, FLUX's layout
                                (no quant convs), scaling/shift factors measured on the training latents (BF16)
  transformer/                  FluxTransformer2DModel, inner 128 = 4 heads x 32, 2 double + 4 single blocks, no
                                guidance embedding (true CFG with the empty negative prompt), BF16
  scheduler/                    FlowMatchEulerDiscreteScheduler with FLUX.1-dev's settings (dynamic shifting)
  classifier/                   model.safetensors + config.json: gray 32x32 -> 1024 -> 256 -> GELU(tanh) -> 10
  samples.png, samples_grid.png  one image per class / ten per class, made by diffusers' FluxPipeline
  tests/data/flux/tiny-flux-model/golden.safetensors  (phase "fixture") the C++ test's fixture

Data: Debian's dataset-fashion-mnist (apt-get install -y dataset-fashion-mnist: idx gzip files under
/usr/share/datasets/fashion-mnist; Fashion-MNIST is (c) Zalando SE, MIT licence). Images 28 -> 32 px (bilinear),
gray replicated to RGB. The VAE and the transformer train on the first --train-images (10000) training images;
`--pack FILE` writes just those as a small xz file so that a GPU machine can train from it (--data FILE). The
classifier trains on all 60000 training images and is tested on the 10000 test images (Debian files only).

Training (rectified flow exactly as FluxPipeline samples): x_t = (1 - s) x0 + s eps, the transformer predicts
eps - x0 at timestep s (FluxPipeline passes t / 1000 = sigma), s = logit-normal(0, 1) moved by FLUX's resolution
shift (mu of 16 image tokens); captions "a photo of a sneaker" style (several templates), 10 % empty captions; T5
sequences of --max-sequence-length (32) tokens, as FluxPipeline(max_sequence_length=32) makes them.

Phases (--phases, comma-separated; default all): text, vae, transformer (these three write the pipeline folder),
classifier, sample, fixture. Seeded (--seed); the text phase and everything after training run on the CPU in
float32 with OMP_NUM_THREADS threads (default 1) and are deterministic for a given thread count (the fixture
regenerates byte for byte). Training uses torch's deterministic algorithms where they exist; on CUDA the
memory-efficient attention backward has none, so GPU reruns differ slightly.

  CPU, everything (slow: the transformer's 8000 steps of batch 1024 take many hours on a few cores):
    venv/bin/python tools/train_tiny_flux.py
  As models/tiny-flux was made (the VAE and the transformer on a GPU, from the packed subset, everything else here):
    venv/bin/python tools/train_tiny_flux.py --phases text
    venv/bin/python tools/train_tiny_flux.py --pack .gpu/fashion-mnist-10k.xz
    (GPU, on a copy of models/tiny-flux)
           python tools/train_tiny_flux.py --data .gpu/fashion-mnist-10k.xz --phases vae,transformer --out COPY \
               --vae-stop-at 1237 --stop-at 2753
    (the steps where the 45 s / 150 s caps of the one H200 run stopped them: --max-seconds-vae 45 --max-seconds 150)
    (copy COPY/vae and COPY/transformer back into models/tiny-flux. A GPU machine without diffusers: pip download
    diffusers==0.42.1 --no-deps, and put the wheel's unpacked diffusers/ (or a zip of it) on PYTHONPATH)
    venv/bin/python tools/train_tiny_flux.py --phases classifier,sample,fixture
"""
import argparse
import gzip
import heapq
import io
from collections import Counter
import json
import lzma
import math
import os
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS; before CUDA starts

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = ROOT / "models" / "tiny-flux"
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"]
# The class as a caption names it.
NAMES = ["a t-shirt", "a pair of trousers", "a pullover", "a dress", "a coat", "a sandal", "a shirt", "a sneaker",
         "a bag", "an ankle boot"]
TEMPLATES = ["a photo of {}", "{}", "a picture of {}", "an image of {}", "a black and white photo of {}",
             "a product photo of {}"]
EVAL_TEMPLATE = "a photo of {}"
SIZE = 32                # pixels
LATENT = 8               # latent grid (VAE factor 4)
TOKENS = (LATENT // 2) ** 2  # image tokens of 2x2 patches
PACK_MAGIC = b"FMNIST1\n"
CLIP_VOCAB, T5_VOCAB = 2048, 1024  # BPE symbols learnt (CLIP's vocab adds the unused </w> bytes), Unigram pieces

CLIP_CONFIG = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                   max_position_embeddings=77, hidden_act="quick_gelu", layer_norm_eps=1e-5, projection_dim=64,
                   bos_token_id=0, eos_token_id=2, pad_token_id=1)  # FLUX's text_encoder's legacy ids: argmax pooling
T5_CONFIG = dict(d_model=64, d_kv=16, num_heads=4, d_ff=128, num_layers=2, feed_forward_proj="gated-gelu",
                 relative_attention_num_buckets=32, relative_attention_max_distance=128, layer_norm_epsilon=1e-6,
                 dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
                 is_encoder_decoder=False, tie_word_embeddings=True)
VAE_CONFIG = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                  up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64), layers_per_block=1,
                  act_fn="silu", latent_channels=16, norm_num_groups=16, sample_size=SIZE, scaling_factor=1.0,
                  shift_factor=0.0, force_upcast=True, use_quant_conv=False, use_post_quant_conv=False,
                  mid_block_add_attention=True)
# Every Linear of the blocks has in_features 128, 512 or 640: multiples of 128 (W4A16 group 128 applies).
TRANSFORMER_CONFIG = dict(patch_size=1, in_channels=64, out_channels=None, num_layers=2, num_single_layers=4,
                          attention_head_dim=32, num_attention_heads=4, joint_attention_dim=T5_CONFIG["d_model"],
                          pooled_projection_dim=CLIP_CONFIG["hidden_size"], guidance_embeds=False,
                          axes_dims_rope=(4, 14, 14))
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True, base_shift=0.5,
                        max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)  # FLUX.1-dev's


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# ----------------------------------------------------------------------------------------------------------- data

def read_idx(path):
    raw = gzip.open(path, "rb").read()
    (magic,) = struct.unpack(">I", raw[:4])
    assert magic >> 8 == 8, f"{path}: not an unsigned-byte idx file"
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_debian(split):
    prefix = "train" if split == "train" else "t10k"
    img, lab = DEBIAN_DIR / f"{prefix}-images-idx3-ubyte.gz", DEBIAN_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not img.exists():
        sys.exit(f"{img} is missing: apt-get install -y dataset-fashion-mnist (or pass --data FILE from --pack)")
    return read_idx(img), read_idx(lab)


def pack_subset(path, n):
    images, labels = load_debian("train")
    payload = struct.pack("<I", n) + images[:n].tobytes() + labels[:n].tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_bytes(PACK_MAGIC + lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME))
    log(f"wrote {path}: the first {n} training images, {Path(path).stat().st_size / 1e6:.2f} MB")


def load_train_subset(data, n):
    if data:
        raw = Path(data).read_bytes()
        assert raw.startswith(PACK_MAGIC), f"{data}: not a file of --pack"
        payload = lzma.decompress(raw[len(PACK_MAGIC):])
        (m,) = struct.unpack("<I", payload[:4])
        assert m >= n, f"{data} holds {m} images, --train-images asks for {n}"
        images = np.frombuffer(payload, np.uint8, count=m * 784, offset=4).reshape(m, 28, 28)
        labels = np.frombuffer(payload, np.uint8, count=m, offset=4 + m * 784)
        return images[:n], labels[:n]
    images, labels = load_debian("train")
    return images[:n], labels[:n]


def upscale(images):
    """uint8 [N, 28, 28] -> uint8 [N, 32, 32]: bilinear, as every image of this model is made."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8)).float()[:, None] / 255.0  # a writable copy
    y = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    return (y[:, 0].clamp(0, 1) * 255.0).round().to(torch.uint8)


def to_vae_input(gray_u8):
    """uint8 [N, 32, 32] -> float [N, 3, 32, 32] in [-1, 1] (diffusers' image normalisation), gray as RGB."""
    x = gray_u8.float()[:, None] / 127.5 - 1.0
    return x.expand(-1, 3, -1, -1).contiguous()


# ------------------------------------------------------------------------------------------------- text encoders

def tokenizer_corpus():
    """English text (the tiny Qwen3's calibration text) and the captions many times, so that the caption words are
    whole tokens and other prompts still tokenise sensibly."""
    text = (ROOT / "models" / "tiny-qwen3" / "calibration.txt").read_text(encoding="utf-8").splitlines()
    return [line for line in text if line.strip()] + [cap for cap in all_captions() if cap] * 50


def captions_of(c):
    return [t.format(NAMES[c]) for t in TEMPLATES]


def all_captions():
    return [cap for c in range(len(CLASSES)) for cap in captions_of(c)] + [""]


def train_clip_tokenizer(out_dir):
    """Byte-level BPE in CLIP's layout: 256 bytes, the same with </w>, the merges' results, then <|startoftext|> and
    <|endoftext|> as the last two ids (pad = eos = the largest id, as in FLUX's tokenizer). Words come from CLIP's
    own normaliser and pre-tokeniser (transformers' CLIPTokenizer); the merges from learn_bpe."""
    from tokenizers import pre_tokenizers
    from transformers import CLIPTokenizer
    base = CLIPTokenizer().backend_tokenizer
    words = Counter()
    for line in tokenizer_corpus():
        for piece, _ in base.pre_tokenizer.pre_tokenize_str(base.normalizer.normalize_str(line)):
            words[piece] += 1
    merges = learn_bpe(words, pre_tokenizers.ByteLevel.alphabet(), CLIP_VOCAB - 2)
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=lambda ch: _byte_of(ch))
    vocab = {}
    for piece in alphabet + [ch + "</w>" for ch in alphabet] + [a + b for a, b in merges]:
        vocab.setdefault(piece, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    clip = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    clip.save_pretrained(out_dir)
    return CLIPTokenizer.from_pretrained(out_dir)


def learn_bpe(words, alphabet, vocab_size, suffix="</w>"):
    """The merges tokenizers' BpeTrainer(vocab_size, end_of_word_suffix="</w>") learns from word counts: each step
    merges the most frequent adjacent pair (ties: the smallest pair of symbol ids), until vocab_size symbols. The
    trainer numbers the suffixed symbols in hash-map order, so it breaks some ties differently from run to run; here
    ids are fixed (the alphabet, then the suffixed symbols, each in code-point order). On this corpus the result is
    the trainer's, in the order it gives most often (one tie, at merges 1115-1116, comes out either way there)."""
    id2w = sorted(set(alphabet) | {ch for w in words for ch in w})
    id2w += [x for x in sorted({w[-1] + suffix for w in words}) if x not in id2w]
    w2id = {x: i for i, x in enumerate(id2w)}
    syms, counts = [], []
    for w, c in sorted(words.items()):
        syms.append([w2id[ch] for ch in w[:-1]] + [w2id[w[-1] + suffix]])
        counts.append(c)
    pair_counts, where = Counter(), {}
    for i, sym in enumerate(syms):
        for p in zip(sym, sym[1:]):
            pair_counts[p] += counts[i]
            where.setdefault(p, set()).add(i)
    heap = [(-c, a, b) for (a, b), c in pair_counts.items()]  # lazy: stale counts are re-pushed when popped
    heapq.heapify(heap)
    merges = []
    while heap and len(id2w) < vocab_size:
        neg, a, b = heapq.heappop(heap)
        cur = pair_counts.get((a, b), 0)
        if -neg != cur:
            if cur > 0:
                heapq.heappush(heap, (-cur, a, b))
            continue
        new = id2w[a] + id2w[b]
        if new not in w2id:
            w2id[new] = len(id2w)
            id2w.append(new)
        n = w2id[new]
        merges.append((id2w[a], id2w[b]))
        for i in sorted(where.pop((a, b), ())):
            sym, c, j = syms[i], counts[i], 0
            while j < len(sym) - 1:  # left to right, non-overlapping, as the trainer's Word::merge
                if sym[j] == a and sym[j + 1] == b:
                    changed = [((a, b), -c)]
                    if j > 0:
                        changed += [((sym[j - 1], a), -c), ((sym[j - 1], n), c)]
                    if j + 2 < len(sym):
                        changed += [((b, sym[j + 2]), -c), ((n, sym[j + 2]), c)]
                    sym[j:j + 2] = [n]
                    for p, d in changed:
                        pair_counts[p] += d
                        if d > 0:
                            where.setdefault(p, set()).add(i)
                            heapq.heappush(heap, (-pair_counts[p], p[0], p[1]))
                j += 1
        pair_counts.pop((a, b), None)
    return merges


def _byte_of(ch):
    """The byte a ByteLevel alphabet character stands for (GPT-2's bytes_to_unicode order)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    if ord(ch) in printable:
        return ord(ch)
    others = [b for b in range(256) if b not in printable]
    return others[ord(ch) - 256]


def train_t5_tokenizer(out_dir, max_len):
    """A SentencePiece Unigram in T5's id layout (<pad> 0, </s> 1, <unk> 2), no sentinel ids, as T5Tokenizer."""
    import sentencepiece as spm
    from transformers import T5Tokenizer
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(tokenizer_corpus()), model_writer=model,
                                   model_type="unigram", vocab_size=T5_VOCAB,
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, num_threads=1,
                                   shuffle_input_sentence=False, minloglevel=2)
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "spiece.model").write_bytes(model.getvalue())
        t5 = T5Tokenizer.from_pretrained(tmp, extra_ids=0, model_max_length=max_len)
        t5.save_pretrained(out_dir)
    for f in Path(out_dir).glob("spiece.model"):
        f.unlink()  # tokenizer.json is the tokenizer; the converted-from model file is not needed
    return T5Tokenizer.from_pretrained(out_dir)


def save_clip_text_encoder(model, directory):
    """As FLUX's text_encoder/ holds it: BF16, names under text_model. and the int64 position_ids buffer."""
    from safetensors.torch import save_file
    from transformers import CLIPTextModel
    directory.mkdir(parents=True, exist_ok=True)
    model.config.save_pretrained(directory)
    state = {"text_model." + k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    state["text_model.embeddings.position_ids"] = torch.arange(CLIP_CONFIG["max_position_embeddings"])[None]
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    back = CLIPTextModel.from_pretrained(directory, dtype=torch.float32)
    for k, v in model.state_dict().items():
        assert torch.equal(v.to(torch.bfloat16).float(), back.state_dict()[k]), k
    return back.eval()


def phase_text(out, args):
    """Tokenizers, random frozen text encoders (CPU, seeded), the scheduler config and model_index.json."""
    from diffusers import FlowMatchEulerDiscreteScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel
    for sub in ("tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "scheduler"):
        shutil.rmtree(out / sub, ignore_errors=True)
    clip_tok = train_clip_tokenizer(out / "tokenizer")
    t5_tok = train_t5_tokenizer(out / "tokenizer_2", args.max_sequence_length)
    torch.manual_seed(args.seed + 1)
    clip = CLIPTextModel(CLIPTextConfig(vocab_size=len(clip_tok), **CLIP_CONFIG)).eval()
    save_clip_text_encoder(clip, out / "text_encoder")
    torch.manual_seed(args.seed + 2)
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), **T5_CONFIG)).eval()
    t5.to(torch.bfloat16).save_pretrained(out / "text_encoder_2")
    FlowMatchEulerDiscreteScheduler(**SCHEDULER_CONFIG).save_pretrained(out / "scheduler")
    write_model_index(out)
    log(f"text: CLIP BPE vocab {len(clip_tok)}, T5 Unigram vocab {len(t5_tok)};",
        "ids of", repr(EVAL_TEMPLATE.format(NAMES[7])), clip_tok(EVAL_TEMPLATE.format(NAMES[7])).input_ids,
        t5_tok(EVAL_TEMPLATE.format(NAMES[7])).input_ids)


def write_model_index(out):
    index = {"_class_name": "FluxPipeline", "_diffusers_version": "0.42.1",
             "feature_extractor": [None, None], "image_encoder": [None, None],
             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "text_encoder_2": ["transformers", "T5EncoderModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "T5TokenizerFast"],
             "transformer": ["diffusers", "FluxTransformer2DModel"], "vae": ["diffusers", "AutoencoderKL"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")


def text_pipeline(out):
    """A FluxPipeline of the text parts only, float32 on the CPU: its encode_prompt is the conditioning."""
    from diffusers import FluxPipeline
    from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer
    return FluxPipeline(scheduler=None, vae=None, transformer=None,
                        text_encoder=CLIPTextModel.from_pretrained(out / "text_encoder", dtype=torch.float32).eval(),
                        tokenizer=CLIPTokenizer.from_pretrained(out / "tokenizer"),
                        text_encoder_2=T5EncoderModel.from_pretrained(out / "text_encoder_2",
                                                                      dtype=torch.float32).eval(),
                        tokenizer_2=T5Tokenizer.from_pretrained(out / "tokenizer_2"))


def encode_captions(out, captions, max_len):
    pipe = text_pipeline(out)
    with torch.no_grad():
        seq, pooled, _ = pipe.encode_prompt(prompt=captions, prompt_2=None, device=torch.device("cpu"),
                                            max_sequence_length=max_len)
    return seq.float(), pooled.float()


# --------------------------------------------------------------------------------------------------------- VAE

def phase_vae(out, args, device):
    from diffusers import AutoencoderKL
    images, _ = load_train_subset(args.data, args.train_images)
    x_all = to_vae_input(upscale(images))
    torch.manual_seed(args.seed + 3)
    vae = AutoencoderKL(**VAE_CONFIG).to(device).train()
    n_params = sum(p.numel() for p in vae.parameters())
    opt = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    sched = warmup_cosine(opt, args.vae_steps, warmup=min(200, args.vae_steps // 10))
    gen = torch.Generator(device=device).manual_seed(args.seed + 4)
    x_dev = x_all.to(device)
    t0, step = time.time(), 0
    for step in range(1, args.vae_steps + 1):
        idx = torch.randint(0, x_all.shape[0], (args.vae_batch,), generator=gen, device=device)
        x = x_dev[idx]
        post = vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen, device=device)
        rec = vae.decode(z).sample
        mse = F.mse_loss(rec, x)
        kl = 0.5 * (post.mean.pow(2) + post.var - 1.0 - post.logvar).mean()
        loss = mse + args.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, args.vae_steps // 10) == 0 or step == 1:
            log(f"vae step {step}/{args.vae_steps}: mse {mse.item():.5f} kl {kl.item():.3f} ({time.time() - t0:.0f} s)")
        if step == args.vae_stop_at:
            log(f"vae: stopped at step {step} of the {args.vae_steps}-step schedule (--vae-stop-at)")
            break
        if args.max_seconds_vae and time.time() - t0 > args.max_seconds_vae:
            log(f"WARNING: vae stopped at step {step} by --max-seconds-vae {args.max_seconds_vae}")
            break
    vae.eval()
    lat = encode_latents(vae, x_dev)
    shift, scale = float(lat.mean()), float(1.0 / lat.std())
    shift, scale = round(shift, 4), round(scale, 4)
    with torch.no_grad():  # reconstruction error of the latents' means on 512 training images
        rec = vae.decode(lat[:512].to(device)).sample
        mse = F.mse_loss(rec, x_dev[:512]).item()
    vae.register_to_config(scaling_factor=scale, shift_factor=shift)
    shutil.rmtree(out / "vae", ignore_errors=True)
    vae.to("cpu").to(torch.bfloat16).save_pretrained(out / "vae", safe_serialization=True)
    log(f"vae: {n_params / 1e6:.2f} M params, {step} steps in {time.time() - t0:.0f} s, train mse {mse:.5f} "
        f"(PSNR {10 * math.log10(4 / mse):.1f} dB on [-1, 1]), shift {shift}, scaling {scale}")
    return {"vae_steps": step, "vae_mse": mse, "vae_params": n_params}


def encode_latents(vae, x, batch=1024):
    with torch.no_grad():
        return torch.cat([vae.encode(x[i:i + batch]).latent_dist.mode().float() for i in range(0, x.shape[0], batch)])


def warmup_cosine(opt, steps, warmup, floor=0.1):
    def f(s):
        if s < warmup:
            return (s + 1) / warmup
        p = (s - warmup) / max(1, steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


# ------------------------------------------------------------------------------------------------- transformer

def flux_mu(image_seq_len):
    c = SCHEDULER_CONFIG
    m = (c["max_shift"] - c["base_shift"]) / (c["max_image_seq_len"] - c["base_image_seq_len"])
    return image_seq_len * m + c["base_shift"] - m * c["base_image_seq_len"]


def phase_transformer(out, args, device):
    from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
    images, labels = load_train_subset(args.data, args.train_images)
    vae = AutoencoderKL.from_pretrained(out / "vae", torch_dtype=torch.float32).to(device).eval()
    lat = encode_latents(vae, to_vae_input(upscale(images)).to(device))
    lat = (lat - vae.config.shift_factor) * vae.config.scaling_factor
    x0_all = FluxPipeline._pack_latents(lat, lat.shape[0], lat.shape[1], LATENT, LATENT)  # [N, 16, 64]
    log(f"transformer: latents {tuple(lat.shape)}, normalised mean {lat.mean():.3f} std {lat.std():.3f}")
    del vae
    captions = all_captions()
    seq_all, pooled_all = encode_captions(out, captions, args.max_sequence_length)
    seq_all, pooled_all = seq_all.to(device), pooled_all.to(device)
    per_class, empty = len(TEMPLATES), len(captions) - 1
    labels_dev = torch.from_numpy(labels.astype(np.int64)).to(device)
    img_ids = FluxPipeline._prepare_latent_image_ids(1, LATENT // 2, LATENT // 2, device, torch.float32)
    txt_ids = torch.zeros(args.max_sequence_length, 3, device=device)

    torch.manual_seed(args.seed + 5)
    model = FluxTransformer2DModel(**TRANSFORMER_CONFIG).to(device).train()
    ema = FluxTransformer2DModel(**TRANSFORMER_CONFIG).to(device).eval()
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    ema_params, model_params = list(ema.parameters()), list(model.parameters())
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.99), weight_decay=0.01)
    sched = warmup_cosine(opt, args.steps, warmup=min(500, args.steps // 10))
    gen = torch.Generator(device=device).manual_seed(args.seed + 6)
    mu = flux_mu(TOKENS)
    t0, step, avg = time.time(), 0, torch.zeros((), device=device)
    for step in range(1, args.steps + 1):
        B = args.batch
        idx = torch.randint(0, x0_all.shape[0], (B,), generator=gen, device=device)
        template = torch.randint(0, per_class, (B,), generator=gen, device=device)
        drop = torch.rand(B, generator=gen, device=device) < args.caption_dropout
        eps = torch.randn((B, TOKENS, 64), generator=gen, device=device)
        s = torch.sigmoid(torch.randn(B, generator=gen, device=device))
        sigma = math.exp(mu) / (math.exp(mu) + (1.0 / s - 1.0))  # FLUX's time shift of the logit-normal draw
        cap = torch.where(drop, torch.full_like(template, empty), labels_dev[idx] * per_class + template)
        x0 = x0_all[idx]
        xt = (1.0 - sigma)[:, None, None] * x0 + sigma[:, None, None] * eps
        pred = model(hidden_states=xt, encoder_hidden_states=seq_all[cap], pooled_projections=pooled_all[cap],
                     timestep=sigma, img_ids=img_ids, txt_ids=txt_ids, return_dict=False)[0]
        loss = F.mse_loss(pred, eps - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, model_params, 1.0 - decay)
        avg = loss.detach() if step == 1 else 0.99 * avg + 0.01 * loss.detach()  # no host sync per step
        if step % max(1, args.steps // 20) == 0 or step == 1:
            log(f"transformer step {step}/{args.steps}: loss {loss.item():.4f} (avg {avg:.4f}), lr "
                f"{sched.get_last_lr()[0]:.2e} ({time.time() - t0:.0f} s)")
        if step == args.stop_at:
            log(f"transformer: stopped at step {step} of the {args.steps}-step schedule (--stop-at)")
            break
        if args.max_seconds and time.time() - t0 > args.max_seconds:
            log(f"WARNING: transformer stopped at step {step} by --max-seconds {args.max_seconds}")
            break
    shutil.rmtree(out / "transformer", ignore_errors=True)
    ema.to("cpu").to(torch.bfloat16).save_pretrained(out / "transformer", safe_serialization=True)
    log(f"transformer: {n_params / 1e6:.2f} M params, {step} steps in {time.time() - t0:.0f} s (EMA saved)")
    return {"transformer_steps": step, "transformer_params": n_params}


# -------------------------------------------------------------------------------------------------- classifier

class Classifier(nn.Module):
    """gray = mean of the RGB channels / 255, flattened row-major (1024) -> fc1 (256) -> GELU(tanh) -> fc2 (10)."""

    def __init__(self, hidden=256):
        super().__init__()
        self.fc1 = nn.Linear(SIZE * SIZE, hidden)
        self.fc2 = nn.Linear(hidden, len(CLASSES))

    @staticmethod
    def prepare(rgb_u8):  # uint8 [N, 32, 32, 3] (or gray [N, 32, 32]) -> float [N, 1024]
        x = torch.as_tensor(rgb_u8).float()
        if x.ndim == 4:
            x = x.mean(-1)
        return x.reshape(x.shape[0], -1) / 255.0

    def features(self, x):
        return F.gelu(self.fc1(x), approximate="tanh")

    def forward(self, x):
        return self.fc2(self.features(x))


def shift_images(x, gen, max_shift=2):
    """Random translations of up to max_shift pixels (zero fill): generated items are not always centred."""
    n = x.shape[0]
    pad = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(SIZE)[None])[:, :, None].expand(n, SIZE, SIZE)
    cols = (dx[:, None] + torch.arange(SIZE)[None])[:, None, :].expand(n, SIZE, SIZE)
    return pad[torch.arange(n)[:, None, None], rows, cols]


def phase_classifier(out, args):
    from safetensors.torch import save_file
    tr_img, tr_lab = load_debian("train")
    te_img, te_lab = load_debian("test")
    xtr, xte = upscale(tr_img).float() / 255.0, upscale(te_img).float() / 255.0
    ytr, yte = torch.from_numpy(tr_lab.astype(np.int64)), torch.from_numpy(te_lab.astype(np.int64))
    torch.manual_seed(args.seed + 7)
    model = Classifier()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps_per_epoch = xtr.shape[0] // 256
    sched = warmup_cosine(opt, args.classifier_epochs * steps_per_epoch, warmup=100, floor=0.0)
    gen = torch.Generator().manual_seed(args.seed + 8)
    for epoch in range(args.classifier_epochs):
        model.train()
        perm = torch.randperm(xtr.shape[0], generator=gen)
        for i in range(steps_per_epoch):
            b = perm[i * 256:(i + 1) * 256]
            x = shift_images(xtr[b], gen).reshape(len(b), -1)
            loss = F.cross_entropy(model(x), ytr[b], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = classifier_accuracy(model, xte.reshape(xte.shape[0], -1), yte)
        log(f"classifier epoch {epoch + 1}/{args.classifier_epochs}: loss {loss.item():.3f}, test accuracy {acc:.4f}")
    d = out / "classifier"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"),
              metadata={"format": "pt"})
    config = {"model_type": "omniround_mlp_classifier", "image_size": SIZE,
              "input": "gray = mean of the R, G, B bytes / 255, flattened row-major",
              "layers": ["fc1", "gelu_tanh", "fc2"], "in_features": SIZE * SIZE, "hidden_size": 256,
              "num_classes": len(CLASSES), "labels": CLASSES, "features": "the GELU output of fc1 (256)",
              "test_accuracy": round(acc, 4), "train_images": int(xtr.shape[0]), "test_images": int(xte.shape[0]),
              "epochs": args.classifier_epochs, "seed": args.seed}
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    log(f"classifier: test accuracy {acc:.4f} on {xte.shape[0]} Fashion-MNIST test images -> {d}")
    return acc


def classifier_accuracy(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(-1) == y).float().mean().item()


def load_classifier(out):
    from safetensors.torch import load_file
    model = Classifier()
    model.load_state_dict(load_file(str(out / "classifier" / "model.safetensors")))
    return model.eval()


# ---------------------------------------------------------------------------------------------------- sampling

def load_pipeline(out):
    from diffusers import FluxPipeline
    return FluxPipeline.from_pretrained(out, torch_dtype=torch.float32)


def generate(pipe, classes, seeds, cfg, steps, max_len, batch=50):
    """uint8 RGB [N, 32, 32, 3] for prompts EVAL_TEMPLATE of `classes`, noise from torch.Generator(seed)."""
    images = []
    for i in range(0, len(classes), batch):
        cs, ss = classes[i:i + batch], seeds[i:i + batch]
        extra = dict(negative_prompt=[""] * len(cs), true_cfg_scale=cfg) if cfg > 1 else {}
        with torch.no_grad():
            out = pipe(prompt=[EVAL_TEMPLATE.format(NAMES[c]) for c in cs], height=SIZE, width=SIZE,
                       num_inference_steps=steps, max_sequence_length=max_len, output_type="np",
                       generator=[torch.Generator().manual_seed(s) for s in ss], **extra).images
        images.append(np.round(out * 255).astype(np.uint8))
    return np.concatenate(images)


def contact_sheet(images, labels, path, zoom=4, columns=10):
    from PIL import Image, ImageDraw
    n = len(images)
    rows = (n + columns - 1) // columns
    cell, text_h = SIZE * zoom, 14 if labels else 0
    sheet = Image.new("RGB", (columns * cell, rows * (cell + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        sheet.paste(Image.fromarray(img).resize((cell, cell), Image.NEAREST), (c * cell, r * (cell + text_h)))
        if labels:
            draw.text((c * cell + 3, r * (cell + text_h) + cell + 1), labels[i], fill="black")
    sheet.save(path, optimize=True)


def frechet(a, b):
    """Fréchet distance between Gaussians fitted to feature sets a, b [N, D] (float64)."""
    a, b = a.double(), b.double()
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    ea, va = torch.linalg.eigh(ca)
    sa = va @ torch.diag(ea.clamp(min=0).sqrt()) @ va.T  # sqrt(ca)
    m = sa @ cb @ sa
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return float((ma - mb).pow(2).sum() + ca.trace() + cb.trace() - 2 * tr_sqrt)


def phase_sample(out, args):
    pipe = load_pipeline(out)
    clf = load_classifier(out)
    classes = [c for c in range(len(CLASSES)) for _ in range(10)]
    seeds = [1000 + 10 * c + k for c in range(len(CLASSES)) for k in range(10)]
    te_img, te_lab = load_debian("test")
    real = upscale(te_img[:1000])
    with torch.no_grad():
        real_feat = clf.features(Classifier.prepare(real))
    results = {}
    for cfg in args.eval_cfg:
        t0 = time.time()
        imgs = generate(pipe, classes, seeds, cfg, args.sample_steps, args.max_sequence_length)
        with torch.no_grad():
            x = Classifier.prepare(imgs)
            pred = clf(x).argmax(-1)
            feat = clf.features(x)
        acc = (pred == torch.tensor(classes)).float().mean().item()
        fd = frechet(feat, real_feat)
        results[cfg] = (acc, fd)
        per_class = [(pred[10 * c:10 * c + 10] == c).sum().item() for c in range(len(CLASSES))]
        log(f"sample: true_cfg_scale {cfg}, {args.sample_steps} steps: classifier accuracy {acc:.2f} on 100 images "
            f"(per class {per_class}), Fréchet distance to 1000 test images {fd:.2f} ({time.time() - t0:.0f} s)")
        if cfg == args.cfg:
            contact_sheet(imgs, None, out / "samples_grid.png", zoom=2)
    first = generate(pipe, list(range(len(CLASSES))), [0] * len(CLASSES), args.cfg, args.sample_steps,
                     args.max_sequence_length)
    contact_sheet(first, CLASSES, out / "samples.png")
    log(f"sample: wrote {out / 'samples.png'} (seed 0, true_cfg_scale {args.cfg}) and samples_grid.png")
    return results


# ------------------------------------------------------------------------------------------------------ fixture

def phase_fixture(out, args):
    """The C++ test's golden (tests/data/flux/tiny-flux-model/golden.safetensors), CPU float32 on the BF16 weights:
      prompt                     the prompt's UTF-8 bytes (U8)
      clip_input_ids, t5_input_ids, negative_clip_input_ids, negative_t5_input_ids   I32 token ids
      prompt_embeds [32, 64], pooled [64], negative_prompt_embeds, negative_pooled    the encoders' outputs
      latents [1, 16, 64]        packed initial noise (torch.Generator seed 7)
      final_latents [1, 16, 64]  after FIXTURE_STEPS steps of true CFG 4 with the empty negative prompt
      image U8 [32, 32, 3]       the decoded image (round(255 x), as diffusers' PIL path)
      classifier_images U8 [5, 32, 32, 3]  four test images and `image`;
      classifier_probs [5, 10], classifier_features [5, 256]   the classifier's softmax and fc1 GELU output
      frechet_a [64, 256], frechet_b [48, 256]  the features of test images 0-63 and 64-111
      frechet F64 [1]            frechet(frechet_a, frechet_b)"""
    from safetensors.torch import save_file
    prompt, steps, cfg = EVAL_TEMPLATE.format(NAMES[7]), 12, 4.0
    pipe = load_pipeline(out)
    seq, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, max_sequence_length=args.max_sequence_length)
    nseq, npooled, _ = pipe.encode_prompt(prompt="", prompt_2=None, max_sequence_length=args.max_sequence_length)
    g = torch.Generator().manual_seed(7)
    noise = torch.randn(1, 16, LATENT, LATENT, generator=g)
    latents = pipe._pack_latents(noise, 1, 16, LATENT, LATENT)
    final = []
    with torch.no_grad():
        image = pipe(prompt_embeds=seq, pooled_prompt_embeds=pooled, negative_prompt_embeds=nseq,
                     negative_pooled_prompt_embeds=npooled, true_cfg_scale=cfg, latents=latents.clone(), height=SIZE,
                     width=SIZE, num_inference_steps=steps, output_type="np",
                     callback_on_step_end=lambda _p, _i, _t, kw: final.append(kw["latents"].clone()) or kw).images[0]
    image = torch.from_numpy(np.round(image * 255).astype(np.uint8))

    def ids(tok, text, n):
        return torch.tensor(tok(text, padding="max_length", max_length=n, truncation=True).input_ids, dtype=torch.int32)
    te_img, _ = load_debian("test")
    clf_imgs = torch.cat([upscale(te_img[:4])[..., None].expand(-1, -1, -1, 3), image[None]]).contiguous()
    clf = load_classifier(out)
    with torch.no_grad():
        x = Classifier.prepare(clf_imgs)
        probs, feats = torch.softmax(clf(x), -1), clf.features(x)
        real = clf.features(Classifier.prepare(upscale(te_img[:112])))
    golden = {"prompt": torch.tensor(list(prompt.encode()), dtype=torch.uint8),
              "clip_input_ids": ids(pipe.tokenizer, prompt, 77), "t5_input_ids": ids(pipe.tokenizer_2, prompt,
                                                                                       args.max_sequence_length),
              "negative_clip_input_ids": ids(pipe.tokenizer, "", 77),
              "negative_t5_input_ids": ids(pipe.tokenizer_2, "", args.max_sequence_length),
              "prompt_embeds": seq[0], "pooled": pooled[0], "negative_prompt_embeds": nseq[0],
              "negative_pooled": npooled[0], "latents": latents, "final_latents": final[-1], "image": image,
              "classifier_images": clf_imgs, "classifier_probs": probs, "classifier_features": feats,
              "frechet_a": real[:64], "frechet_b": real[64:],
              "frechet": torch.tensor([frechet(real[:64], real[64:])], dtype=torch.float64)}
    # The committed fixture belongs to models/tiny-flux; a model trained elsewhere gets its own beside it.
    d = ROOT / "tests" / "data" / "flux" / "tiny-flux-model" if out.resolve() == DEFAULT_OUT.resolve() else out
    d.mkdir(parents=True, exist_ok=True)
    # No metadata: safetensors writes several keys in hash order, which would make the file differ between runs.
    save_file({k: v.contiguous() for k, v in golden.items()}, str(d / "golden.safetensors"))
    log(f"fixture: {prompt!r}, {steps} steps, true CFG {cfg}: image mean {image.float().mean():.2f}, classifier says "
        f"{CLASSES[int(probs[4].argmax())]} ({probs[4].max():.2f}) -> {d / 'golden.safetensors'}")


# ----------------------------------------------------------------------------------------------------------- main

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--data", help="a file of --pack (default: the Debian files)")
    p.add_argument("--pack", help="write the first --train-images training images to this file and exit")
    p.add_argument("--phases", default="text,vae,transformer,classifier,sample,fixture")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--train-images", type=int, default=10000)
    p.add_argument("--max-sequence-length", type=int, default=32)
    p.add_argument("--vae-steps", type=int, default=3000)
    p.add_argument("--vae-batch", type=int, default=256)
    p.add_argument("--vae-lr", type=float, default=1e-3)
    p.add_argument("--vae-kl", type=float, default=1e-4)
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--caption-dropout", type=float, default=0.1)
    p.add_argument("--classifier-epochs", type=int, default=15)
    p.add_argument("--sample-steps", type=int, default=28)
    p.add_argument("--cfg", type=float, default=4.0, help="true_cfg_scale of the contact sheets")
    p.add_argument("--eval-cfg", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 2.0, 3.0, 4.0, 6.0])
    p.add_argument("--vae-stop-at", type=int, default=0, help="stop the VAE at this step of its schedule (0: none)")
    p.add_argument("--stop-at", type=int, default=0, help="stop the transformer at this step of its schedule (0: none)")
    p.add_argument("--max-seconds", type=float, default=0, help="safety cap of the transformer's training (0: none)")
    p.add_argument("--max-seconds-vae", type=float, default=0, help="safety cap of the VAE's training (with --max-seconds)")
    args = p.parse_args()
    if args.pack:
        pack_subset(args.pack, args.train_images)
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.set_float32_matmul_precision("high")  # TF32 on a GPU (deterministic); no effect on the CPU
    if args.device == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    phases = args.phases.split(",")
    unknown = set(phases) - {"text", "vae", "transformer", "classifier", "sample", "fixture"}
    assert not unknown, f"unknown phases {unknown}"
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    log(f"torch {torch.__version__} on {device}; phases {phases}; out {args.out}")
    facts = {}
    if "text" in phases:
        phase_text(args.out, args)
    if "vae" in phases:
        facts.update(phase_vae(args.out, args, device))
    if "transformer" in phases:
        facts.update(phase_transformer(args.out, args, device))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if "classifier" in phases:
        facts["classifier_test_accuracy"] = phase_classifier(args.out, args)
    if "sample" in phases:
        facts["sample"] = phase_sample(args.out, args)
    if "fixture" in phases:
        phase_fixture(args.out, args)
    log("done:", json.dumps(facts))


if __name__ == "__main__":
    main()
