#!/usr/bin/env python3
"""Trains the shipped tiny model's byte-level BPE tokenizer with the same structure as Qwen2/Qwen3's tokenizer.json.

Structure (matching Qwen's file so the C++ loader is exercised on the real layout):
  normalizer     NFC
  pre_tokenizer  Sequence[Split(Qwen2 regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)]
  model          BPE, no unk token, byte_fallback false, all 256 byte symbols in the base alphabet
  decoder        ByteLevel
  special tokens <|endoftext|> (eos/pad), <|im_start|>, <|im_end|> appended after the learned vocabulary,
                 as in Qwen where they follow the BPE ids; total vocabulary 8192.

Writes models/tiny-qwen3/tokenizer.json and tokenizer_config.json. Deterministic for a given corpus.
Run with the venv: /work/venv/bin/python tools/train_tokenizer.py
"""
import argparse
import json
import os
import sys

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
VOCAB_SIZE = 8192
MODEL_MAX_LENGTH = 2048

# Qwen2.5/Qwen3-style ChatML template (no tools, no thinking blocks): a default system turn is not injected.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def build(corpus_path):
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(SPECIAL_TOKENS),
        min_frequency=2,
        show_progress=False,
        special_tokens=[],  # appended afterwards so they take the last ids, as in Qwen
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train([corpus_path], trainer)
    learned = tok.get_vocab_size(with_added_tokens=False)
    if learned != VOCAB_SIZE - len(SPECIAL_TOKENS):
        sys.exit(f"corpus too small: learned {learned} tokens, need {VOCAB_SIZE - len(SPECIAL_TOKENS)}")
    tok.add_special_tokens(SPECIAL_TOKENS)
    # The Python decoders.ByteLevel constructor takes no options and serialises its defaults; Qwen's file spells
    # them all false. They do not change decoding, but matching the file keeps the loader tested on that layout.
    spec = json.loads(tok.to_str())
    spec["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return Tokenizer.from_str(json.dumps(spec))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=os.path.join(REPO, "corpus", "train.txt"))
    ap.add_argument("--out-dir", default=os.path.join(REPO, "models", "tiny-qwen3"))
    args = ap.parse_args()

    tok = build(args.corpus)
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB_SIZE
    os.makedirs(args.out_dir, exist_ok=True)
    tok.save(os.path.join(args.out_dir, "tokenizer.json"), pretty=True)

    ids = {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "errors": "replace",
        "clean_up_tokenization_spaces": False,
        "split_special_tokens": False,
        "model_max_length": MODEL_MAX_LENGTH,
        "added_tokens_decoder": {
            str(ids[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                          "single_word": False, "special": True}
            for t in SPECIAL_TOKENS
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(args.out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2, ensure_ascii=False)
        f.write("\n")

    sample = "Hello world! In the beginning God created the heaven and the earth. DON'T 12345"
    enc = tok.encode(sample)
    print(f"vocab {tok.get_vocab_size()} special ids {ids}")
    print(f"sample -> {len(enc.ids)} ids: {enc.tokens}")
    assert tok.decode(enc.ids) == sample
    return 0


if __name__ == "__main__":
    sys.exit(main())
