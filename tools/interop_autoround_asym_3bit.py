#!/usr/bin/env python3
"""Asymmetric and 3-bit checkpoints made by the PUBLIC auto-round, for our loader (issue 11, finding 3).

From tests/data/qwen3/untied, with the public auto-round on the CPU and the same seeded random-token
calibration as `interop_autoround_quantize.py fixture` (16 x 64 ids, seed 7), writes

  OUT_ASYM/model_auto_round   bits 4, group 128, sym=False, format "auto_round"  (packing_format "auto_round":
                              qlinear_torch, stores the real zero point)
  OUT_ASYM/model_auto_gptq    bits 4, group 128, sym=False, format "auto_gptq"   (quant_method gptq, GPTQ v1:
                              stores zero - 1)
  OUT_3BIT/model              bits 3, group 128, sym=True,  format "auto_round"  (auto-round turns a symmetric
                              "auto_round" export into packing_format "auto_round:auto_gptq": zero - 1)

and next to each model dir a `<model dir>_logits.safetensors` (`transformers_logits.safetensors` for the 3-bit
one): input_ids I32 [40] (tools/interop_check_ours.fixed_ids) and logits F32 [40, 640] from transformers +
auto-round loading that checkpoint, cast to f32 (as the other interop fixtures). For the 3-bit checkpoint it also
writes OUT_3BIT/dequantized.safetensors: for every quantized Linear of layer 0 "<prefix>.weight" F32 [N, K], the weight as
the public tool's QuantLinear dequantizes it, obtained by running the loaded f32 module on the K x K identity
(exact: every output is one product by 1.0).

Usage: PYTHONPATH=/tmp/arpkgs venv/bin/python tools/interop_autoround_asym_3bit.py [--iters 10] [--threads 1]
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import interop_autoround_quantize as iaq  # noqa: E402
import interop_check_ours as ours  # noqa: E402

REPO = iaq.REPO
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def quantized_modules(model):
    return {name: m for name, m in model.named_modules() if hasattr(m, "qweight")}


def make(source, samples, vocab, model_dir, logits_file, fmt, args, dequant_file=None, **kw):
    tok = iaq.word_tokenizer(vocab)
    wall = iaq.run_autoround(source, tok, samples, model_dir, fmt=fmt, iters=args.iters, nsamples=args.nsamples,
                             seqlen=args.seqlen, batch_size=8, seed=42, **kw)
    for f in TOKENIZER_FILES:
        (model_dir / f).unlink(missing_ok=True)
    cfg = json.loads((model_dir / "config.json").read_text())["quantization_config"]
    out = dict(checkpoint=str(model_dir), format=fmt, quantize_wall_s=wall,
               quantization_config={k: cfg.get(k) for k in ("quant_method", "packing_format", "checkpoint_format",
                                                             "bits", "group_size", "sym")})
    if logits_file is None:
        return out
    ids = ours.fixed_ids(vocab, args.tokens)
    model = iaq.load_quantized_f32(model_dir)
    with torch.no_grad():
        logits = model(torch.from_numpy(ids).long()[None]).logits[0].float()
    save_file({"input_ids": torch.from_numpy(ids).contiguous(), "logits": logits.contiguous()}, str(logits_file))
    mods = quantized_modules(model)
    first = next(iter(mods.values()))
    out.update(quantized_linears=len(mods), linear_class=f"{type(first).__module__}.{type(first).__name__}")
    if dequant_file is not None:
        dense = {}
        with torch.no_grad():
            for name, m in mods.items():
                if not name.startswith("model.layers.0."):  # layer 0 has every shape; keeps the file at 1.8 MB
                    continue
                k = m.infeatures if hasattr(m, "infeatures") else m.in_features
                eye = torch.eye(k, dtype=torch.float32)
                w = m(eye).t().contiguous()  # [N, K]
                if getattr(m, "bias", None) is not None:
                    w -= m.bias.float()[:, None]
                dense[name + ".weight"] = w
        save_file(dense, str(dequant_file))
        out["dequantized"] = str(dequant_file)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", default=str(REPO / "tests/data/qwen3/untied"))
    ap.add_argument("--out-asym", default=str(REPO / "tests/data/interop/public_autoround_asym"))
    ap.add_argument("--out-3bit", default=str(REPO / "tests/data/interop/public_autoround_3bit"))
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--nsamples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7, help="seed of the random-token calibration")
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    source = Path(args.source)
    vocab = json.loads((source / "config.json").read_text())["vocab_size"]
    rng = np.random.default_rng(args.seed)
    samples = [rng.integers(3, vocab, size=args.seqlen) for _ in range(args.nsamples)]
    asym, three = Path(args.out_asym), Path(args.out_3bit)
    asym.mkdir(parents=True, exist_ok=True)
    three.mkdir(parents=True, exist_ok=True)
    summary = dict(iaq.versions(), iters=args.iters, nsamples=args.nsamples, seqlen=args.seqlen,
                   calib_seed=args.seed, results=[])
    # gptqmodel: loaded by transformers + auto-round on the CPU (backend auto_round:torch) -> golden logits.
    summary["results"].append(make(source, samples, vocab, asym / "model", asym / "transformers_logits.safetensors",
                                   "auto_round:gptqmodel", args, bits=4, group_size=128, sym=False))
    # auto_gptq: the same quantization in the GPTQ v1 layout; auto-round 0.16.1 has no CPU backend for asymmetric
    # zero - 1 checkpoints (auto_round:torch_zp is sym only; it falls back to auto_round:fake, which crashes), so
    # no logits: the C++ test checks that our reader gives the same weights as for model/.
    summary["results"].append(make(source, samples, vocab, asym / "model_auto_gptq", None, "auto_gptq", args,
                                   bits=4, group_size=128, sym=False))
    summary["results"].append(make(source, samples, vocab, three / "model", three / "transformers_logits.safetensors",
                                   "auto_round", args, dequant_file=three / "dequantized.safetensors", bits=3,
                                   group_size=128, sym=True))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
