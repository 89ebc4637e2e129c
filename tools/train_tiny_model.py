#!/usr/bin/env python3
"""Trains the shipped tiny Qwen3 model (models/tiny-qwen3) on the public-domain English corpus.

Three steps, each a subcommand:

  prepare   (CPU, here)       tokenize corpus/train.txt and models/tiny-qwen3/heldout.txt with the shipped
                              tokenizer into uint16 .npy streams under .device/tiny-qwen3/ (git-ignored, carried
                              to the GPU machine).
  train     (GPU machine)     Qwen3ForCausalLM from scratch: packed 512-token sequences, AdamW, warmup + cosine,
                              bf16 autocast. A short sweep over the number of epochs (each with its own full
                              schedule) fits the time budget; the run with the lowest loss on a validation split
                              (carved from train.txt, never heldout.txt) wins. Writes the model (BF16, sharded to
                              stay under the 16 MiB per-file transfer limit), train_log.txt and metrics.json.
  finalize  (CPU, here)       merge the shards into models/tiny-qwen3/model.safetensors, copy config.json and
                              generation_config.json, re-measure held-out perplexity with transformers on the CPU
                              and write models/tiny-qwen3/README.md (model card) from metrics.json.

Perplexity ("packed"): heldout.txt lines, each followed by <|endoftext|>, concatenated and cut into
non-overlapping 512-token windows; exp(mean next-token NLL) over every predicted position, in float32 from the
BF16 weights. "per-line": each line scored alone as [<|endoftext|>] + line -> line + [<|endoftext|>].
"""

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = REPO / "models/tiny-qwen3"
DATA_DIR = REPO / ".device/tiny-qwen3"
EOT = "<|endoftext|>"
SEED = 1234
VAL_FRACTION = 0.01

MODEL_SHAPE = dict(hidden_size=256, num_hidden_layers=8, num_attention_heads=4, head_dim=64,
                   num_key_value_heads=2, intermediate_size=768, tie_word_embeddings=True,
                   rope_theta=10000.0, rms_norm_eps=1e-6, max_position_embeddings=2048)
SAMPLE_PROMPTS = ["And God said", "The king of", "a small animal that", "Love is", "If you want to"]


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ----------------------------------------------------------------------------------------------------------
# prepare (CPU)
# ----------------------------------------------------------------------------------------------------------

def cmd_prepare(args):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    eot = tok.token_to_id(EOT)
    assert tok.get_vocab_size() <= 65536, "uint16 streams need a vocabulary below 65536"

    lines = [l for l in Path(args.corpus).read_text(encoding="utf-8").splitlines() if l.strip()]
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(lines))
    n_val = int(len(lines) * VAL_FRACTION)
    val_lines = [lines[i] for i in order[:n_val]]
    train_lines = [lines[i] for i in order[n_val:]]
    heldout_lines = [l for l in (MODEL_DIR / "heldout.txt").read_text(encoding="utf-8").splitlines() if l.strip()]

    def stream(texts):
        ids = []
        lengths = []
        for enc in tok.encode_batch(texts, add_special_tokens=False):
            ids.extend(enc.ids)
            ids.append(eot)
            lengths.append(len(enc.ids) + 1)
        return np.asarray(ids, dtype=np.uint16), np.asarray(lengths, dtype=np.int32)

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for name, texts in (("train", train_lines), ("val", val_lines), ("heldout", heldout_lines)):
        ids, lengths = stream(texts)
        np.save(DATA_DIR / f"{name}_ids.npy", ids)
        np.save(DATA_DIR / f"{name}_lengths.npy", lengths)
        print(f"{name}: {len(texts)} lines, {ids.size} tokens")
    meta = {"tokenizer_sha256": sha256(MODEL_DIR / "tokenizer.json"), "corpus_sha256": sha256(args.corpus),
            "eot_id": eot, "vocab_size": tok.get_vocab_size(), "seed": SEED, "val_fraction": VAL_FRACTION}
    (DATA_DIR / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


# ----------------------------------------------------------------------------------------------------------
# model helpers (shared by train and finalize)
# ----------------------------------------------------------------------------------------------------------

def make_config(vocab_size, eot_id):
    from transformers import Qwen3Config
    cfg = Qwen3Config(vocab_size=vocab_size, bos_token_id=eot_id, eos_token_id=eot_id, pad_token_id=eot_id,
                      **MODEL_SHAPE)
    cfg._attn_implementation = "sdpa"
    return cfg


@torch.no_grad()
def packed_nll(model, ids, seq_len, device, batch=32, autocast=False):
    """Sum of next-token NLL and count over non-overlapping windows of the stream."""
    n_win = (ids.numel() - 1) // seq_len
    total, count = 0.0, 0
    for start in range(0, n_win, batch):
        rows = []
        for w in range(start, min(start + batch, n_win)):
            rows.append(ids[w * seq_len: w * seq_len + seq_len + 1])
        chunk = torch.stack(rows).to(device=device, dtype=torch.long)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(chunk[:, :-1], use_cache=False).logits
        nll = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                chunk[:, 1:].reshape(-1), reduction="sum")
        total += float(nll)
        count += chunk[:, 1:].numel()
    return total, count


@torch.no_grad()
def per_line_nll(model, ids, lengths, eot_id, device, batch=64):
    """Each line alone: input [eot] + line, targets line + [eot] (the stored eot)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    seqs = [torch.cat([torch.tensor([eot_id]), ids[offsets[i]:offsets[i + 1]].long()]) for i in range(len(lengths))]
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    total, count = 0.0, 0
    for b in range(0, len(order), batch):
        group = [seqs[i] for i in order[b:b + batch]]
        width = max(len(s) for s in group)
        inp = torch.full((len(group), width), eot_id, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        labels = torch.full((len(group), width), -100, dtype=torch.long)
        for r, s in enumerate(group):
            inp[r, :len(s)] = s
            mask[r, :len(s)] = 1
            labels[r, :len(s) - 1] = s[1:]
        inp, mask, labels = inp.to(device), mask.to(device), labels.to(device)
        logits = model(inp, attention_mask=mask, use_cache=False).logits.float()
        nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                                ignore_index=-100, reduction="sum")
        total += float(nll)
        count += int((labels != -100).sum())
    return total, count


@torch.no_grad()
def generate(model, tok, prompt, n_new, device, temperature=0.0, top_k=40, top_p=0.95, seed=0):
    ids = torch.tensor([tok.encode(prompt).ids], dtype=torch.long, device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    eot = tok.token_to_id(EOT)
    for _ in range(n_new):
        logits = model(ids, use_cache=False).logits[0, -1].float()
        if temperature <= 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            kth = torch.topk(logits, top_k).values[-1]
            logits[logits < kth] = -float("inf")
            probs = torch.softmax(logits, -1)
            sp, si = torch.sort(probs, descending=True)
            keep = torch.cumsum(sp, 0) - sp < top_p
            filtered = torch.zeros_like(probs)
            filtered[si[keep]] = sp[keep]
            nxt = int(torch.multinomial(filtered / filtered.sum(), 1, generator=gen))
        ids = torch.cat([ids, torch.tensor([[nxt]], device=device)], dim=1)
        if nxt == eot:
            break
    return tok.decode(ids[0].tolist(), skip_special_tokens=False)


# ----------------------------------------------------------------------------------------------------------
# train (GPU)
# ----------------------------------------------------------------------------------------------------------

class Log:
    def __init__(self, path):
        self.f = open(path, "w")

    def __call__(self, msg):
        print(msg, flush=True)
        self.f.write(msg + "\n")
        self.f.flush()


def lr_at(step, total, warmup, peak, floor_frac):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return peak * (floor_frac + (1 - floor_frac) * 0.5 * (1 + math.cos(math.pi * min(1.0, t))))


def make_optimizer(model, lr, weight_decay):
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8, fused=fused)


def epoch_batches(train_ids, seq_len, batch, gen, device):
    """Packed windows from a random start offset (a different cut every epoch), in random order."""
    offset = int(torch.randint(0, seq_len, (1,), generator=gen))
    n_win = (train_ids.numel() - offset - 1) // seq_len
    starts = offset + torch.randperm(n_win, generator=gen) * seq_len
    idx = torch.arange(seq_len + 1)
    for b in range(0, n_win - batch + 1, batch):
        rows = (starts[b:b + batch, None] + idx[None]).to(device)
        yield train_ids[rows]


def train_one(cfg, args, train_ids, val_ids, epochs, steps_per_epoch, deadline, log, device, run_seed,
              evaluate=True):
    from transformers import Qwen3ForCausalLM
    torch.manual_seed(run_seed)
    model = Qwen3ForCausalLM(cfg).to(device)
    opt = make_optimizer(model, args.lr, args.weight_decay)
    total = epochs * steps_per_epoch
    warmup = min(args.warmup, total // 10)
    gen = torch.Generator().manual_seed(run_seed)
    eval_every = max(1, steps_per_epoch // 2)
    best = (float("inf"), None, 0)
    step, tokens, t0 = 0, 0, time.time()
    curve = []
    stopped_early = False
    model.train()
    for epoch in range(epochs):
        for batch in epoch_batches(train_ids, args.seq_len, args.batch, gen, device):
            if step >= total:
                break
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total, warmup, args.lr, args.lr_floor)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                logits = model(batch[:, :-1], use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            tokens += batch[:, 1:].numel()
            if step % args.log_every == 0 or step == 1:
                log(f"  step {step:6d}/{total} epoch {epoch} lr {opt.param_groups[0]['lr']:.2e} "
                    f"loss {loss.item():.4f} gnorm {float(grad_norm):.2f} tok/s {tokens / (time.time() - t0):,.0f}")
                curve.append((step, tokens, round(loss.item(), 4)))
            if time.time() > deadline:
                stopped_early = True
            if evaluate and (step % eval_every == 0 or step == total or stopped_early):
                model.eval()
                s, c = packed_nll(model, val_ids, args.seq_len, device, autocast=True)
                model.train()
                val = s / c
                log(f"  eval step {step} val loss {val:.4f} ppl {math.exp(val):.2f}")
                if val < best[0]:
                    best = (val, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}, step)
            if stopped_early:
                break
        if stopped_early or step >= total:
            break
    if stopped_early:
        log(f"  deadline reached at step {step}/{total}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"epochs": epochs, "steps": step, "planned_steps": total, "tokens": tokens, "best_val": best[0],
            "best_step": best[2], "state": best[1], "curve": curve, "seconds": time.time() - t0,
            "stopped_early": stopped_early, "final_train_loss": curve[-1][2] if curve else None}


def cmd_train(args):
    from tokenizers import Tokenizer
    from transformers import Qwen3ForCausalLM
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = Log(out / "train_log.txt")
    start = time.time()
    deadline = start + args.time_budget
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    meta = json.loads((DATA_DIR / "meta.json").read_text())
    if meta["tokenizer_sha256"] != sha256(MODEL_DIR / "tokenizer.json"):
        raise SystemExit("tokenizer.json changed since `prepare`: run prepare again")
    tok = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    load = lambda name: torch.from_numpy(np.load(DATA_DIR / f"{name}_ids.npy").astype(np.int64))
    train_ids = load("train").to(device)
    val_ids = load("val")
    heldout_ids = load("heldout")
    heldout_lengths = np.load(DATA_DIR / "heldout_lengths.npy")
    cfg = make_config(meta["vocab_size"], meta["eot_id"])
    device_name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    if args.limit_train_tokens:  # smoke tests on the CPU
        train_ids = train_ids[: args.limit_train_tokens]
        val_ids = val_ids[: args.limit_train_tokens // 10]
        heldout_ids = heldout_ids[: args.limit_train_tokens // 10]
        heldout_lengths = heldout_lengths[: np.searchsorted(np.cumsum(heldout_lengths), heldout_ids.numel(), "right")]
    log(f"device {device_name}, torch {torch.__version__}")
    import transformers
    log(f"transformers {transformers.__version__}; train tokens {train_ids.numel():,}, val {val_ids.numel():,}, "
        f"heldout {heldout_ids.numel():,}")
    n_params = sum(p.numel() for p in Qwen3ForCausalLM(cfg).parameters())
    log(f"parameters {n_params:,} ({n_params * 2 / 1e6:.2f} MB in BF16)")
    steps_per_epoch = ((train_ids.numel() - args.seq_len - 1) // args.seq_len) // args.batch

    # Measure the step time on a throwaway run so the epoch sweep can be fitted to the budget.
    probe = train_one(cfg, args, train_ids, val_ids, 1, 30, time.time() + 60, lambda m: None, device, 0,
                      evaluate=False)
    sec_per_step = probe["seconds"] / max(1, probe["steps"]) * 1.15 + 0.5 / steps_per_epoch  # + eval overhead
    log(f"probe: {sec_per_step * 1000:.1f} ms/step (with margin), {steps_per_epoch} steps/epoch "
        f"of {args.batch}x{args.seq_len} tokens")

    runs = []
    prev_epochs = 0
    for i, epochs in enumerate(int(e) for e in args.epochs.split(",")):
        remaining = deadline - time.time()
        fit = int(remaining / (sec_per_step * steps_per_epoch))
        if runs and fit <= prev_epochs:
            log(f"run with {epochs} epochs skipped: only {fit} fit in the remaining {remaining:.0f} s")
            break
        if max(fit, 1) < epochs:
            log(f"run with {epochs} epochs shrunk to {fit} to fit the remaining {remaining:.0f} s")
            epochs = max(fit, 1)
        log(f"run {i}: {epochs} epochs, {epochs * steps_per_epoch} steps, peak lr {args.lr}")
        r = train_one(cfg, args, train_ids, val_ids, epochs, steps_per_epoch, deadline, log, device, SEED + i)
        log(f"run {i} done: {r['steps']} steps, {r['tokens']:,} tokens, {r['seconds']:.0f} s, "
            f"best val loss {r['best_val']:.4f} (ppl {math.exp(r['best_val']):.2f}) at step {r['best_step']}")
        runs.append(r)
        prev_epochs = epochs
        sec_per_step = r["seconds"] / max(1, r["steps"]) * 1.1
    best = min(runs, key=lambda r: r["best_val"])
    log(f"chosen: run with {best['epochs']} epochs, val loss {best['best_val']:.4f}")

    # Final model: BF16 weights, evaluated in float32 (what the C++ engine computes).
    model = Qwen3ForCausalLM(cfg)
    model.load_state_dict(best["state"])
    model = model.to(torch.bfloat16).to(device).eval()
    bf16_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    model = model.float()
    s, c = packed_nll(model, heldout_ids, args.seq_len, device)
    s_line, c_line = per_line_nll(model, heldout_ids, heldout_lengths, meta["eot_id"], device)
    sv, cv = packed_nll(model, val_ids, args.seq_len, device)
    ppl, ppl_line, ppl_val = math.exp(s / c), math.exp(s_line / c_line), math.exp(sv / cv)
    log(f"held-out PPL (packed {args.seq_len}-token windows, f32 from BF16 weights): {ppl:.3f} over {c} tokens")
    log(f"held-out PPL (per line): {ppl_line:.3f} over {c_line} tokens; validation PPL {ppl_val:.3f}")

    samples = []
    for i, prompt in enumerate(SAMPLE_PROMPTS):
        g = generate(model, tok, prompt, args.sample_tokens, device)
        smp = generate(model, tok, prompt, args.sample_tokens, device, temperature=0.8, seed=i)
        samples.append({"prompt": prompt, "greedy": g, "sampled": smp})
        log(f"[greedy ] {g!r}")
        log(f"[T=0.8  ] {smp!r}")

    model = model.to(torch.bfloat16)
    model.load_state_dict(bf16_state)
    model.generation_config.do_sample = True
    model.generation_config.temperature = 0.8
    model.generation_config.top_k = 40
    model.generation_config.top_p = 0.95
    model.generation_config.max_new_tokens = 128
    model.save_pretrained(out / "model", max_shard_size="10MB")
    wall = time.time() - start
    metrics = {
        "device": device_name, "rope_theta": cfg.rope_parameters["rope_theta"], "torch": torch.__version__, "transformers": transformers.__version__,
        "parameters": n_params, "seq_len": args.seq_len, "batch": args.batch, "lr": args.lr,
        "lr_floor": args.lr_floor, "warmup": args.warmup, "weight_decay": args.weight_decay,
        "steps_per_epoch": steps_per_epoch, "train_tokens_per_epoch": train_ids.numel(),
        "runs": [{k: v for k, v in r.items() if k not in ("state",)} for r in runs],
        "chosen_epochs": best["epochs"], "chosen_steps": best["best_step"],
        "chosen_tokens_seen": best["best_step"] * args.batch * args.seq_len,
        "final_train_loss": next((l for s_, _, l in reversed(best["curve"]) if s_ <= best["best_step"]), None),
        "val_ppl": ppl_val, "heldout_ppl_packed": ppl, "heldout_tokens_packed": c,
        "heldout_ppl_per_line": ppl_line, "heldout_tokens_per_line": c_line,
        "samples": samples, "wall_seconds": wall, "tokenizer_sha256": meta["tokenizer_sha256"],
        "corpus_sha256": meta["corpus_sha256"],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log(f"wall time {wall:.0f} s")


# ----------------------------------------------------------------------------------------------------------
# finalize (CPU)
# ----------------------------------------------------------------------------------------------------------

def cmd_finalize(args):
    from safetensors.torch import load_file, save_file
    from transformers import Qwen3ForCausalLM
    src = Path(args.from_dir)
    metrics = json.loads((src / "metrics.json").read_text())
    if metrics["tokenizer_sha256"] != sha256(MODEL_DIR / "tokenizer.json"):
        raise SystemExit("tokenizer.json changed since training: the model does not match it")
    model_src = src / "model" if (src / "model").is_dir() else src
    index = json.loads((model_src / "model.safetensors.index.json").read_text())
    tensors = {}
    for shard in sorted(set(index["weight_map"].values())):
        tensors.update(load_file(str(model_src / shard)))
    assert all(v.dtype == torch.bfloat16 for v in tensors.values())
    save_file(dict(sorted(tensors.items())), str(MODEL_DIR / "model.safetensors"), metadata={"format": "pt"})
    for name in ("config.json", "generation_config.json"):
        (MODEL_DIR / name).write_text((model_src / name).read_text())

    torch.set_num_threads(os.cpu_count() or 1)
    model = Qwen3ForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32).eval()
    heldout_ids = torch.from_numpy(np.load(DATA_DIR / "heldout_ids.npy").astype(np.int64))
    s, c = packed_nll(model, heldout_ids, metrics["seq_len"], torch.device("cpu"), batch=8)
    cpu_ppl = math.exp(s / c)
    print(f"held-out PPL on the CPU here: {cpu_ppl:.3f} (GPU: {metrics['heldout_ppl_packed']:.3f})")
    size_mb = (MODEL_DIR / "model.safetensors").stat().st_size / 1e6
    val_curve = chosen_run_val_curve(src / "train_log.txt", metrics)
    write_model_card(metrics, cpu_ppl, size_mb, val_curve)


def chosen_run_val_curve(log_path, metrics):
    """(step, val loss) of the chosen run, read back from the training log."""
    chosen = next(i for i, r in enumerate(metrics["runs"]) if r["epochs"] == metrics["chosen_epochs"])
    curve, run = [], None
    for line in log_path.read_text().splitlines():
        if line.startswith("run ") and line.split()[1].rstrip(":").isdigit() and line.split()[1].endswith(":"):
            run = int(line.split()[1].rstrip(":"))
        elif run == chosen and line.strip().startswith("eval step"):
            f = line.split()
            curve.append((int(f[2]), float(f[5])))
    return curve


def write_model_card(m, cpu_ppl, size_mb, val_curve):
    cfg = json.loads((MODEL_DIR / "config.json").read_text())
    runs = "\n".join(
        f"| {r['epochs']} | {r['steps']} / {r['planned_steps']} | {r['tokens']:,} | {r['seconds']:.0f} | "
        f"{r['best_val']:.4f} (PPL {math.exp(r['best_val']):.2f}) at step {r['best_step']} |" for r in m["runs"])
    chosen = next(r for r in m["runs"] if r["epochs"] == m["chosen_epochs"])
    train_at = dict((s, l) for s, _, l in chosen["curve"])
    curve_rows = "\n".join(
        f"| {s} | {s / m['steps_per_epoch']:.1f} | {train_at.get(s - s % 100, '')} | {v:.4f} ({math.exp(v):.1f}) |"
        for s, v in val_curve[1::2] + ([val_curve[-1]] if len(val_curve) % 2 else []))
    samples = "\n".join(
        f"- prompt `{s['prompt']}`\n  - greedy: `{s['greedy']}`\n  - T=0.8, top-k 40, top-p 0.95: `{s['sampled']}`"
        for s in m["samples"])
    card = f"""# tiny-qwen3

A small `Qwen3ForCausalLM` trained from scratch by `tools/train_tiny_model.py` — the default model of the
README's main command and of later quality work. Not a chat model: plain-text continuation only.

## Data
Public-domain English from Debian packages, built by `tools/build_corpus.py`: WordNet 3 glosses, the King
James Bible (`bible-kjv`), `fortunes`; one sample per line. Training used `corpus/train.txt` (not committed;
sha256 `{m['corpus_sha256'][:16]}…`) minus a {VAL_FRACTION:.0%} validation split (seeded) used to pick the
checkpoint; `heldout.txt` (committed) was never seen in training and gives the perplexity below;
`calibration.txt` is for AutoRound. Tokenizer: byte-level BPE, vocab {cfg['vocab_size']} (`tokenizer.json`,
sha256 `{m['tokenizer_sha256'][:16]}…`), `<|endoftext|>` (id {cfg['eos_token_id']}) separates samples and is
bos/eos/pad.

## Config
hidden {cfg['hidden_size']}, {cfg['num_hidden_layers']} layers, {cfg['num_attention_heads']} heads × head_dim
{cfg['head_dim']}, {cfg['num_key_value_heads']} KV heads, intermediate {cfg['intermediate_size']}, tied
embeddings, rope_theta {m['rope_theta']:g}, rms_norm_eps {cfg['rms_norm_eps']:g},
max_position_embeddings {cfg['max_position_embeddings']} (trained on {m['seq_len']}-token windows, so longer
contexts are untested). {m['parameters']:,} parameters; `model.safetensors` BF16, {size_mb:.2f} MB.

## Training
Samples joined with `<|endoftext|>` into one stream, cut into {m['seq_len']}-token windows (new random offset and
order every epoch), batch {m['batch']} × {m['seq_len']} = {m['batch'] * m['seq_len']:,} tokens/step,
{m['steps_per_epoch']} steps/epoch ({m['train_tokens_per_epoch']:,} tokens/epoch). AdamW (β 0.9/0.95, weight
decay {m['weight_decay']} on matrices), peak lr {m['lr']}, linear warmup {m['warmup']} steps, cosine decay to
{m['lr_floor']:.0%} of peak, grad-norm clip 1.0, bf16 autocast, fp32 master weights. A sweep over the epoch
count (each run its own full schedule, fitted to the time budget); the best validation loss wins:

| epochs | steps done / planned | tokens | seconds | best validation loss |
|---|---|---|---|---|
{runs}

Chosen: {m['chosen_epochs']} epochs, checkpoint at step {m['chosen_steps']} ({m['chosen_tokens_seen']:,} tokens
seen); last logged train loss before it {m['final_train_loss']}. Longer training overfits this small corpus
(validation loss rises again after ~7 epochs while train loss keeps falling), hence the early checkpoint. Device: {m['device']} (torch {m['torch']},
transformers {m['transformers']}); whole training call {m['wall_seconds']:.0f} s wall time.

Loss curve of the chosen run (train loss: the logged step at or just before; validation on the 1% split):

| step | epoch | train loss | validation loss (PPL) |
|---|---|---|---|
{curve_rows}

Full log: the `train_log.txt` written by the training call (not committed).

## Quality
Held-out perplexity, float32 compute from the BF16 weights:
- packed ({m['seq_len']}-token windows over `heldout.txt`, each line followed by `<|endoftext|>`):
  **{m['heldout_ppl_packed']:.3f}** over {m['heldout_tokens_packed']:,} tokens ({m['device']}); {cpu_ppl:.3f} re-measured on
  the CPU with transformers after the merge;
- per line (`[<|endoftext|>] + line` → `line + [<|endoftext|>]`): {m['heldout_ppl_per_line']:.3f} over
  {m['heldout_tokens_per_line']:,} tokens.

Samples (PyTorch, 48 new tokens at most, stop at `<|endoftext|>`):
{samples}
"""
    (MODEL_DIR / "README.md").write_text(card)
    print(card)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--corpus", default=str(REPO / "corpus/train.txt"))
    pt = sub.add_parser("train")
    pt.add_argument("--out", default=os.environ.get("OUT", "out/tiny-qwen3"))
    pt.add_argument("--time-budget", type=float, default=400, help="seconds for probe + sweep")
    pt.add_argument("--epochs", default="6,12,24", help="epoch counts of the sweep, ascending")
    pt.add_argument("--seq-len", type=int, default=512)
    pt.add_argument("--batch", type=int, default=32)
    pt.add_argument("--lr", type=float, default=2e-3)
    pt.add_argument("--lr-floor", type=float, default=0.1)
    pt.add_argument("--warmup", type=int, default=200)
    pt.add_argument("--weight-decay", type=float, default=0.1)
    pt.add_argument("--log-every", type=int, default=100)
    pt.add_argument("--device", default="cuda")
    pt.add_argument("--sample-tokens", type=int, default=48)
    pt.add_argument("--limit-train-tokens", type=int, default=0, help="smoke tests only")
    pf = sub.add_parser("finalize")
    pf.add_argument("--from-dir", required=True)
    args = p.parse_args()
    {"prepare": cmd_prepare, "train": cmd_train, "finalize": cmd_finalize}[args.cmd](args)


if __name__ == "__main__":
    main()
