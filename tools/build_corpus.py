#!/usr/bin/env python3
"""Builds the public-domain English text corpus for the tiny shipped model and its tokenizer.

Sources (Debian packages already installed on the build machine):
  * WordNet 3 glosses   /usr/share/wordnet/data.{noun,verb,adj,adv}  (text after '|': definition + examples)
  * King James Bible    read through the `bible` program (package bible-kjv / bible-kjv-text)
  * fortunes            /usr/share/games/fortunes/<name> (plain files only; '%' lines separate entries)

Output: one sample per line, deduplicated, shuffled with a fixed seed, then split three ways with no overlap:
  models/tiny-qwen3/heldout.txt      ~150 KB  (committed; perplexity checks)
  models/tiny-qwen3/calibration.txt  ~300 KB  (committed; AutoRound calibration)
  corpus/train.txt                   the rest (ignored by git)
Standard library only; the same inputs always give byte-identical outputs.
"""
import argparse
import os
import random
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDNET_DIR = "/usr/share/wordnet"
FORTUNE_DIR = "/usr/share/games/fortunes"
# Drawings and non-English collections make poor language-model text.
FORTUNE_SKIP = {"ascii-art", "art", "translate-me"}
SEED = 20240611


def clean(text):
    """Collapses all whitespace (newlines, tabs, runs of spaces) to single spaces; one sample = one line."""
    return re.sub(r"\s+", " ", text).strip()


def wordnet_glosses():
    out = []
    for pos in ("noun", "verb", "adj", "adv"):
        path = os.path.join(WORDNET_DIR, "data." + pos)
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  "):  # license header lines start with two spaces
                    continue
                bar = line.find(" | ")
                if bar < 0:
                    continue
                gloss = clean(line[bar + 3:])
                if len(gloss) >= 8:
                    out.append(gloss)
    return out


def bible_passages(rng):
    """Groups consecutive verses of one chapter into passages of 1-4 verses (random but seeded lengths)."""
    text = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True,
                          text=True, encoding="utf-8", errors="replace").stdout
    verse_re = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
    chapters = {}
    order = []
    for line in text.splitlines():
        m = verse_re.match(line)
        if not m:
            continue
        key = (m.group(1), int(m.group(2)))
        if key not in chapters:
            chapters[key] = []
            order.append(key)
        chapters[key].append(clean(m.group(4)))
    out = []
    for key in order:
        verses = chapters[key]
        i = 0
        while i < len(verses):
            n = rng.randint(1, 4)
            out.append(" ".join(verses[i:i + n]))
            i += n
    return out, sum(len(v) for v in chapters.values())


def read_fortune_file(path):
    raw = open(path, "rb").read()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def fortunes():
    out = []
    used = []
    for name in sorted(os.listdir(FORTUNE_DIR)):
        path = os.path.join(FORTUNE_DIR, name)
        # Plain files only: skip the .dat indexes, the .u8 duplicates, symlinks and subdirectories
        # (Debian keeps offensive collections in a separate 'off' directory, which this skips too).
        if "." in name or name in FORTUNE_SKIP or not os.path.isfile(path) or os.path.islink(path):
            continue
        used.append(name)
        entry = []
        for line in read_fortune_file(path).splitlines():
            if line.strip() == "%":
                text = clean("\n".join(entry))
                if len(text) >= 8:
                    out.append(text)
                entry = []
            else:
                entry.append(line)
        text = clean("\n".join(entry))
        if len(text) >= 8:
            out.append(text)
    return out, used


def take_bytes(samples, start, budget):
    """Takes samples from `start` until about `budget` bytes (UTF-8, with newlines) are collected."""
    size = 0
    end = start
    while end < len(samples) and size < budget:
        size += len(samples[end].encode("utf-8")) + 1
        end += 1
    return end, size


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for s in lines:
            f.write(s + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=REPO, help="repository root to write into")
    ap.add_argument("--heldout-bytes", type=int, default=150_000)
    ap.add_argument("--calibration-bytes", type=int, default=300_000)
    args = ap.parse_args()

    rng = random.Random(SEED)
    glosses = wordnet_glosses()
    passages, n_verses = bible_passages(rng)
    fort, fortune_files = fortunes()
    print(f"wordnet glosses : {len(glosses)}")
    print(f"bible verses    : {n_verses} in {len(passages)} passages")
    print(f"fortunes        : {len(fort)} from {len(fortune_files)} files")

    # Deduplicate (keeping first occurrence) so that no line can appear in two splits.
    seen = set()
    samples = []
    for s in glosses + passages + fort:
        if s not in seen:
            seen.add(s)
            samples.append(s)
    samples.sort()  # independent of source ordering details before the seeded shuffle
    rng.shuffle(samples)
    print(f"unique samples  : {len(samples)} (dropped {len(glosses) + len(passages) + len(fort) - len(samples)} duplicates)")

    h_end, h_size = take_bytes(samples, 0, args.heldout_bytes)
    c_end, c_size = take_bytes(samples, h_end, args.calibration_bytes)
    heldout, calibration, train = samples[:h_end], samples[h_end:c_end], samples[c_end:]
    assert not (set(heldout) & set(train)) and not (set(calibration) & set(train))
    assert not (set(heldout) & set(calibration))

    model_dir = os.path.join(args.out_dir, "models", "tiny-qwen3")
    write_lines(os.path.join(model_dir, "heldout.txt"), heldout)
    write_lines(os.path.join(model_dir, "calibration.txt"), calibration)
    write_lines(os.path.join(args.out_dir, "corpus", "train.txt"), train)
    t_size = sum(len(s.encode("utf-8")) + 1 for s in train)
    print(f"heldout.txt     : {len(heldout)} lines, {h_size} bytes")
    print(f"calibration.txt : {len(calibration)} lines, {c_size} bytes")
    print(f"train.txt       : {len(train)} lines, {t_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
