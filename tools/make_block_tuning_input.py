#!/usr/bin/env python3
"""Block-tuning input for the PyTorch reference loop and the C++ tuner: block 0 of models/tiny-qwen3 on its
calibration text.

Calibration samples replay src/pipelines/calibration_samples.cpp (policy "concat"): non-blank lines of the text
file (trailing '\\r' removed), their order shuffled with splitmix64(seed) + Fisher-Yates (the shared contract's
generator), each tokenized with the model's tokenizer.json (no special tokens added), joined with <|endoftext|>
between texts, cut into consecutive `seqlen`-token chunks; the first `nsamples` chunks are used.

The model runs in float32 with eager attention (transformers). Block 0's input hidden states are `x_q`
(= X_fp for block 0) and its output is `y_ref`. Written to OUT (default out/block_tuning_input/, not committed):

  config.json          the model's config (block 0 is model.layers.0)
  block.safetensors    model.layers.0.* weights (F32, exact copies of the BF16 values), x_q F32 [n, T, D],
                       y_ref F32 [n, T, D], input_ids I32 [n, T]
  meta.json            model, dataset, nsamples, seqlen, seed, sha256 of the text and of the ids

Usage: /work/venv/bin/python tools/make_block_tuning_input.py [--model models/tiny-qwen3] [--dataset FILE]
         [--nsamples 32] [--seqlen 256] [--seed 42] [--out out/block_tuning_input]
"""

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autoround_torch as art  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SEPARATOR = "<|endoftext|>"


def read_texts(path):
    texts = []
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if line.endswith("\r"):
            line = line[:-1]
        if line.strip(" \t\r\n\f\v"):
            texts.append(line)
    if not texts:
        raise SystemExit(f"{path}: no non-blank lines")
    return texts


def calibration_samples(tokenizer, texts, nsamples, seqlen, seed):
    """The C++ 'concat' policy: shuffled text order, texts joined by the separator, consecutive chunks."""
    order = list(range(len(texts)))
    art.fisher_yates(order, art.SplitMix64(seed))
    sep = tokenizer.token_to_id(SEPARATOR)
    if sep is None:
        raise SystemExit(f"tokenizer has no {SEPARATOR}")
    stream, used = [], 0
    for k in order:
        ids = tokenizer.encode(texts[k], add_special_tokens=False).ids
        if not ids:
            continue
        if used:
            stream.append(sep)
        stream.extend(ids)
        used += 1
        if len(stream) >= nsamples * seqlen:
            break
    if len(stream) < nsamples * seqlen:
        raise SystemExit(f"the texts give {len(stream)} tokens, fewer than {nsamples} x {seqlen}")
    return torch.tensor(stream[:nsamples * seqlen], dtype=torch.int64).reshape(nsamples, seqlen)


def capture_block0(model, ids, chunk=8):
    """Runs the model and records model.layers[0]'s input hidden states and output."""
    layer = model.model.layers[0]
    xs, ys = [], []

    def hook(_module, args, kwargs, output):
        hs = args[0] if args else kwargs["hidden_states"]
        xs.append(hs.detach().clone())
        ys.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    handle = layer.register_forward_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for i in range(0, ids.shape[0], chunk):
                model.model(input_ids=ids[i:i + chunk], use_cache=False)
    finally:
        handle.remove()
    return torch.cat(xs), torch.cat(ys)


def check_block_replay(model, x, y, config):
    """The reference loop rebuilds the block from its weights with its own cos/sin and causal mask; make sure
    that gives the captured output (same positions 0..T-1, no padding)."""
    layer = model.model.layers[0]
    kw = art.block_kwargs(config, 2, x.shape[1])
    with torch.no_grad():
        y2 = art.run_block(layer, x[:2], kw)
    rel = ((y2 - y[:2]).norm() / y[:2].norm()).item()
    if rel > 1e-5:
        raise SystemExit(f"replaying block 0 differs from the captured output: relative {rel:.3g}")
    return rel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "models/tiny-qwen3"))
    ap.add_argument("--dataset", default=None, help="default: MODEL/calibration.txt")
    ap.add_argument("--nsamples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=256)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(REPO / "out/block_tuning_input"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    model_dir = Path(args.model)
    dataset = Path(args.dataset) if args.dataset else model_dir / "calibration.txt"
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    texts = read_texts(dataset)
    ids = calibration_samples(tokenizer, texts, args.nsamples, args.seqlen, args.seed)

    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    x, y = capture_block0(model, ids)
    rel = check_block_replay(model, x, y, model.config)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(model_dir / "config.json", out / "config.json")
    tensors = {"model.layers.0." + n: p.detach().float().contiguous()
               for n, p in model.model.layers[0].named_parameters()}
    tensors["x_q"] = x.contiguous()
    tensors["y_ref"] = y.contiguous()
    tensors["input_ids"] = ids.to(torch.int32).contiguous()
    save_file(tensors, str(out / "block.safetensors"))
    meta = {
        "model": str(model_dir), "dataset": str(dataset), "policy": "concat", "nsamples": args.nsamples,
        "seqlen": args.seqlen, "seed": args.seed, "block": "model.layers.0",
        "dataset_sha256": hashlib.sha256(dataset.read_bytes()).hexdigest(),
        "input_ids_sha256": hashlib.sha256(np.ascontiguousarray(ids.numpy().astype("<i4")).tobytes()).hexdigest(),
        "replay_rel_diff": rel, "torch": torch.__version__,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out}: x_q/y_ref {tuple(x.shape)}, replay check {rel:.2e}, first ids {ids[0, :8].tolist()}")


if __name__ == "__main__":
    main()
