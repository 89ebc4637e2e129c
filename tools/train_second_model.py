#!/usr/bin/env python3
"""Trains the second model of the quality table (issue 12 item 4): a Qwen3-architecture model on another corpus
(the King James Bible alone, as contiguous text) and of another width than models/tiny-qwen3, so that no quality
claim rests on one model. Deterministic given --seed (same data, same order, same initialisation; the GPU's
matmuls may still round differently from run to run).

  prepare   (CPU, here)      the KJV text from Debian's bible-kjv-text, read through the `bible` program of
                             bible-kjv (`apt-get install bible-kjv-text` brings both), or --kjv FILE holding that
                             program's output; one verse per line without its reference.
                             Chapters are split three ways by their index, never mixed: index % 20 in {2, 7} is
                             held out (~10 %), in {12, 17} calibration text (~10 %, enough for 128 windows of
                             512 tokens), the rest is training text (1 % of its chapters, seeded, is the validation split that picks the checkpoint).
                             A byte-level BPE (tools/train_tokenizer.py, vocabulary 8192) is trained on the
                             training text only. Writes DATA_DIR (git-ignored, carried to the GPU machine): the
                             tokenizer, uint16 token streams, heldout.jsonl (the held-out chapters as ONE
                             contiguous text, so that `omniround eval` inserts no separator), calibration.txt (one
                             verse per line) and meta.json.
  train     (GPU machine)    Qwen3ForCausalLM from scratch on the training stream (verses each followed by "\\n",
                             chapters run on, no <|endoftext|>), packed 512-token windows, AdamW, warmup + cosine,
                             bf16 autocast, a fixed number of steps (a wall-clock deadline only guards the budget
                             and is logged when hit). The step with the lowest validation loss wins. Writes OUT: a
                             Hugging Face model folder (BF16 model.safetensors, config, tokenizer, heldout.jsonl,
                             calibration.txt), train_log.txt and metrics.json.

The checkpoint (~60 MB) is never committed: it is trained on the GPU machine and used there in the same call
(tools/compare_with_public_autoround.py). Usage:
  venv/bin/python tools/train_second_model.py prepare
  python3 tools/train_second_model.py train --out /tmp/second-qwen3        # on the GPU machine
"""

import argparse
import hashlib
import json
import math
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_tiny_model as tiny  # noqa: E402  (optimizer, schedule, packed NLL, log: the same training recipe)

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / ".device/second-qwen3"
EOT = "<|endoftext|>"
HELDOUT, CALIBRATION, MODULUS = (2, 7), (12, 17), 20
VAL_FRACTION = 0.01
# Another width and shape than tiny-qwen3 (hidden 256, tied, GQA 4/2): hidden 512, GQA 8/4, untied head.
MODEL_SHAPE = dict(hidden_size=512, num_hidden_layers=8, num_attention_heads=8, head_dim=64, num_key_value_heads=4,
                   intermediate_size=1536, tie_word_embeddings=False, rope_theta=10000.0, rms_norm_eps=1e-6,
                   max_position_embeddings=2048)
VERSE = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def kjv_chapters(kjv_file):
    """[(book+chapter, [verse text, ...])] in canonical order."""
    if kjv_file:
        text = Path(kjv_file).read_text(encoding="utf-8", errors="replace")
    else:
        text = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True,
                              encoding="utf-8", errors="replace").stdout
    chapters, index = [], {}
    for line in text.splitlines():
        m = VERSE.match(line)
        if not m:
            continue
        key = f"{m.group(1)}{m.group(2)}"
        if key not in index:
            index[key] = len(chapters)
            chapters.append((key, []))
        chapters[index[key]][1].append(re.sub(r"\s+", " ", m.group(4)).strip())
    return chapters


def chapter_text(verses):
    return "".join(v + "\n" for v in verses)  # how a verse-per-line file runs on


def cmd_prepare(args):
    from tokenizers import Tokenizer
    chapters = kjv_chapters(args.kjv)
    assert len(chapters) == 1189, f"expected the 1189 chapters of the KJV, found {len(chapters)}"
    split = {"train": [], "heldout": [], "calibration": []}
    for i, ch in enumerate(chapters):
        r = i % MODULUS
        split["heldout" if r in HELDOUT else "calibration" if r in CALIBRATION else "train"].append(ch)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(split["train"]))
    n_val = max(1, int(len(order) * VAL_FRACTION))
    val_set = set(order[:n_val].tolist())
    val = [c for i, c in enumerate(split["train"]) if i in val_set]
    train = [c for i, c in enumerate(split["train"]) if i not in val_set]

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    train_txt = DATA_DIR / "train.txt"
    train_txt.write_text("".join(chapter_text(v) for _, v in train), encoding="utf-8")
    tok_dir = DATA_DIR / "tokenizer"
    subprocess.run([sys.executable, str(REPO / "tools/train_tokenizer.py"), "--corpus", str(train_txt),
                    "--out-dir", str(tok_dir)], check=True)
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))

    def stream(chs):
        ids = []
        for _, verses in chs:  # chapter by chapter: the pre-tokenizer splits at newlines, so this equals the whole
            ids.extend(tok.encode(chapter_text(verses), add_special_tokens=False).ids)
        return np.asarray(ids, dtype=np.uint16)

    counts = {}
    for name, chs in (("train", train), ("val", val), ("heldout", split["heldout"]),
                      ("calibration", split["calibration"])):
        ids = stream(chs)
        np.save(DATA_DIR / f"{name}_ids.npy", ids)
        counts[name] = {"chapters": len(chs), "tokens": int(ids.size)}
        print(f"{name}: {len(chs)} chapters, {ids.size} tokens")
    heldout_text = "".join(chapter_text(v) for _, v in split["heldout"])
    (DATA_DIR / "heldout.jsonl").write_text(json.dumps({"text": heldout_text}, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    (DATA_DIR / "calibration.txt").write_text("".join(chapter_text(v) for _, v in split["calibration"]),
                                              encoding="utf-8")
    train_txt.unlink()  # the token stream is what travels
    meta = {"source": args.kjv or "bible -f Gen1:1-Rev22:21 (Debian bible-kjv-text)", "seed": args.seed,
            "split": f"chapter index % {MODULUS}: {HELDOUT} held out, {CALIBRATION} calibration, else training",
            "val_fraction": VAL_FRACTION, "counts": counts, "vocab_size": tok.get_vocab_size(),
            "eot_id": tok.token_to_id(EOT), "tokenizer_sha256": sha256(tok_dir / "tokenizer.json")}
    (DATA_DIR / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps(meta, indent=2))


def make_config(vocab_size, eot_id):
    from transformers import Qwen3Config
    cfg = Qwen3Config(vocab_size=vocab_size, bos_token_id=eot_id, eos_token_id=eot_id, pad_token_id=eot_id,
                      **MODEL_SHAPE)
    cfg._attn_implementation = "sdpa"
    return cfg


def cmd_train(args):
    import shutil
    import transformers
    from transformers import Qwen3ForCausalLM
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = tiny.Log(out / "train_log.txt")
    start = time.time()
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = True
    meta = json.loads((DATA_DIR / "meta.json").read_text())
    load = lambda name: torch.from_numpy(np.load(DATA_DIR / f"{name}_ids.npy").astype(np.int64))
    train_ids, val_ids, heldout_ids = load("train").to(device), load("val"), load("heldout")
    if args.limit_train_tokens:  # smoke tests on the CPU
        train_ids, val_ids, heldout_ids = (train_ids[:args.limit_train_tokens], val_ids[:args.limit_train_tokens // 4],
                                           heldout_ids[:args.limit_train_tokens // 4])
    cfg = make_config(meta["vocab_size"], meta["eot_id"])
    torch.manual_seed(args.seed)
    model = Qwen3ForCausalLM(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    device_name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    log(f"device {device_name}, torch {torch.__version__}, transformers {transformers.__version__}")
    log(f"parameters {n_params:,}; train tokens {train_ids.numel():,}, val {val_ids.numel():,}, "
        f"heldout {heldout_ids.numel():,}")
    opt = tiny.make_optimizer(model, args.lr, args.weight_decay)
    steps_per_epoch = ((train_ids.numel() - args.seq_len - 1) // args.seq_len) // args.batch
    total = args.epochs * steps_per_epoch
    warmup = min(args.warmup, total // 10)
    gen = torch.Generator().manual_seed(args.seed)
    eval_every = max(1, steps_per_epoch // 2)
    best = (float("inf"), None, 0)
    step, t0, hit_deadline = 0, time.time(), False
    model.train()
    for epoch in range(args.epochs):
        for batch in tiny.epoch_batches(train_ids, args.seq_len, args.batch, gen, device):
            if step >= total:
                break
            for g in opt.param_groups:
                g["lr"] = tiny.lr_at(step, total, warmup, args.lr, args.lr_floor)
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                logits = model(batch[:, :-1], use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     batch[:, 1:].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            if step % args.log_every == 0 or step == 1:
                log(f"  step {step}/{total} epoch {epoch} loss {loss.item():.4f}")
            hit_deadline = time.time() - start > args.time_budget
            if step % eval_every == 0 or step == total or hit_deadline:
                model.eval()
                s, c = tiny.packed_nll(model, val_ids, args.seq_len, device, autocast=True)
                model.train()
                log(f"  eval step {step} val loss {s / c:.4f} ppl {math.exp(s / c):.2f}")
                if s / c < best[0]:
                    best = (s / c, {k: v.detach().clone() for k, v in model.state_dict().items()}, step)
            if hit_deadline:
                log(f"  deadline of {args.time_budget} s reached at step {step}/{total}")
                break
        if hit_deadline:
            break
    train_seconds = time.time() - t0
    model.load_state_dict(best[1])
    model.eval()
    s, c = tiny.packed_nll(model.float(), heldout_ids, args.seq_len, device)
    log(f"chosen step {best[2]} (val loss {best[0]:.4f}); held-out PPL (f32, {c} tokens) {math.exp(s / c):.3f}; "
        f"training {train_seconds:.0f} s")
    model_dir = out / "model"
    model.to(torch.bfloat16).save_pretrained(model_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(DATA_DIR / "tokenizer" / f, model_dir / f)
    for f in ("heldout.jsonl", "calibration.txt"):
        shutil.copy(DATA_DIR / f, model_dir / f)
    metrics = {"device": device_name, "torch": torch.__version__, "transformers": transformers.__version__,
               "seed": args.seed, "parameters": n_params, "shape": MODEL_SHAPE, "seq_len": args.seq_len,
               "batch": args.batch, "lr": args.lr, "epochs": args.epochs, "steps": step, "planned_steps": total,
               "chosen_step": best[2], "best_val_loss": best[0], "heldout_ppl": math.exp(s / c),
               "heldout_tokens": c, "train_seconds": train_seconds, "deadline_hit": hit_deadline,
               "data": meta}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    log(f"wrote {model_dir}; wall {time.time() - start:.0f} s")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--kjv", default=None, help="output of `bible -f Gen1:1-Rev22:21` (default: run it)")
    pp.add_argument("--seed", type=int, default=1234)
    pt = sub.add_parser("train")
    pt.add_argument("--out", required=True)
    pt.add_argument("--seed", type=int, default=1234)
    pt.add_argument("--epochs", type=int, default=8)
    pt.add_argument("--time-budget", type=float, default=230, help="seconds; a guard, logged when reached")
    pt.add_argument("--seq-len", type=int, default=512)
    pt.add_argument("--batch", type=int, default=32)
    pt.add_argument("--lr", type=float, default=1.5e-3)
    pt.add_argument("--lr-floor", type=float, default=0.1)
    pt.add_argument("--warmup", type=int, default=50)
    pt.add_argument("--weight-decay", type=float, default=0.1)
    pt.add_argument("--log-every", type=int, default=50)
    pt.add_argument("--device", default="cuda")
    pt.add_argument("--limit-train-tokens", type=int, default=0, help="smoke tests only")
    args = p.parse_args()
    {"prepare": cmd_prepare, "train": cmd_train}[args.cmd](args)


if __name__ == "__main__":
    main()
