#!/usr/bin/env python3
"""Interop with the PUBLIC auto-round package (issue 3 item 7b): checkpoints it produces, for our engine to load,
and their quality next to ours.

Subcommands (venv /work/venv with `pip install auto-round`; CPU):

  fixture   quantize tests/data/qwen3/untied with AutoRound(bits 4, group 128, sym, iters 10) on a small seeded
            random-token calibration set (16 x 64 tokens); write OUT/model (the auto_round checkpoint) and
            OUT/transformers_logits.safetensors (input_ids I32 [T], logits F32 [T, V]: transformers + auto-round,
            computed in f32, on the same fixed ids as tools/interop_check_ours.py). With --ours-rtn DIR it also
            runs the public RTN (iters 0, disable_opt_rtn) and compares its packed tensors with our RTN output.
  tiny      quantize models/tiny-qwen3 with a public auto-round recipe (default: iters 200, lr 1/iters;
            light: iters 50, lr 5e-3; batch 8) calibrated on models/tiny-qwen3/calibration.txt — samples built
            like our C++ calibration (policy concat, seed 42; tools/make_block_tuning_input.py) and passed as
            token ids — into out/public_autoround_tiny_<recipe>/ (not committed).
  ppl       perplexity of one or more checkpoints with transformers on a text file (default
            models/tiny-qwen3/heldout.txt): non-blank lines in file order joined with <|endoftext|>, cut into
            non-overlapping 512-token windows, every token but a window's first scored (as our `omniround eval`);
            with --reference, also ΔPPL, mean KLD(P_ref || P) and top-1 agreement. All in f32.

Usage:
  interop_autoround_quantize.py fixture [--out tests/data/interop/public_autoround_untied]
                                        [--ours-rtn tests/data/interop/ours_rtn/model]
  interop_autoround_quantize.py tiny --recipe default|light [--nsamples 32] [--seqlen 256] [--out DIR]
  interop_autoround_quantize.py ppl DIR [DIR...] [--reference models/tiny-qwen3] [--dataset FILE] [--json F]
"""

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop_check_ours as ours  # noqa: E402  (fixed ids, f32 loading helpers)
import make_block_tuning_input as mbti  # noqa: E402  (calibration samples as the C++ builds them)

REPO = Path(__file__).resolve().parent.parent
RECIPES = {"default": dict(iters=200, lr=None), "light": dict(iters=50, lr=5e-3)}


def versions():
    return {"torch": torch.__version__, "transformers": version("transformers"), "auto-round": version("auto-round")}


def word_tokenizer(vocab):
    """The fixture models have no tokenizer; auto-round insists on one, so give it a trivial word-level one
    ("t0".."t{V-1}"). Calibration is passed as token ids, so it never tokenizes text."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    tk = Tokenizer(models.WordLevel({f"t{i}": i for i in range(vocab)}, unk_token="t3"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="t1", eos_token="t2", pad_token="t0",
                                   unk_token="t3")


def run_autoround(model_dir, tokenizer, samples, out_dir, fmt="auto_round", **kwargs):
    """AutoRound(...).quantize_and_save(format=fmt) into out_dir (auto-round appends a sub-folder; it is moved
    up)."""
    from auto_round import AutoRound
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype="auto")
    dataset = [torch.as_tensor(s, dtype=torch.int64).reshape(1, -1) for s in samples]
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        ar = AutoRound(model, tokenizer, dataset=dataset, device_map="cpu", enable_torch_compile=False, **kwargs)
        ar.quantize_and_save(tmp, format=fmt)
        made = [p for p in Path(tmp).iterdir() if (p / "config.json").exists()]
        src = made[0] if len(made) == 1 else Path(tmp)
        shutil.move(str(src), str(out_dir))
    return time.perf_counter() - start


def load_quantized_f32(ckpt):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(str(ckpt), device_map="cpu").eval()
    if getattr(model.config, "quantization_config", None) is not None:
        torch.nn.Module.float(model)  # transformers refuses .float() on quantized models
    else:
        model = model.float()
    return model


# ---------------------------------------------------------------------------------------------------------
# fixture
# ---------------------------------------------------------------------------------------------------------

def cmd_fixture(args):
    torch.set_num_threads(args.threads)
    source = Path(args.source)
    cfg = json.loads((source / "config.json").read_text())
    vocab = cfg["vocab_size"]
    rng = np.random.default_rng(args.seed)
    samples = [rng.integers(3, vocab, size=args.seqlen) for _ in range(args.nsamples)]
    out = Path(args.out)
    tok = word_tokenizer(vocab)
    wall = run_autoround(source, tok, samples, out / "model", bits=4, group_size=128, sym=True, iters=args.iters,
                         nsamples=args.nsamples, seqlen=args.seqlen, batch_size=8, seed=42)
    # The word-level tokenizer is an artefact of auto-round's API, not part of the fixture model.
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        (out / "model" / f).unlink(missing_ok=True)

    ids = ours.fixed_ids(vocab, args.tokens)
    model = load_quantized_f32(out / "model")
    with torch.no_grad():
        logits = model(torch.from_numpy(ids).long()[None]).logits[0].float()
    plain = ours.plain_model_logits(out / "model", ids)
    save_file({"input_ids": torch.from_numpy(ids).contiguous(), "logits": logits.contiguous()},
              str(out / "transformers_logits.safetensors"))
    summary = dict(versions(), checkpoint=str(out / "model"), iters=args.iters, nsamples=args.nsamples,
                   seqlen=args.seqlen, calib_seed=args.seed, quantize_wall_s=wall,
                   rel_f32_vs_own_dequant=ours.rel(logits, plain))

    if args.ours_rtn:
        with tempfile.TemporaryDirectory() as tmp:
            run_autoround(source, tok, samples, Path(tmp) / "rtn", bits=4, group_size=128, sym=True, iters=0,
                          disable_opt_rtn=True, nsamples=args.nsamples, seqlen=args.seqlen, batch_size=8, seed=42)
            theirs = ours.read_tensors(Path(tmp) / "rtn")
        mine = ours.read_tensors(args.ours_rtn)
        differ = sorted(k for k in set(mine) | set(theirs)
                        if k not in mine or k not in theirs or not torch.equal(mine[k], theirs[k]))
        summary["public_rtn_vs_ours_rtn"] = {"tensors": len(mine), "differ": differ}
    print(json.dumps(summary, indent=2))


# ---------------------------------------------------------------------------------------------------------
# tiny
# ---------------------------------------------------------------------------------------------------------

def cmd_tiny(args):
    torch.set_num_threads(args.threads)
    from transformers import AutoTokenizer
    model_dir = Path(args.model)
    from tokenizers import Tokenizer
    raw_tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    texts = mbti.read_texts(model_dir / "calibration.txt")
    ids = mbti.calibration_samples(raw_tok, texts, args.nsamples, args.seqlen, args.seed)
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    recipe = RECIPES[args.recipe]
    out = Path(args.out or REPO / f"out/public_autoround_tiny_{args.recipe}")
    kwargs = dict(bits=4, group_size=128, sym=True, iters=recipe["iters"], nsamples=args.nsamples,
                  seqlen=args.seqlen, batch_size=8, seed=args.seed)
    if recipe["lr"] is not None:
        kwargs["lr"] = recipe["lr"]
    wall = run_autoround(model_dir, tok, list(ids), out, **kwargs)
    summary = dict(versions(), recipe=args.recipe, out=str(out), quantize_wall_s=wall, threads=args.threads,
                   calibration=dict(file=str(model_dir / "calibration.txt"), policy="concat", seed=args.seed,
                                    nsamples=args.nsamples, seqlen=args.seqlen), **{"autoround_kwargs": kwargs})
    (out / "omniround_interop.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


# ---------------------------------------------------------------------------------------------------------
# ppl
# ---------------------------------------------------------------------------------------------------------

def eval_stream(tokenizer_json, dataset):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tokenizer_json))
    sep = tok.token_to_id(mbti.SEPARATOR)
    stream = []
    for i, text in enumerate(mbti.read_texts(dataset)):
        if i:
            stream.append(sep)
        stream.extend(tok.encode(text, add_special_tokens=False).ids)
    return stream


def cmd_ppl(args):
    torch.set_num_threads(args.threads)
    ref_dir = Path(args.reference) if args.reference else None
    tok_json = Path(args.tokenizer) if args.tokenizer else (ref_dir or Path(args.models[0])) / "tokenizer.json"
    stream = eval_stream(tok_json, args.dataset)
    windows = len(stream) // args.ctx
    if args.max_windows:
        windows = min(windows, args.max_windows)
    reference = load_quantized_f32(ref_dir) if ref_dir else None
    results = {}
    for m in args.models:
        model = load_quantized_f32(m)
        nll = kld = 0.0
        same = count = 0
        ref_nll = 0.0
        for w in range(windows):
            x = torch.tensor(stream[w * args.ctx:(w + 1) * args.ctx], dtype=torch.int64)[None]
            with torch.no_grad():
                logp = torch.log_softmax(model(x).logits[0, :-1].float().double(), -1)
                tgt = x[0, 1:]
                nll -= logp.gather(1, tgt[:, None]).sum().item()
                if reference is not None:
                    ref_logp = torch.log_softmax(reference(x).logits[0, :-1].float().double(), -1)
                    ref_nll -= ref_logp.gather(1, tgt[:, None]).sum().item()
                    kld += (ref_logp.exp() * (ref_logp - logp)).sum().item()
                    same += (ref_logp.argmax(-1) == logp.argmax(-1)).sum().item()
            count += tgt.numel()
        r = {"windows": windows, "tokens": count, "ppl": math.exp(nll / count)}
        if reference is not None:
            r.update(ref_ppl=math.exp(ref_nll / count), delta_ppl=math.exp(nll / count) - math.exp(ref_nll / count),
                     mean_kld=kld / count, same_top=same / count)
        results[str(m)] = r
        print(json.dumps({str(m): r}), flush=True)
    summary = dict(versions(), dataset=str(args.dataset), ctx=args.ctx, reference=str(ref_dir), results=results)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixture")
    f.add_argument("--source", default=str(REPO / "tests/data/qwen3/untied"))
    f.add_argument("--out", default=str(REPO / "tests/data/interop/public_autoround_untied"))
    f.add_argument("--ours-rtn", default=None)
    f.add_argument("--iters", type=int, default=10)
    f.add_argument("--nsamples", type=int, default=16)
    f.add_argument("--seqlen", type=int, default=64)
    f.add_argument("--seed", type=int, default=7, help="seed of the random-token calibration")
    f.add_argument("--tokens", type=int, default=40)
    f.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("tiny")
    t.add_argument("--recipe", choices=sorted(RECIPES), required=True)
    t.add_argument("--model", default=str(REPO / "models/tiny-qwen3"))
    t.add_argument("--nsamples", type=int, default=32)
    t.add_argument("--seqlen", type=int, default=256)
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--out", default=None)
    p = sub.add_parser("ppl")
    p.add_argument("models", nargs="+")
    p.add_argument("--reference", default=None)
    p.add_argument("--tokenizer", default=None, help="tokenizer.json (default: the reference's or first model's)")
    p.add_argument("--dataset", default=str(REPO / "models/tiny-qwen3/heldout.txt"))
    p.add_argument("--ctx", type=int, default=512)
    p.add_argument("--max-windows", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None)
    args = ap.parse_args()
    {"fixture": cmd_fixture, "tiny": cmd_tiny, "ppl": cmd_ppl}[args.cmd](args)


if __name__ == "__main__":
    main()
