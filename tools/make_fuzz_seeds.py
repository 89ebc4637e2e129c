#!/usr/bin/env python3
"""Writes the seed corpora of the config.json and tokenizer.json fuzzers (tests/fuzz/config_fuzz.cpp,
tests/fuzz/tokenizer_fuzz.cpp), derived from committed fixtures:

  tests/fuzz/corpus/config/     the valid configs of the tests and the shipped model (Qwen3, Qwen2, with and
                                without quantization_config), variants with features the parsers branch on, and
                                a few broken ones
  tests/fuzz/corpus/tokenizer/  tests/data/tokenizer/tiny_valid.json, variants exercising each supported option,
                                the shipped tokenizer cut to its first merges, and a few broken ones

Seeds are small on purpose (libFuzzer mutates small inputs faster, and its -max_len follows the largest seed).
Standard library only and deterministic, so scripts/check_fixtures.sh can regenerate them byte for byte.
Run from anywhere: paths are relative to the repository holding this script."""
import copy
import json
import os
import shutil

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_SEEDS = os.path.join(REPO, "tests", "fuzz", "corpus", "config")
TOKENIZER_SEEDS = os.path.join(REPO, "tests", "fuzz", "corpus", "tokenizer")
SHIPPED_MERGES_KEPT = 64  # enough for real merge chains, small enough to keep the seed near 10 KB


def read(rel):
    with open(os.path.join(REPO, rel), "rb") as f:
        return f.read()


def dump(obj):
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def config_seeds():
    seeds = {
        "valid_qwen3": read("tests/data/config/valid.json"),
        "tiny_qwen3": read("models/tiny-qwen3/config.json"),
        "qwen2_bias": read("tests/data/qwen2/bias/config.json"),
        "qwen2_bias_w4a16": read("tests/data/qwen2/bias-w4a16/config.json"),
        "qwen3_w4a16_auto_round": read("tests/data/qwen3/untied-w4a16/config.json"),
        "qwen3_w4a16_gptq": read("tests/data/qwen3/untied-w4a16-gptq/config.json"),
    }
    base = json.loads(seeds["valid_qwen3"])

    def variant(mutate):
        c = copy.deepcopy(base)
        mutate(c)
        return dump(c)

    def rope_parameters(c):  # transformers >= 5 layout, head_dim left to hidden / heads
        c["rope_parameters"] = {"rope_type": "default", "rope_theta": c.pop("rope_theta")}
        c.pop("head_dim")

    def gptq_dynamic(c):  # GPTQModel's per-layer "dynamic" overrides and skips
        c["quantization_config"] = {
            "quant_method": "gptq", "bits": 4, "group_size": -1, "sym": False, "desc_act": False,
            "checkpoint_format": "gptq_v2", "lm_head": False,
            "dynamic": {"-:.*mlp\\.down_proj": {}, "+:.*self_attn\\..*": {"bits": 8, "group_size": 32}}}

    def auto_round_extra(c):
        c["quantization_config"] = {
            "quant_method": "auto-round", "bits": 3, "group_size": 64, "sym": True,
            "packing_format": "auto_round:gptqmodel", "iters": 200, "lr": 0.005,
            "block_name_to_quantize": [["model.layers"]],
            "extra_config": {"model.layers.0.self_attn.q_proj": {"bits": 8, "sym": False},
                             ".*down_proj": {"bits": 16, "data_type": "fp"}}}

    seeds.update({
        "rope_parameters": variant(rope_parameters),
        "gptq_dynamic": variant(gptq_dynamic),
        "auto_round_extra_config": variant(auto_round_extra),
        "bad_heads_not_multiple": variant(lambda c: c.__setitem__("num_key_value_heads", 3)),
        "bad_eos_outside_vocab": variant(lambda c: c.__setitem__("eos_token_id", [2, 5000])),
        "bad_quant_bits": variant(lambda c: c.__setitem__("quantization_config",
                                                          {"quant_method": "auto-round", "bits": 5, "group_size": 0})),
        "bad_not_json": b'{"architectures": ["Qwen3ForCausalLM"], "vocab_size": 10,,}',
    })
    return seeds


def tokenizer_seeds():
    tiny_bytes = read("tests/data/tokenizer/tiny_valid.json")
    seeds = {"tiny_valid": tiny_bytes}
    base = json.loads(tiny_bytes)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}

    def variant(mutate):
        t = copy.deepcopy(base)
        mutate(t)
        return dump(t)

    def gpt2_regex(t):  # ByteLevel alone, with its GPT-2 regex and a prefix space
        t["pre_tokenizer"] = dict(byte_level, add_prefix_space=True, use_regex=True)
        t["normalizer"] = None

    def literal_split(t):  # a String pattern, a Sequence normalizer, merges written as "a b" strings
        t["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"String": " "}
        t["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
        t["model"]["merges"] = [" ".join(m) for m in t["model"]["merges"]]

    def unk_and_fallback(t):  # characters missing from the vocabulary: byte fallback for x and z, a fused unk for y
        vocab = t["model"]["vocab"]
        for ch, name in (("x", "<0x78>"), ("y", "<unk>"), ("z", "<0x7A>")):
            vocab[name] = vocab.pop(ch)  # the same ids, so the vocabulary stays dense
        t["model"].update({"unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True, "ignore_merges": True})

    def stripping_added_tokens(t):  # lstrip / rstrip, and an added token matched after normalization
        t["added_tokens"][0].update({"lstrip": True, "rstrip": True})
        n = max(a["id"] for a in t["added_tokens"]) + 1
        t["added_tokens"].append({"id": n, "content": "caf\u00e9", "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": True, "special": False})

    seeds.update({
        "gpt2_regex": variant(gpt2_regex),
        "literal_split": variant(literal_split),
        "unk_and_fallback": variant(unk_and_fallback),
        "stripping_added_tokens": variant(stripping_added_tokens),
        "shipped_trimmed": dump(trimmed_shipped_tokenizer()),
        "bad_regex": variant(lambda t: t["pre_tokenizer"]["pretokenizers"][0]["pattern"].__setitem__("Regex", "(a")),
        "bad_merge": variant(lambda t: t["model"]["merges"].append(["\u0120t", "zzz"])),
        "bad_not_object": b"[1, 2, 3]",
    })
    return seeds


def trimmed_shipped_tokenizer():
    """models/tiny-qwen3/tokenizer.json (half a megabyte) cut to its byte alphabet, first merges and added tokens;
    its real Split regex and special tokens are what matters to the fuzzer."""
    t = json.loads(read("models/tiny-qwen3/tokenizer.json"))
    model = t["model"]
    merges = model["merges"][:SHIPPED_MERGES_KEPT]
    by_id = sorted(model["vocab"].items(), key=lambda kv: kv[1])
    keep = {tok for tok, _ in by_id[:256]}  # the byte alphabet comes first
    for a, b in merges:
        assert a in keep and b in keep, (a, b)  # each merge builds on the alphabet and earlier merges
        keep.add(a + b)
    model["vocab"] = {tok: i for tok, i in by_id if tok in keep}
    model["merges"] = merges
    return t


def write_dir(path, files):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    for name, data in sorted(files.items()):
        with open(os.path.join(path, name + ".json"), "wb") as f:
            f.write(data)


def main():
    configs, tokenizers = config_seeds(), tokenizer_seeds()
    write_dir(CONFIG_SEEDS, configs)
    write_dir(TOKENIZER_SEEDS, tokenizers)
    total = sum(len(v) for v in configs.values()) + sum(len(v) for v in tokenizers.values())
    print(f"wrote {len(configs)} config and {len(tokenizers)} tokenizer fuzz seeds ({total} bytes)")


if __name__ == "__main__":
    main()
