#!/usr/bin/env bash
# The main job on the model shipped in the repository: build omniround, generate text with the BF16 model,
# quantize it to W4A16 (round-to-nearest, auto_round format), generate with the W4A16 checkpoint, and show
# what each checkpoint holds. Prints prefill and decode tokens/s for both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_TESTS=OFF -DOMNI_BENCH=OFF >/dev/null
ninja -C build omniround

MODEL=models/tiny-qwen3
OUT=out/tiny-qwen3-w4a16-rtn
PROMPT="${PROMPT:-And God said unto Moses,}"
bin=build/omniround

echo; echo "== BF16: $MODEL"
$bin generate "$MODEL" -p "$PROMPT" -n 64

echo; echo "== quantize to W4A16 (RTN, group 128, auto_round format)"
rm -rf "$OUT"
$bin quantize "$MODEL" -o "$OUT" --rtn

echo; echo "== W4A16: $OUT"
$bin generate "$OUT" -p "$PROMPT" -n 64

echo; echo "== checkpoints"
$bin inspect "$MODEL"
echo
$bin inspect "$OUT"
