#!/usr/bin/env bash
# Do the committed fixtures still come out of their generators? Runs the generators that need only Python's
# standard library (tools/make_broken_configs.py, tools/make_broken_safetensors.py, tools/make_fuzz_seeds.py, tools/make_png_fixtures.py,
# tools/make_clip_t5_tokenizer_fixtures.py --broken-only) in a
# scratch copy of the repository's tools/ and the fixtures they read, and fails, naming the files, if any output
# differs from what is committed. (The generators that need PyTorch or transformers run through tools/regenerate_fixtures.sh.)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
command -v python3 >/dev/null || { echo "check_fixtures: python3 not found" >&2; exit 2; }
mkdir -p "$scratch/tests/data" "$scratch/tests/fuzz/corpus"
cp -r "$repo/tools" "$scratch/"
mkdir -p "$scratch/tests/data/config" && cp "$repo/tests/data/config/valid.json" "$scratch/tests/data/config/"
# What make_fuzz_seeds.py derives its seeds from (the config.json files and the tokenizers it starts from).
(cd "$repo" && cp --parents models/tiny-qwen3/config.json models/tiny-qwen3/tokenizer.json \
   tests/data/qwen2/*/config.json tests/data/qwen3/*/config.json tests/data/tokenizer/tiny_valid.json "$scratch/")
# What make_clip_t5_tokenizer_fixtures.py --broken-only derives the broken CLIP and T5 tokenizers from.
(cd "$repo" && cp --parents tests/data/tokenizers/clip/vocab_merges/* tests/data/tokenizers/t5/tiny_valid/tokenizer.json \
   "$scratch/")
(cd "$scratch" && python3 tools/make_broken_configs.py && python3 tools/make_broken_safetensors.py >/dev/null &&
   python3 tools/make_fuzz_seeds.py >/dev/null && python3 tools/make_png_fixtures.py >/dev/null &&
   python3 tools/make_clip_t5_tokenizer_fixtures.py --broken-only >/dev/null)
status=0
for d in tests/data/config/broken tests/data/safetensors/broken tests/data/safetensors/broken_index \
         tests/fuzz/corpus/safetensors tests/fuzz/corpus/config tests/fuzz/corpus/tokenizer tests/data/png \
         tests/data/tokenizers/clip/broken tests/data/tokenizers/t5/broken; do
  if ! diff -r "$repo/$d" "$scratch/$d" >"$scratch/diff.txt" 2>&1; then
    echo "check_fixtures: $d differs from what its generator writes:" >&2
    head -20 "$scratch/diff.txt" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "fixtures: tests/data/config/broken, tests/data/safetensors/broken{,_index} the fuzz seeds (safetensors, config, tokenizer), tests/data/png and tests/data/tokenizers/{clip,t5}/broken regenerate byte for byte"
exit $status
