#!/usr/bin/env python3
"""Writes the tokenizer golden fixtures, computed with Hugging Face `tokenizers` / `transformers`.

  tests/data/tokenizer/corpus.jsonl    {"text": ...} one text per line
  tests/data/tokenizer/expected.jsonl  {"ids": [...], "decoded": ..., "decoded_skip_special": ...} same order
  tests/data/tokenizer/chat.jsonl      {"messages": [...], "add_generation_prompt": bool, "text": ..., "ids": [...]}
                                       rendered by the shipped tokenizer_config.json chat_template
  tests/data/tokenizer/broken/*.json   malformed tokenizer files + expected_errors.json (file -> text the error
                                       must contain), all derived from tiny_valid.json
  tests/data/tokenizer/tiny_valid.json a small valid byte-level BPE tokenizer (the broken files' base)

Deterministic (fixed seed). Run with the venv: /work/venv/bin/python tools/make_tokenizer_fixtures.py
"""
import json
import os
import random
import sys
import unicodedata

from tokenizers import Tokenizer
from transformers import AutoTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(REPO, "models", "tiny-qwen3")
OUT = os.path.join(REPO, "tests", "data", "tokenizer")
SEED = 1234


def handwritten_texts():
    t = []
    # English and punctuation
    t += ["Hello world!", "The quick brown fox jumps over the lazy dog.", "hello", "Hello", "HELLO", " hello",
          "In the beginning God created the heaven and the earth.",
          "She said: \"It's 5 o'clock -- time for tea (and scones)!\"",
          "e-mail me at someone@example.com or visit https://example.org/path?q=1&r=2#frag",
          "def f(x):\n    return x**2 + 1  # square plus one\n",
          '{"key": [1, 2, 3], "nested": {"a": null}}',
          "".join(chr(c) for c in range(32, 127)),
          "...!!!???---___***", "a.b,c;d:e", "C++ and C# and F#", "U.S.A. vs. U.K."]
    # contractions in different cases
    t += ["don't", "DON'T", "Don'T", "I'M here", "we'LL see", "it's", "IT'S", "they'Re", "You'VE", "he'D",
          "'s", "''s", "'S'T'RE", "rock 'n' roll", "the dog's bone", "O'Neil's", "can't won't shan't"]
    # case-insensitive matching of the contraction group with Unicode case folding
    t += ["it'ſ", "'K", "'\u212a", "WE'\u212aL"]
    # digits and numbers
    t += ["12345", "3.14159", "1,000,000", "2024-06-11", "0x1F", "1e-9", "123456789012345678901234567890" * 4,
          "\u0663\u0664\u0665 Arabic-Indic digits", "\u00bd \u00b2 \u2167 \u2460 numeric letters",
          "phone: +1 (555) 010-9999", "v1.2.3-rc4"]
    # other scripts
    t += ["你好，世界！今天天气很好。", "日本語のテキストです。カタカナとひらがな。", "한국어 텍스트입니다.",
          "مرحبا بالعالم، كيف حالك؟", "שלום עולם", "Привет, мир! Как дела?", "नमस्ते दुनिया, आप कैसे हैं?",
          "Γειά σου Κόσμε! Ελληνικά.", "สวัสดีชาวโลก", "Tiếng Việt có dấu", "Ærøskøbing Straße façade naïve",
          "mixed 中文 and English и русский"]
    # emoji incl. ZWJ sequences, skin tones, flags, variation selectors
    t += ["👍", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "❤️", "🇺🇸🇯🇵", "😀😀😀", "I ❤️ NY 🗽", "👩🏿‍💻 codes", "🤷‍♂️ shrug"]
    # whitespace runs, leading/trailing whitespace
    t += ["", " ", "  ", "    ", "\t", "\t\t", "\n", "\n\n\n", "\r\n", "\r\n\r\n", " \n \n ", "a  b", "a   b",
          "a \t\nb", "  leading", "trailing  ", "\n\nleading newlines", "trailing newlines\n\n",
          "tabs\tbetween\twords", "line one\nline two\n\nline four", " " * 50 + "x", "x" + " " * 50,
          "a\u00a0b", "ideographic\u3000space", "thin\u2009space", "zero\u200bwidth", "next\u0085line",
          "line\u2028separator", "\u000b\u000c vertical tab and form feed"]
    # special tokens embedded in text
    t += ["Hello<|im_end|>world", "<|im_start|>user\nhi<|im_end|>\n", "<|endoftext|><|endoftext|>",
          "text <|endoftext|> more text", "<|im_start|><|im_end|>", "almost <|im_end| not special",
          "<|IM_END|> is not special", "<|im_start|> spaced <|im_end|>  ", "<<|im_end|>>", "<|endoftext|"]
    # ChatML-formatted text
    t += ["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of "
          "France?<|im_end|>\n<|im_start|>assistant\nParis.<|im_end|>\n<|im_start|>assistant\n"]
    # combining characters and non-NFC input
    t += ["e\u0301", "cafe\u0301", "A\u030a", "\u212b", "\u1100\u1161\u11a8", "a\u0307\u0323", "a\u0323\u0307",
          "\u0958", "\u0344", "o\u0308\u0301", "\u00c5 \u212b A\u030a", "Zalgo: Z\u0351\u036b\u0343a\u0360l\u0353g\u0322o",
          "\u1e9b\u0323", "\uf900", "\u2126 ohm"]
    # control characters, specials, odd code points
    t += ["\x00", "a\x01b\x7fc", "soft\u00adhyphen", "\ufeffBOM", "\ue000 private use", "\U0010fffd",
          "\U0001d400\U0001d401 math bold", "\u0300 leading combining mark", "a" * 3000, "ab" * 1500,
          "!" * 1000, "é" * 500, "\n" * 300, " \t" * 200]
    return t


def random_texts(rng, n):
    """Random mixes of pieces from all the categories, to catch pre-tokenizer edge cases the list misses."""
    pool = ["the", " the", "The", "DON'T", "'s", "'ll", " ", "  ", "\t", "\n", "\r\n", "1", "42", "3.5", ".", ",",
            "!", "?", "'", "\"", "-", "(", ")", "中", "文", "é", "e\u0301", "ß", "Ω", "ж", "ك", "क", "ि", "👍",
            "🏽", "\u200d", "❤️", "<|im_end|>", "<|im_start|>", "<|endoftext|>", "<|", "|>", "\u00a0", "\u3000",
            "word", "Word", "WORD", "x", "_", "@", "#", "$", "%", "^", "&", "*", "日本", "한", "\u0301", "\u0308",
            "½", "٣", "\U0001f600", "ſ", "\u212a"]
    out = []
    for _ in range(n):
        k = rng.randint(1, 25)
        out.append("".join(rng.choice(pool) for _ in range(k)))
    return out


def heldout_texts(rng, n):
    with open(os.path.join(MODEL_DIR, "heldout.txt"), encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    picked = rng.sample(lines, n)
    picked.append("\n".join(lines[:40]) + "\n")  # a long multi-line passage
    return picked


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def chat_cases():
    return [
        ([{"role": "user", "content": "Hi"}], True),
        ([{"role": "user", "content": "Hi"}], False),
        ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}], True),
        ([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Tell me a story."},
          {"role": "assistant", "content": "Once upon a time...\nThe end."},
          {"role": "user", "content": "Another, with ünïcödé and 👍?"}], True),
        ([{"role": "user", "content": ""}], True),
        ([{"role": "user", "content": "  spaces around  \n"}], True),
    ]


def tiny_valid_tokenizer():
    """A small valid byte-level BPE tokenizer in Qwen's layout: the 256 byte symbols, a few merges, 2 specials."""
    from tokenizers import pre_tokenizers
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    alphabet.sort()
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges = [["Ġ", "t"], ["h", "e"], ["Ġt", "he"], ["i", "n"]]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    n = len(vocab)
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [
            {"id": n, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True},
            {"id": n + 1, "content": "<|im_end|>", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"\s+|\S+"}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }


def broken_tokenizers(base):
    """(file name, JSON text, text the error must contain)."""
    def variant(mutate):
        d = json.loads(json.dumps(base))
        mutate(d)
        return json.dumps(d, ensure_ascii=False)

    def unknown_type(d):
        d["model"]["type"] = "WordPiece"

    def merge_unknown(d):
        d["model"]["merges"].append(["Ġt", "zzz"])

    def merge_bad_shape(d):
        d["model"]["merges"].append(["a", "b", "c"])

    def merge_bad_string(d):
        d["model"]["merges"].append("abc")

    def added_missing_id(d):
        del d["added_tokens"][1]["id"]

    def added_bad_content(d):
        d["added_tokens"][0]["content"] = 42

    def added_id_conflict(d):
        d["added_tokens"][0]["id"] = d["model"]["vocab"]["he"]

    def added_negative_id(d):
        d["added_tokens"][1]["id"] = -5

    def added_not_array(d):
        d["added_tokens"] = {"<|endoftext|>": 0}

    def vocab_dup_id(d):
        d["model"]["vocab"]["he"] = d["model"]["vocab"]["in"]

    def vocab_not_object(d):
        d["model"]["vocab"] = ["a", "b"]

    def bad_regex(d):
        d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed[group"

    def bad_normalizer(d):
        d["normalizer"] = {"type": "NFKC"}

    def no_byte_level(d):
        d["pre_tokenizer"] = {"type": "Whitespace"}

    def bad_decoder(d):
        d["decoder"] = {"type": "WordPiece", "prefix": "##"}

    def missing_merges(d):
        del d["model"]["merges"]

    def missing_model(d):
        del d["model"]

    def vocab_huge_id(d):  # one id of 10^8 would size the id tables at 6.4 GB
        d["model"]["vocab"]["he"] = 100000000

    def added_huge_id(d):
        d["added_tokens"][1]["id"] = 1000000000

    # Issue 7, found while fuzzing: \C matches one byte even in UTF mode (a piece could end inside a character);
    # 100 000 nested brackets overflowed the stack when an error quoted them (600 is past the limit of 512).
    def regex_backslash_c(d):
        d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\C"

    def deep_nesting(d):
        nested = []
        for _ in range(600):
            nested = [nested]
        d["model"]["dropout"] = nested

    good = json.dumps(base, ensure_ascii=False)
    return [
        ("bad_json.json", good[: len(good) // 2], "invalid JSON"),
        ("not_object.json", "[1, 2, 3]", "top level"),
        ("missing_model.json", variant(missing_model), "missing field model"),
        ("unknown_model_type.json", variant(unknown_type), "model.type is 'WordPiece'"),
        ("missing_merges.json", variant(missing_merges), "missing field model.merges"),
        ("merge_unknown_token.json", variant(merge_unknown), "model.merges[4]"),
        ("merge_bad_shape.json", variant(merge_bad_shape), "model.merges[4]"),
        ("merge_bad_string.json", variant(merge_bad_string), "model.merges[4]"),
        ("vocab_duplicate_id.json", variant(vocab_dup_id), "model.vocab: id"),
        ("vocab_not_object.json", variant(vocab_not_object), "model.vocab must be an object"),
        ("added_token_missing_id.json", variant(added_missing_id), "added_tokens[1].id"),
        ("added_token_bad_content.json", variant(added_bad_content), "added_tokens[0].content"),
        ("added_token_id_conflict.json", variant(added_id_conflict), "added_tokens[0].id"),
        ("added_token_negative_id.json", variant(added_negative_id), "added_tokens[1].id"),
        ("added_tokens_not_array.json", variant(added_not_array), "added_tokens must be an array"),
        ("bad_regex.json", variant(bad_regex), "pre_tokenizer.pretokenizers[0].pattern"),
        ("unsupported_normalizer.json", variant(bad_normalizer), "normalizer.type is 'NFKC'"),
        ("no_byte_level.json", variant(no_byte_level), "pre_tokenizer.type is 'Whitespace'"),
        ("unsupported_decoder.json", variant(bad_decoder), "decoder.type is 'WordPiece'"),
        ("vocab_huge_id.json", variant(vocab_huge_id), "has id 100000000, but there are only"),
        ("added_token_huge_id.json", variant(added_huge_id), "has id 1000000000, but there are only"),
        ("regex_backslash_c.json", variant(regex_backslash_c), "pre_tokenizer.pretokenizers[0].pattern"),
        ("deep_nesting.json", variant(deep_nesting), "nested deeper than 512 levels"),
    ]


def main():
    rng = random.Random(SEED)
    tok = Tokenizer.from_file(os.path.join(MODEL_DIR, "tokenizer.json"))
    texts = handwritten_texts() + random_texts(rng, 120) + heldout_texts(rng, 60)

    expected = []
    for text in texts:
        ids = tok.encode(text).ids
        decoded = tok.decode(ids, skip_special_tokens=False)
        # Round trip: HF gives back the text with NFC applied outside the special tokens (which are not
        # normalized); ours must give the same. Check that assumption here so the fixture documents it.
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        nfc_outside = text
        if not any(s in text for s in specials):
            nfc_outside = unicodedata.normalize("NFC", text)
            assert decoded == nfc_outside, (text, decoded)
        expected.append({"ids": ids, "decoded": decoded,
                         "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})

    os.makedirs(os.path.join(OUT, "broken"), exist_ok=True)
    write_jsonl(os.path.join(OUT, "corpus.jsonl"), [{"text": t} for t in texts])
    write_jsonl(os.path.join(OUT, "expected.jsonl"), expected)

    hf = AutoTokenizer.from_pretrained(MODEL_DIR)
    chats = []
    for messages, gen in chat_cases():
        text = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        chats.append({"messages": messages, "add_generation_prompt": gen, "text": text,
                      "ids": tok.encode(text).ids})
    write_jsonl(os.path.join(OUT, "chat.jsonl"), chats)

    base = tiny_valid_tokenizer()
    Tokenizer.from_str(json.dumps(base))  # the base must be valid for HF too
    with open(os.path.join(OUT, "tiny_valid.json"), "w", encoding="utf-8") as f:
        json.dump(base, f, ensure_ascii=False)
    errors = {}
    for name, content, must_contain in broken_tokenizers(base):
        with open(os.path.join(OUT, "broken", name), "w", encoding="utf-8") as f:
            f.write(content)
        errors[name] = must_contain
    with open(os.path.join(OUT, "broken", "expected_errors.json"), "w", encoding="utf-8") as f:
        json.dump(errors, f, indent=1, sort_keys=True)
        f.write("\n")

    n_ids = sum(len(e["ids"]) for e in expected)
    print(f"{len(texts)} texts, {n_ids} ids; {len(chats)} chats; {len(errors)} broken tokenizers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
