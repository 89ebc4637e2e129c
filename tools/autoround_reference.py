#!/usr/bin/env python3
"""PyTorch reference of the AutoRound tuning loop for ONE block (AUTOROUND.md section 1, steps 4-6; issue 3
item 8), to compare with the C++ tuner on the same block, data and sample order.

Input directory (tools/make_block_tuning_input.py writes one; the block-gradient fixtures' layout also works):
  config.json         a Qwen3 config (the block is model.layers.0 of it)
  block.safetensors   model.layers.0.* weights (HF names), x_q [n, T, D] (block input), y_ref [n, T, D] (target)
                      (the gradient fixtures' `x` is accepted in place of `x_q`)

Loop, per AUTOROUND.md and the shared contract:
  - every Linear of the block wrapped (V = 0, alpha = beta = 1; alpha/beta clamped to [0, 1] before each forward;
    alpha/beta frozen with --no-minmax-tuning);
  - sample order: splitmix64(seed) + Fisher-Yates over [0, n), batch_size indices per micro-batch, reshuffle in
    place when fewer than batch_size remain (tools/autoround_torch.IndexSampler);
  - iteration t (0-based) runs grad_accum micro-batches; each adds the gradient of its masked MSE (last token of
    every sample masked out, mean over unmasked elements) divided by grad_accum; the iteration's loss is the mean
    of the micro-batch losses;
  - if that loss is lower than every earlier one, V/alpha/beta are snapshotted ("best") BEFORE the update;
  - sign-SGD: p <- p - lr_t * sign(dL/dp), lr_t = lr * (1 - t/iters) for V, minmax_lr * (1 - t/iters) for
    alpha/beta (sign(0) = 0).
Reported (JSON on stdout and --json FILE): initial loss (iteration 0), best loss, final loss (last iteration,
before its update), the full-set loss of RTN (V = 0, alpha = beta = 1) and of the best snapshot, wall time of the
loop, torch threads. --save-best FILE writes the best <p>.v / .alpha / .beta (and <p>.weight_qdq) as safetensors.

Usage: /work/venv/bin/python tools/autoround_reference.py DIR [--iters 200] [--lr 1/iters] [--minmax-lr lr]
         [--batch-size 8] [--grad-accum 1] [--seed 42] [--bits 4] [--group-size 128] [--asym]
         [--no-minmax-tuning] [--threads 2] [--json FILE] [--save-best FILE]
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

# OpenMP's default spin-waiting makes 2 torch threads ~10x slower than 1 when other processes share the 2 cores
# (measured 1.75 s vs 0.15 s per iteration); passive waiting removes that. Must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoConfig  # noqa: E402
from transformers.models.qwen3.modeling_qwen3 import Qwen3DecoderLayer  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autoround_torch as art  # noqa: E402

PREFIX = "model.layers.0."


def load_block(input_dir):
    config = AutoConfig.from_pretrained(str(input_dir))
    config._attn_implementation = "eager"
    tensors = load_file(str(Path(input_dir) / "block.safetensors"))
    layer = Qwen3DecoderLayer(config, layer_idx=0).float().eval()
    state = {k[len(PREFIX):]: v.float() for k, v in tensors.items() if k.startswith(PREFIX) and k.endswith(".weight")}
    missing, unexpected = layer.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"{input_dir}/block.safetensors: missing {missing}, unexpected {unexpected}")
    x = tensors["x_q"] if "x_q" in tensors else tensors["x"]
    return config, layer, x.float(), tensors["y_ref"].float()


def full_set_loss(layer, x, y_ref, kwargs_for, chunk=8):
    """Masked MSE over all samples (each chunk's mean weighted by its size)."""
    total, n = 0.0, x.shape[0]
    with torch.no_grad():
        for i in range(0, n, chunk):
            xb = x[i:i + chunk]
            total += art.masked_mse_mean(art.run_block(layer, xb, kwargs_for(xb.shape[0])), y_ref[i:i + chunk]).item() * xb.shape[0]
    return total / n


def tune(layer, wrapped, x, y_ref, kwargs_for, iters, lr, minmax_lr, batch_size, grad_accum, seed, log_every):
    params_v = [w.v for w in wrapped.values()]
    params_mm = [p for w in wrapped.values() for p in (w.alpha, w.beta) if p.requires_grad]
    sampler = art.IndexSampler(x.shape[0], batch_size, seed)
    best_loss, best, history = float("inf"), None, []
    initial_loss = final_loss = None
    for t in range(iters):
        total = 0.0
        for _ in range(grad_accum):
            idx = sampler.next_batch()
            y = art.run_block(layer, x[idx], kwargs_for(len(idx)))
            loss = art.masked_mse_mean(y, y_ref[idx])
            (loss / grad_accum).backward()
            total += loss.item() / grad_accum
        if t == 0:
            initial_loss = total
        final_loss = total
        history.append(total)
        if total < best_loss:
            best_loss = total
            best = {name: (w.v.detach().clone(), w.alpha.detach().clone(), w.beta.detach().clone())
                    for name, w in wrapped.items()}
        decay = 1.0 - t / iters
        with torch.no_grad():
            for group, rate in ((params_v, lr), (params_mm, minmax_lr)):
                for p in group:
                    if p.grad is not None:
                        p.add_(torch.sign(p.grad), alpha=-rate * decay)
                        p.grad = None
        if log_every and (t % log_every == 0 or t == iters - 1):
            print(f"iter {t:4d} loss {total:.6g} best {best_loss:.6g}", file=sys.stderr)
    return initial_loss, best_loss, final_loss, best, history


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input_dir")
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--lr", type=float, default=None, help="default 1/iters")
    ap.add_argument("--minmax-lr", type=float, default=None, help="default = lr")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--grad-accum", type=int, default=1)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--bits", type=int, default=4, choices=(2, 3, 4, 8))
    ap.add_argument("--group-size", type=int, default=128)
    ap.add_argument("--asym", action="store_true")
    ap.add_argument("--no-minmax-tuning", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--json", default=None)
    ap.add_argument("--save-best", default=None)
    args = ap.parse_args()
    if args.iters <= 0:
        raise SystemExit("--iters must be positive (iters = 0 is RTN; nothing to tune)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # nothing random is drawn from torch; set for safety
    lr = args.lr if args.lr is not None else 1.0 / args.iters
    minmax_lr = args.minmax_lr if args.minmax_lr is not None else lr

    config, layer, x, y_ref = load_block(args.input_dir)
    n, seq = x.shape[0], x.shape[1]
    batch_size = min(args.batch_size, n)
    kw_cache = {}

    def kwargs_for(b):
        if b not in kw_cache:
            kw_cache[b] = art.block_kwargs(config, b, seq)
        return kw_cache[b]

    fp_loss = full_set_loss(layer, x, y_ref, kwargs_for)
    wrapped = art.wrap_decoder_layer(layer, bits=args.bits, group_size=args.group_size, sym=not args.asym,
                                     enable_minmax_tuning=not args.no_minmax_tuning)
    rtn_loss = full_set_loss(layer, x, y_ref, kwargs_for)

    start = time.perf_counter()
    initial, best_loss, final, best, history = tune(layer, wrapped, x, y_ref, kwargs_for, args.iters, lr,
                                                    minmax_lr, batch_size, args.grad_accum, args.seed,
                                                    args.log_every)
    wall = time.perf_counter() - start

    with torch.no_grad():
        for name, w in wrapped.items():
            v, a, b = best[name]
            w.v.copy_(v), w.alpha.copy_(a), w.beta.copy_(b)
    best_full = full_set_loss(layer, x, y_ref, kwargs_for)

    result = {
        "input_dir": str(args.input_dir), "nsamples": n, "seqlen": seq, "iters": args.iters, "lr": lr,
        "minmax_lr": minmax_lr, "batch_size": batch_size, "grad_accum": args.grad_accum, "seed": args.seed,
        "bits": args.bits, "group_size": args.group_size, "sym": not args.asym,
        "enable_minmax_tuning": not args.no_minmax_tuning,
        "initial_loss": initial, "best_loss": best_loss, "final_loss": final,
        "best_iteration": history.index(best_loss),
        "fullset_loss_unquantized": fp_loss, "fullset_loss_rtn": rtn_loss, "fullset_loss_best": best_full,
        "wall_s": wall, "s_per_iter": wall / args.iters, "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "first_batches": [],
    }
    replay = art.IndexSampler(n, batch_size, args.seed)
    result["first_batches"] = [replay.next_batch() for _ in range(3)]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.save_best:
        out = {}
        with torch.no_grad():
            for name, w in wrapped.items():
                p = PREFIX + name
                out[p + ".v"], out[p + ".alpha"], out[p + ".beta"] = (t.contiguous() for t in best[name])
                out[p + ".weight_qdq"] = w.qdq_weight().contiguous()
        save_file(out, args.save_best)


if __name__ == "__main__":
    main()
