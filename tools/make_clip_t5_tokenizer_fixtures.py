#!/usr/bin/env python3
"""Golden fixtures for the CLIP (BPE) and T5 (Unigram) tokenizers of FLUX, computed with transformers 5.17.

Small tokenizers are trained here, with no download, on the repository's public-domain text
(models/tiny-qwen3/calibration.txt: WordNet glosses, the King James Bible, fortunes):

  tests/data/tokenizers/clip/vocab_merges/      CLIP-L layout: vocab.json (256 byte symbols, the same with "</w>",
                                                the merges' results, <|startoftext|>, <|endoftext|>), merges.txt,
                                                tokenizer_config.json and special_tokens_map.json as FLUX.1-dev's
                                                tokenizer/ folder has them (pad "<|endoftext|>", 77 tokens)
  tests/data/tokenizers/clip/tokenizer_json/    the same tokenizer saved by transformers (tokenizer.json form)
  tests/data/tokenizers/clip/expected.jsonl     {"text", "ids": 77 ids, "length": ids before truncation}, from
                                                CLIPTokenizer(text, padding="max_length", max_length=77,
                                                truncation=True) as FluxPipeline calls it; both forms agree
  tests/data/tokenizers/t5/tokenizer.json, tokenizer_config.json
                                                a SentencePiece Unigram (nmt_nfkc normalization, so the Precompiled
                                                charsmap is the real one) converted by transformers' T5Tokenizer
  tests/data/tokenizers/t5/expected.jsonl       {"text", "max_length", "ids", "length"} for max_length 256 (FLUX
                                                schnell) and 32 on every text, 512 (FLUX.1-dev) on a few
  tests/data/tokenizers/t5/tiny_valid/          a tiny Unigram tokenizer.json with a small real charsmap (from
                                                SentencePiece with two rules), the base of the broken files
  tests/data/tokenizers/pipeline_variants.json  tokenizer.json files run by HF `tokenizers` itself (other
                                                normalizers, pre-tokenizers, post-processors, byte_fallback), as
                                                overrides of the tiny Unigram, with their ids
  tests/data/tokenizers/{clip,t5}/broken/       malformed files + expected_errors.json (file -> text the error
                                                must contain); a CLIP case is a folder holding only the defective
                                                file, the others being vocab_merges/'s

Deterministic. Run with the venv: venv/bin/python tools/make_clip_t5_tokenizer_fixtures.py
`--broken-only` rewrites only the broken/ files from the committed valid ones with Python's standard library
(scripts/check_fixtures.sh checks them that way).
"""
import argparse
import base64
import io
import json
import os
import random
import shutil
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(REPO, "models", "tiny-qwen3", "calibration.txt")
HELDOUT = os.path.join(REPO, "models", "tiny-qwen3", "heldout.txt")
OUT = os.path.join(REPO, "tests", "data", "tokenizers")
CLIP_OUT = os.path.join(OUT, "clip")
T5_OUT = os.path.join(OUT, "t5")
SEED = 4321

CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def write_json(path, obj, indent=2):
    write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent) + "\n")


def write_jsonl(path, rows):
    write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def corpus_lines():
    with open(TEXT, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


# ---------------------------------------------------------------------------------------------------- test texts

def long_prompt(rng):
    with open(HELDOUT, encoding="utf-8") as f:
        words = f.read().split()
    start = rng.randrange(len(words) - 400)
    return " ".join(words[start:start + 300])


def texts():
    rng = random.Random(SEED)
    t = ["a photo of a cat", "A Photo Of A CAT", "An astronaut riding a horse on the moon, 4k, highly detailed",
         "Hello world!", "HELLO", "hello", "The quick brown fox jumps over the lazy dog.",
         "", " ", "   ", "\t", "\n\n", "  leading and trailing  ", "a  b", "a   b\t\tc\n\nd", "tabs\tand\nnewlines\r\n",
         "don't", "DON'T", "it's I'm we'll they've she'd", "rock 'n' roll",
         "12345", "3.14159", "1,000,000 people in 2024", "0x1F v1.2.3-rc4",
         "...!!!???---", "C++ and C#", "e-mail: someone@example.com https://example.org/a?b=1",
         "(parentheses) [brackets] {braces} <angles>", "\"quoted\" 'single'",
         "café naïve résumé façade", "cafe\u0301 e\u0301 A\u030a \u212b \u2126",  # non-NFC input
         "Ærøskøbing Straße ÉCOLE", "İstanbul ΣΊΣΥΦΟΣ",
         "你好，世界！", "日本語のテキスト", "한국어", "Привет, мир!", "مرحبا", "नमस्ते दुनिया",
         "👍 🏳️‍🌈 ❤️ 👩🏿‍💻", "I ❤️ NY 🗽",
         "ＡＢＣ ｆｕｌｌｗｉｄｔｈ １２３ ！？", "ﬁ ﬂ ½ ² ™ ① ㍻ ｶﾀｶﾅ", "Ａ\u0301 ｅ\u0301",  # NFKC changes these
         "x\u00a0y\u3000z\u2009w", "next\u0085line\u2028sep\u1680ogham", "zero\u200bwidth soft\u00adhyphen",
         "\ufeffbom \u180emongolian \x1cfile\x1fsep",
         "<|startoftext|>a cat<|endoftext|>", "<|STARTOFTEXT|> upper <|EndOfText|>", "<|endoftext|",
         "</s> <pad> <unk> <extra_id_0> <extra_id_99> <extra_id_100>", "text</s>more",
         "▁already▁metaspace ▁", "a" * 200, "ab " * 40]
    pool = ["the", "The", "CAT", " ", "  ", "\t", "\n", "1", "42", ".", ",", "!", "'s", "é", "e\u0301", "ß", "中",
            "👍", "Ａ", "ﬁ", "<|endoftext|>", "</s>", "<extra_id_3>", "\u00a0", "x", "-", "_", "'"]
    for _ in range(12):
        t.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 20))))
    with open(HELDOUT, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    t += rng.sample(lines, 12)
    t.append(long_prompt(rng))
    return t


def copy_json_without_local_keys(src, dst):
    """Copies a file transformers saved, without the flags of how it was loaded (they differ between machines)."""
    with open(src, encoding="utf-8") as f:
        obj = json.load(f)
    for key in ("is_local", "local_files_only", "name_or_path"):
        obj.pop(key, None)
    write_json(dst, obj, indent=None if os.path.basename(dst) == "tokenizer.json" else 2)


# ---------------------------------------------------------------------------------------------------------- CLIP

def bytes_to_unicode():
    """GPT-2's byte -> printable character table, in CLIP's vocab order (printable bytes first)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def train_clip_merges():
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE
    tok = Tokenizer(BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>", continuing_subword_prefix=""))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    trainer = trainers.BpeTrainer(vocab_size=1500, min_frequency=2, show_progress=False, end_of_word_suffix="</w>",
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus_lines(), trainer)
    return [tuple(m) for m in json.loads(tok.to_str())["model"]["merges"]]


def clip_configs(vocab):
    # As FLUX.1-dev's tokenizer/ folder (CLIP-L): the specials are "normalized": true there.
    added = {str(vocab[t]): {"content": t, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False,
                             "special": True} for t in ("<|startoftext|>", "<|endoftext|>")}
    config = {"add_prefix_space": False, "added_tokens_decoder": added, "bos_token": "<|startoftext|>",
              "clean_up_tokenization_spaces": True, "do_lower_case": True, "eos_token": "<|endoftext|>",
              "errors": "replace", "model_max_length": 77, "pad_token": "<|endoftext|>",
              "tokenizer_class": "CLIPTokenizer", "unk_token": "<|endoftext|>"}
    special = {k: {"content": v, "lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
               for k, v in (("bos_token", "<|startoftext|>"), ("eos_token", "<|endoftext|>"),
                            ("unk_token", "<|endoftext|>"))}
    special["pad_token"] = "<|endoftext|>"
    return config, special


def make_clip(strings):
    from transformers import CLIPTokenizer
    merges = train_clip_merges()
    base = bytes_to_unicode()
    tokens = base + [c + "</w>" for c in base]
    seen = set(tokens)
    kept = []
    for a, b in merges:
        if a + b in seen:  # the trainer never repeats a result; keep the layout valid regardless
            continue
        seen.add(a + b)
        tokens.append(a + b)
        kept.append((a, b))
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    vm = os.path.join(CLIP_OUT, "vocab_merges")
    write_json(os.path.join(vm, "vocab.json"), vocab, indent=None)
    write_text(os.path.join(vm, "merges.txt"), "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in kept))
    config, special = clip_configs(vocab)
    write_json(os.path.join(vm, "tokenizer_config.json"), config)
    write_json(os.path.join(vm, "special_tokens_map.json"), special)

    from_files = CLIPTokenizer.from_pretrained(vm)
    tj = os.path.join(CLIP_OUT, "tokenizer_json")
    with tempfile.TemporaryDirectory() as tmp:
        from_files.save_pretrained(tmp)
        shutil.rmtree(tj, ignore_errors=True)
        os.makedirs(tj)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            copy_json_without_local_keys(os.path.join(tmp, name), os.path.join(tj, name))
    from_json = CLIPTokenizer.from_pretrained(tj)

    rows = []
    for s in strings:
        got = [t(s, padding="max_length", max_length=77, truncation=True).input_ids for t in (from_files, from_json)]
        lengths = [len(t(s, padding="longest").input_ids) for t in (from_files, from_json)]
        assert got[0] == got[1] and lengths[0] == lengths[1], f"the two CLIP forms disagree on {s!r}"
        rows.append({"text": s, "ids": got[0], "length": lengths[0]})
    write_jsonl(os.path.join(CLIP_OUT, "expected.jsonl"), rows)
    print(f"clip: vocab {len(vocab)}, merges {len(kept)}, {len(rows)} texts")


# ------------------------------------------------------------------------------------------------------------ T5

def train_spm(vocab_size, **extra):
    import sentencepiece as spm
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus_lines()), model_writer=buf, model_type="unigram",
                                   vocab_size=vocab_size, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, num_threads=1,
                                   minloglevel=2, character_coverage=1.0, **extra)
    return buf.getvalue()


def convert_t5(spiece, out_dir, extra_ids):
    from transformers import T5Tokenizer
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "spiece.model"), "wb") as f:
            f.write(spiece)
        tok = T5Tokenizer.from_pretrained(tmp, model_max_length=512, extra_ids=extra_ids)
        saved = os.path.join(tmp, "saved")
        tok.save_pretrained(saved)
        for name in ("tokenizer.json", "tokenizer_config.json"):
            copy_json_without_local_keys(os.path.join(saved, name), os.path.join(out_dir, name))
    return tok


def make_t5(strings):
    from transformers import T5Tokenizer
    from_spm = convert_t5(train_spm(2000, normalization_rule_name="nmt_nfkc"), T5_OUT, 100)
    tok = T5Tokenizer.from_pretrained(T5_OUT)
    rows = []
    for i, s in enumerate(strings):
        length = len(tok(s, padding="longest").input_ids)
        assert length == len(from_spm(s).input_ids), f"T5 from spiece.model and tokenizer.json disagree on {s!r}"
        for max_length in (256, 32) + ((512,) if i % 10 == 0 or len(s) > 1000 else ()):
            ids = tok(s, padding="max_length", max_length=max_length, truncation=True).input_ids
            assert ids == from_spm(s, padding="max_length", max_length=max_length, truncation=True).input_ids
            rows.append({"text": s, "max_length": max_length, "ids": ids, "length": length})
    write_jsonl(os.path.join(T5_OUT, "expected.jsonl"), rows)
    print(f"t5: vocab {len(tok)}, {len(rows)} rows")

    # The tiny base of the broken files: 150 pieces, a charsmap from two rules (fullwidth A -> A, U+FB01 -> fi).
    with tempfile.TemporaryDirectory() as tmp:
        rules = os.path.join(tmp, "rules.tsv")
        with open(rules, "w", encoding="utf-8") as f:
            f.write("FF21\t41\nFB01\t66 69\n")
        tiny_dir = os.path.join(T5_OUT, "tiny_valid")
        convert_t5(train_spm(150, normalization_rule_tsv=rules), tiny_dir, 2)


# ------------------------------------------------------------------------------------- tokenizer.json variants

VARIANT_TEXTS = ["Hello  World", "  lead and trail  ", "a\tb\nc", "x\u0085y\u00a0z\u3000w", "ＡＢＣ ﬁ ½", "x▁y ▁z", "<pad>a</s>b", "",
                 "The-final--countdown", "don't STOP", "👍é e\u0301", "</s>lead", "zzq qzz", "ÿþ"]


def pipeline_variants():
    """tokenizer.json files that HF `tokenizers` itself runs (no transformers class rebuilding them): the tiny
    Unigram with other normalizers, pre-tokenizers, post-processors and byte_fallback, and the CLIP
    tokenizer.json as saved. Each is {"base", "override": top-level fields replaced, "cases": [{text, ids}]}."""
    from tokenizers import Tokenizer
    with open(os.path.join(T5_OUT, "tiny_valid", "tokenizer.json"), encoding="utf-8") as f:
        tiny = json.load(f)
    charsmap = tiny["normalizer"]

    def split(pattern, behavior, invert=False):
        return {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}

    def metaspace(scheme, do_split=True):
        return {"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": do_split}

    ws = {"type": "WhitespaceSplit"}
    template = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<pad>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                           {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<pad>": {"id": "<pad>", "ids": [0], "tokens": ["<pad>"]},
                                   "</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}}
    seq = lambda *steps: {"type": "Sequence", "pretokenizers": list(steps)}  # noqa: E731
    nseq = lambda *steps: {"type": "Sequence", "normalizers": list(steps)}  # noqa: E731
    byte_model = dict(tiny["model"])
    byte_model["byte_fallback"] = True
    byte_model["vocab"] = tiny["model"]["vocab"] + [[f"<0x{b:02X}>", -20.0] for b in range(256)]
    variants = [
        ("t5_legacy_file", {"normalizer": nseq(charsmap, {"type": "Strip", "strip_left": False, "strip_right": True},
                                                {"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}),
                            "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True}}),
        ("metaspace_first", {"pre_tokenizer": seq(ws, metaspace("first"))}),
        ("metaspace_never_no_split", {"pre_tokenizer": metaspace("never", False)}),
        ("metaspace_alone", {"normalizer": None, "pre_tokenizer": metaspace("always")}),
        ("nfkc_lowercase_strip", {"normalizer": nseq({"type": "NFKC"}, {"type": "Lowercase"},
                                                     {"type": "Strip", "strip_left": True, "strip_right": True},
                                                     {"type": "Replace", "pattern": {"String": "-"}, "content": " "},
                                                     {"type": "Prepend", "prepend": "▁"})}),
        ("split_isolated", {"pre_tokenizer": seq(split({"String": "-"}, "Isolated"), metaspace("always"))}),
        ("split_merged_previous", {"pre_tokenizer": seq(split({"String": "-"}, "MergedWithPrevious"),
                                                        metaspace("always"))}),
        ("split_merged_next", {"pre_tokenizer": seq(split({"Regex": "-+"}, "MergedWithNext"), metaspace("always"))}),
        ("split_contiguous", {"pre_tokenizer": seq(split({"String": "-"}, "Contiguous"), metaspace("always"))}),
        # Not \w: onig's (HF's regex engine) includes combining marks, PCRE2 10.42's does not.
        ("split_inverted", {"pre_tokenizer": seq(split({"Regex": r"[\p{L}\p{N}_]+|[^\p{L}\p{N}_\s]+"}, "Removed",
                                                       True), metaspace("always"))}),
        ("template_both_sides", {"post_processor": template}),
        ("byte_fallback", {"model": byte_model}),
    ]
    out = []
    for name, override in variants:
        d = json.loads(json.dumps(tiny))
        d.update(override)
        tok = Tokenizer.from_str(json.dumps(d))
        cases = [{"text": t, "ids": tok.encode(t).ids} for t in VARIANT_TEXTS]
        out.append({"name": name, "base": "t5/tiny_valid/tokenizer.json", "override": override, "cases": cases})
    clip = Tokenizer.from_file(os.path.join(CLIP_OUT, "tokenizer_json", "tokenizer.json"))
    out.append({"name": "clip_file_as_is", "base": "clip/tokenizer_json/tokenizer.json", "override": {},
                "cases": [{"text": t, "ids": clip.encode(t).ids} for t in VARIANT_TEXTS + ["A Photo, of 2 CATS!"]]})
    write_json(os.path.join(OUT, "pipeline_variants.json"), out, indent=None)
    print(f"pipeline variants: {len(out)}")


# --------------------------------------------------------------------------------------------------- broken files

def broken_clip():
    """(file name, {name: contents}, text the error must contain): each a tokenizer/ folder with one defect."""
    vm = os.path.join(CLIP_OUT, "vocab_merges")
    with open(os.path.join(vm, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(vm, "merges.txt"), encoding="utf-8") as f:
        merges = f.read()
    with open(os.path.join(vm, "tokenizer_config.json"), encoding="utf-8") as f:
        config = json.load(f)
    dump = lambda o: json.dumps(o, ensure_ascii=False)  # noqa: E731
    cases = []

    def case(name, expect, vocab_text=None, merges_text=None, config_obj=None):
        # Only the defective file is written; the test takes the others from vocab_merges/.
        files = {"vocab.json": vocab_text, "merges.txt": merges_text,
                 "tokenizer_config.json": None if config_obj is None else dump(config_obj)}
        cases.append((name, {k: v for k, v in files.items() if v is not None}, expect))

    case("vocab_not_object", "vocab.json", vocab_text="[1, 2, 3]")
    case("vocab_bad_json", "vocab.json", vocab_text='{"a": 1,')
    dup = dict(vocab)
    dup["zzz"] = vocab["a"]
    case("vocab_duplicate_id", "vocab.json", vocab_text=dump(dup))
    bad_id = dict(vocab)
    bad_id["a"] = "one"
    case("vocab_id_not_integer", "vocab.json", vocab_text=dump(bad_id))
    case("merges_three_tokens", "merges.txt: line 3", merges_text="#version: 0.2\nt h\nt h e\n")
    case("merges_unknown_token", "merges.txt", merges_text=merges + "qqqq zzzz\n")
    no_eos = dict(vocab)
    del no_eos["<|endoftext|>"]
    case("vocab_without_eos", "<|endoftext|>", vocab_text=dump(no_eos))
    cfg = dict(config)
    cfg["model_max_length"] = "seventy-seven"
    case("config_bad_max_length", "model_max_length", config_obj=cfg)
    cfg = dict(config)
    cfg["pad_token"] = "<|no-such-pad|>"
    case("config_unknown_pad", "pad_token", config_obj=cfg)
    cfg = dict(config)
    cfg["pad_token"] = 5
    case("config_pad_not_string", "pad_token", config_obj=cfg)
    return cases


def broken_t5():
    """(file name, tokenizer.json text, text the error must contain), from tiny_valid/tokenizer.json."""
    with open(os.path.join(T5_OUT, "tiny_valid", "tokenizer.json"), encoding="utf-8") as f:
        base = json.load(f)

    def variant(mutate):
        d = json.loads(json.dumps(base))
        mutate(d)
        return json.dumps(d, ensure_ascii=False)

    def charsmap(d, blob):
        d["normalizer"]["precompiled_charsmap"] = base64.b64encode(blob).decode()

    raw = base64.b64decode(base["normalizer"]["precompiled_charsmap"])
    trie_size = int.from_bytes(raw[:4], "little")

    def set_(path, value):
        def mutate(d):
            node = d
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
        return mutate

    cases = [
        ("model_bpe.json", variant(set_(["model", "type"], "BPE")), "model.type"),
        ("vocab_missing.json", variant(lambda d: d["model"].pop("vocab")), "model.vocab"),
        ("vocab_not_array.json", variant(set_(["model", "vocab"], {"a": 1})), "model.vocab"),
        ("vocab_entry_bad.json", variant(lambda d: d["model"]["vocab"].__setitem__(5, ["x", "high"])),
         "model.vocab[5]"),
        ("vocab_entry_not_pair.json", variant(lambda d: d["model"]["vocab"].__setitem__(7, "x")), "model.vocab[7]"),
        ("vocab_too_small.json", variant(set_(["model", "vocab"], [["<pad>", 0.0], ["</s>", 0.0]])), "model.vocab"),
        ("charsmap_not_base64.json", variant(set_(["normalizer", "precompiled_charsmap"], "%%%not base64%%%")),
         "precompiled_charsmap"),
        ("charsmap_not_string.json", variant(set_(["normalizer", "precompiled_charsmap"], 12)),
         "precompiled_charsmap"),
        ("charsmap_truncated.json", variant(lambda d: charsmap(d, raw[:trie_size // 2])), "precompiled_charsmap"),
        ("charsmap_trie_size_odd.json",
         variant(lambda d: charsmap(d, (trie_size + 2).to_bytes(4, "little") + raw[4:])), "precompiled_charsmap"),
        ("charsmap_bad_utf8.json", variant(lambda d: charsmap(d, raw + b"\xff\xfe")), "precompiled_charsmap"),
        ("charsmap_empty_trie.json", variant(lambda d: charsmap(d, b"\0\0\0\0abc\0")), "precompiled_charsmap"),
        ("added_bad.json", variant(lambda d: d["added_tokens"][0].__setitem__("content", 3)), "added_tokens[0]"),
        ("not_object.json", "[1, 2]", "top level"),
    ]
    return cases


def write_broken():
    for root, cases in ((CLIP_OUT, broken_clip()), (T5_OUT, broken_t5())):
        out = os.path.join(root, "broken")
        shutil.rmtree(out, ignore_errors=True)
        expected = {}
        for name, content, expect in cases:
            if isinstance(content, dict):  # a folder
                for file, text in content.items():
                    write_text(os.path.join(out, name, file), text)
            else:
                write_text(os.path.join(out, name), content)
            expected[name] = expect
        write_json(os.path.join(out, "expected_errors.json"), expected)
        print(f"{os.path.relpath(out, REPO)}: {len(cases)} broken cases")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--broken-only", action="store_true", help="rewrite only the broken/ files (standard library)")
    args = ap.parse_args()
    if not args.broken_only:
        strings = texts()
        make_clip(strings)
        make_t5(strings)
        pipeline_variants()
    write_broken()
    return 0


if __name__ == "__main__":
    sys.exit(main())
