#!/usr/bin/env python3
"""Ours against the public auto-round (PyPI `auto-round` 0.16.1) on the same model and the SAME calibration token
windows (issue 12 item 2), both checkpoints measured by the same `omniround eval`.

The windows are written once per seed to a JSONL file (`{"input_ids": [...]}` a line) that both tools read: ours
through `omniround quantize --calib-tokens FILE`, the public one as the list of [1, T] token tensors its
`dataset=` argument takes. The public tool is run as its users run it: AutoRound(model_dir, bits=4, group_size=128,
sym=True, dataset=..., seqlen, nsamples, iters, batch_size=8, seed) then quantize_and_save(format="auto_round"),
on the GPU with its defaults (BF16 model, autocast) unless `--public-device cpu`. Its tokenizer's pad token
(<|endoftext|> here) is masked out of its loss and attention by the tool itself, as for any user.

Losses, ONE convention (ours): mean squared error per element over the valid tokens of a mini-batch. The public
tool's printed loss is MSE(mean over all B·T·H elements, masked ones as zeros) / (valid tokens), i.e. ours divided
by B·T; it is multiplied back here. Its per-iteration losses are read from its own `logger.debug("iter %d loss")`
records (the float itself, not the printed text); initial = iteration 0, best = the first minimum (its `<` test).

Needs auto-round 0.16.1 (`venv/bin/pip install auto-round==0.16.1` here; on the GPU machine its wheels and the
missing ones among its needs are carried in .whl/: tools/compare_public_gpu.sh installs them) for `public`/`run`.

Subcommands:
  windows  write N random non-overlapping windows of T tokens of one token stream (a text file's lines joined
           as the model was trained: `--join eot` with <|endoftext|> between lines, `--join newline` each line
           followed by "\\n"), chosen by a seeded numpy RNG, as JSONL.
  public   one public auto-round run on a windows file; writes OUT/model and OUT/losses.json.
  run      the whole comparison: per model and seed the windows file, then ours and the public tool per recipe
           (default: 200 iterations; light: 50 iterations at lr 5e-3, the public RECIPES["light"] of
           auto_round/cli/main.py, ours `--recipe light`), `omniround eval` of every output, in parallel jobs
           (wall times are therefore not comparable; quality is). Finished jobs (eval.json present) are skipped,
           so a second call continues. Prints the table (as `table`).
  table    means ± standard errors over seeds of ΔPPL / KLD / top-1, and per block: initial loss, best loss, best
           iteration and the loss curve every 10 iterations, side by side, as markdown.

  python3 tools/compare_with_public_autoround.py run --bin .gpu/bundle-q/omniround --work W \\
      --model tiny=models/tiny-qwen3:models/tiny-qwen3/calibration.txt:eot:models/tiny-qwen3/heldout.txt
  python3 tools/compare_with_public_autoround.py table --work W
"""

import argparse
import concurrent.futures as cf
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EOT = "<|endoftext|>"
RECIPES = {"default": dict(iters=200, lr=None), "light": dict(iters=50, lr=5e-3)}
CURVE_EVERY = 10


# ---------------------------------------------------------------------------------------------------------
# windows
# ---------------------------------------------------------------------------------------------------------

def token_stream(tokenizer_json, text_file, join):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(str(tokenizer_json))
    lines = [l for l in Path(text_file).read_text(encoding="utf-8").splitlines() if l.strip()]
    ids = []
    if join == "eot":
        sep = tok.token_to_id(EOT)
        for i, enc in enumerate(tok.encode_batch(lines, add_special_tokens=False)):
            if i:
                ids.append(sep)
            ids.extend(enc.ids)
    else:  # each line followed by "\n"; the pre-tokenizer splits at newlines, so per line equals the whole
        for enc in tok.encode_batch([l + "\n" for l in lines], add_special_tokens=False):
            ids.extend(enc.ids)
    return ids


def write_windows(model_dir, text_file, join, nsamples, seqlen, seed, out):
    ids = token_stream(Path(model_dir) / "tokenizer.json", text_file, join)
    n_win = len(ids) // seqlen
    if n_win < nsamples:
        raise SystemExit(f"{text_file}: {len(ids)} tokens give {n_win} windows of {seqlen}, need {nsamples}")
    chosen = np.random.default_rng(seed).choice(n_win, size=nsamples, replace=False)
    with open(out, "w") as f:
        for w in chosen:
            f.write(json.dumps({"input_ids": ids[w * seqlen:(w + 1) * seqlen]}) + "\n")
    return {"stream_tokens": len(ids), "windows_in_stream": n_win, "chosen": sorted(int(w) for w in chosen)}


def cmd_windows(a):
    print(json.dumps(write_windows(a.model, a.text, a.join, a.nsamples, a.seqlen, a.seed, a.out)))


# ---------------------------------------------------------------------------------------------------------
# public
# ---------------------------------------------------------------------------------------------------------

class IterLosses(logging.Handler):
    """Collects auto-round's per-iteration block losses from its debug records (raw floats)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.blocks = []

    def emit(self, record):
        if isinstance(record.msg, str) and record.msg.startswith("iter %d loss") and len(record.args) >= 2:
            i, loss = int(record.args[0]), float(record.args[1])
            if i == 0:
                self.blocks.append([])
            self.blocks[-1].append(loss)


def import_datasets_or_stub():
    """auto-round imports `datasets` at start-up; token-tensor calibration never uses it. Where the real one does
    not import (e.g. a pyarrow it rejects), a stub takes its place, and the log says so."""
    try:
        import datasets  # noqa: F401
        return "datasets " + datasets.__version__
    except Exception as e:  # noqa: BLE001
        import types
        stub = types.ModuleType("datasets")
        stub.__getattr__ = lambda name: type(name, (), {})
        stub.load_dataset = lambda *args, **kw: (_ for _ in ()).throw(RuntimeError("datasets stub"))
        sys.modules["datasets"] = stub
        return f"datasets stub ({type(e).__name__}: {e})"


def cmd_public(a):
    os.environ.setdefault("AR_LOG_LEVEL", "INFO")
    datasets_note = import_datasets_or_stub()
    import torch
    from importlib.metadata import version
    from auto_round import AutoRound
    logger = logging.getLogger("autoround")
    for h in logger.handlers:
        h.setLevel(logging.INFO)  # its own console output stays as users see it
    logger.setLevel(logging.DEBUG)
    losses = IterLosses()
    logger.addHandler(losses)
    torch.set_num_threads(a.threads)

    windows = [json.loads(l)["input_ids"] for l in Path(a.tokens).read_text().splitlines() if l.strip()]
    dataset = [torch.tensor(w, dtype=torch.int64).reshape(1, -1) for w in windows[:a.nsamples]]
    recipe = RECIPES[a.recipe]
    kwargs = dict(bits=4, group_size=128, sym=True, dataset=dataset, seqlen=a.seqlen, nsamples=a.nsamples,
                  iters=a.iters or recipe["iters"], batch_size=a.batch_size, seed=a.seed)
    if recipe["lr"] is not None:
        kwargs["lr"] = recipe["lr"]
    if a.device == "cpu":
        kwargs["device_map"] = "cpu"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        ar = AutoRound(a.model, **kwargs)
        ar.quantize_and_save(tmp, format="auto_round")
        made = [p for p in Path(tmp).rglob("config.json")]
        src = made[0].parent if made else Path(tmp)
        if (out / "model").exists():
            shutil.rmtree(out / "model")
        shutil.move(str(src), str(out / "model"))
    wall = time.perf_counter() - t0
    bt = a.batch_size * a.seqlen  # their loss is ours / (B·T): back to ours
    blocks = [block_summary([x * bt for x in curve]) for curve in losses.blocks]
    summary = {"tool": "public auto-round " + version("auto-round"), "torch": torch.__version__,
               "transformers": version("transformers"), "note": datasets_note, "device": a.device,
               "kwargs": {k: v for k, v in kwargs.items() if k != "dataset"}, "wall_s": wall, "blocks": blocks}
    (out / "losses.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "blocks"}))


def block_summary(curve):
    best_i = min(range(len(curve)), key=lambda i: (curve[i], i))  # the first minimum, as a `<` scan keeps
    return {"initial": curve[0], "best": curve[best_i], "best_iter": best_i,
            "curve": {i: curve[i] for i in range(len(curve)) if i % CURVE_EVERY == 0 or i == len(curve) - 1}}


# ---------------------------------------------------------------------------------------------------------
# ours
# ---------------------------------------------------------------------------------------------------------

def run_ours(binary, model, tokens, recipe, seed, out, device, nsamples, seqlen, batch_size, threads):
    cmd = [binary, "quantize", model, "-o", str(out / "model"), "--overwrite", "--calib-tokens", tokens,
           "--nsamples", str(nsamples), "--seqlen", str(seqlen), "--batch-size", str(batch_size), "--seed",
           str(seed), "--recipe", recipe, "--device", device, "--threads", str(threads),
           "--loss-every", str(CURVE_EVERY)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    (out / "quantize.log").write_text(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"ours failed ({p.returncode}): {(p.stdout + p.stderr)[-800:]}")
    curves = {}
    for m in re.finditer(r"loss curve: block (\d+) iter (\d+) loss (\S+)", p.stderr):
        curves.setdefault(int(m.group(1)), {})[int(m.group(2))] = float(m.group(3))
    blocks = []
    for m in re.finditer(r"^\| (\d+) \| (\S+) \| (\S+) \| (\d+) \| ", p.stdout, re.M):
        blocks.append({"initial": float(m.group(2)), "best": float(m.group(3)), "best_iter": int(m.group(4)),
                       "curve": curves.get(int(m.group(1)), {})})
    calib = re.search(r"calibration: (.*)", p.stderr)
    summary = {"tool": "omniround", "command": " ".join(cmd), "wall_s": time.perf_counter() - t0,
               "calibration": calib.group(1) if calib else None, "blocks": blocks}
    (out / "losses.json").write_text(json.dumps(summary, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------------------------

def evaluate(binary, ckpt, reference, heldout, device, out_json, log):
    cmd = [binary, "eval", str(ckpt), "--dataset", heldout, "--reference", reference, "--device", device,
           "--dtype", "f32", "--json", str(out_json)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    Path(log).write_text(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"eval failed: {(p.stdout + p.stderr)[-800:]}")


def cmd_run(a):
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in a.seeds.split(",")]
    recipes = a.recipes.split(",")
    jobs = []
    for spec in a.model:
        name, rest = spec.split("=", 1)
        model, text, join, heldout = rest.split(":")
        (work / name).mkdir(exist_ok=True)
        meta = {"model": model, "calibration_text": text, "join": join, "heldout": heldout,
                "nsamples": a.nsamples, "seqlen": a.seqlen, "batch_size": a.batch_size, "windows": {}}
        for s in seeds:
            tokens = work / name / f"windows-s{s}.jsonl"
            meta["windows"][s] = write_windows(model, text, join, a.nsamples, a.seqlen, s, tokens)
            for recipe in recipes:
                for tool in a.tools.split(","):
                    jobs.append((name, model, heldout, str(tokens), tool, recipe, s))
        (work / name / "meta.json").write_text(json.dumps(meta) + "\n")
    deadline = time.time() + a.deadline
    # Longest first: the public default runs take the longest.
    jobs.sort(key=lambda j: (j[4] != "public", j[5] != "default"))

    def one(job):
        name, model, heldout, tokens, tool, recipe, s = job
        out = work / name / f"{tool}-{recipe}-s{s}"
        if (out / "eval.json").exists():
            return f"{out}: done before"
        if time.time() > deadline:
            return f"{out}: skipped (deadline)"
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.time()
        try:
            if tool == "ours":
                run_ours(a.bin, model, tokens, recipe, s, out, a.device, a.nsamples, a.seqlen, a.batch_size,
                         a.threads)
            else:
                cmd = [sys.executable, __file__, "public", "--model", model, "--tokens", tokens, "--recipe", recipe,
                       "--seed", str(s), "--out", str(out), "--device", a.public_device, "--nsamples",
                       str(a.nsamples), "--seqlen", str(a.seqlen), "--batch-size", str(a.batch_size),
                       "--threads", str(a.threads)]
                env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), PYTHONUNBUFFERED="1")
                with open(out / "quantize.log", "w") as log:
                    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
                if rc != 0:
                    raise RuntimeError(f"public failed ({rc}): {(out / 'quantize.log').read_text()[-800:]}")
            evaluate(a.bin, out / "model", model, heldout, a.device, out / "eval.json", out / "eval.log")
            shutil.rmtree(out / "model", ignore_errors=True)  # the numbers are what is kept
            return f"{out}: ok in {time.time() - t0:.0f} s"
        except Exception as e:  # noqa: BLE001  (one failed job must not stop the others)
            (out / "error.txt").write_text(str(e))
            return f"{out}: FAILED {e}"

    with cf.ThreadPoolExecutor(a.jobs) as pool:
        for msg in pool.map(one, jobs):
            print(msg, flush=True)
    print(make_table(work))


# ---------------------------------------------------------------------------------------------------------
# table
# ---------------------------------------------------------------------------------------------------------

def mean_se(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float("nan"), float("nan"), 0
    m = sum(xs) / len(xs)
    v = sum((x - m) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else 0.0
    return m, math.sqrt(v / len(xs)), len(xs)


def fmt(m, se, digits=4):
    return f"{m:.{digits}g} ± {se:.2g}"


def load_runs(work):
    runs = {}
    for d in sorted(Path(work).glob("*/*-s*")):
        m = re.match(r"(ours|public)-(\w+)-s(\d+)$", d.name)
        if not m or not (d / "eval.json").exists():
            continue
        ev = json.loads((d / "eval.json").read_text())
        losses = json.loads((d / "losses.json").read_text()) if (d / "losses.json").exists() else {}
        runs.setdefault((d.parent.name, m.group(2)), {}).setdefault(m.group(1), []).append(
            {"seed": int(m.group(3)), "eval": ev, "losses": losses})
    return runs


def make_table(work):
    lines = []
    runs = load_runs(work)
    for (model, recipe), tools in sorted(runs.items()):
        lines.append(f"\n### {model}, {recipe} recipe\n")
        lines.append("| tool | seeds | ΔPPL | mean KLD | same top-1 % | ratio ours/public ΔPPL, KLD |")
        lines.append("|---|---|---|---|---|---|")
        stats = {}
        for tool in ("ours", "public"):
            rs = tools.get(tool, [])
            d = mean_se([r["eval"].get("delta_ppl") for r in rs])
            k = mean_se([r["eval"].get("mean_kld") for r in rs])
            t = mean_se([100 * r["eval"].get("same_top_p", float("nan")) for r in rs])
            stats[tool] = (d, k)
            name = "omniround" if tool == "ours" else (rs[0]["losses"].get("tool", "public") if rs else "public")
            ratio = ""
            if tool == "public" and "ours" in stats and rs:
                ratio = f"{stats['ours'][0][0] / d[0]:.3f}, {stats['ours'][1][0] / k[0]:.3f}"
            lines.append(f"| {name} | {' '.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | "
                         f"{fmt(d[0], d[1])} | {fmt(k[0], k[1])} | {fmt(t[0], t[1])} | {ratio} |")
        lines.append("\nPer block (mean over seeds; loss = MSE per element over valid tokens, the public tool's "
                     "printed loss × B·T): initial → best (best iteration)\n")
        lines.append("| block | ours initial | ours best | ours best iter | public initial | public best | "
                     "public best iter |")
        lines.append("|---|---|---|---|---|---|---|")
        n_blocks = max((len(r["losses"].get("blocks", [])) for rs in tools.values() for r in rs), default=0)
        curve_rows = []
        for b in range(n_blocks):
            row = [str(b)]
            for tool in ("ours", "public"):
                bl = [r["losses"]["blocks"][b] for r in tools.get(tool, []) if len(r["losses"].get("blocks", [])) > b]
                row += [fmt(*mean_se([x["initial"] for x in bl])[:2]), fmt(*mean_se([x["best"] for x in bl])[:2]),
                        " ".join(str(x["best_iter"]) for x in bl)]
                pts = {}
                for x in bl:
                    for it, v in x["curve"].items():
                        pts.setdefault(int(it), []).append(v)
                curve_rows.append((b, tool, {it: mean_se(v)[0] for it, v in sorted(pts.items())}))
            lines.append("| " + " | ".join(row) + " |")
        if curve_rows:
            its = sorted({it for _, _, c in curve_rows for it in c})
            lines.append("\nLoss curves (mean over seeds, every 10 iterations and the last):\n")
            lines.append("| block | tool | " + " | ".join(str(i) for i in its) + " |")
            lines.append("|---|---|" + "---|" * len(its))
            for b, tool, c in curve_rows:
                lines.append(f"| {b} | {tool} | " + " | ".join(f"{c[i]:.4g}" if i in c else "" for i in its) + " |")
    return "\n".join(lines)


def cmd_table(a):
    print(make_table(a.work))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("windows")
    w.add_argument("--model", required=True)
    w.add_argument("--text", required=True)
    w.add_argument("--join", choices=("eot", "newline"), required=True)
    w.add_argument("--nsamples", type=int, default=128)
    w.add_argument("--seqlen", type=int, default=512)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--out", required=True)
    p = sub.add_parser("public")
    p.add_argument("--model", required=True)
    p.add_argument("--tokens", required=True)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--nsamples", type=int, default=128)
    p.add_argument("--seqlen", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=0, help="smoke tests only (default: the recipe's)")
    r = sub.add_parser("run")
    r.add_argument("--bin", required=True, help="the omniround binary (a CUDA build for --device cuda)")
    r.add_argument("--model", action="append", required=True,
                   help="NAME=MODEL_DIR:CALIBRATION_TEXT:eot|newline:HELDOUT_FILE (repeatable)")
    r.add_argument("--work", required=True)
    r.add_argument("--seeds", default="1,2,3")
    r.add_argument("--recipes", default="default,light")
    r.add_argument("--tools", default="ours,public")
    r.add_argument("--device", default="cuda", help="ours and eval")
    r.add_argument("--public-device", choices=("cuda", "cpu"), default="cuda")
    r.add_argument("--nsamples", type=int, default=128)
    r.add_argument("--seqlen", type=int, default=512)
    r.add_argument("--batch-size", type=int, default=8)
    r.add_argument("--jobs", type=int, default=6)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new job starts")
    t = sub.add_parser("table")
    t.add_argument("--work", required=True)
    args = ap.parse_args()
    {"windows": cmd_windows, "public": cmd_public, "run": cmd_run, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()
