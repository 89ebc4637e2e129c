#!/usr/bin/env bash
# The main job on the model shipped in the repository (models/tiny-qwen3, 8.4M parameters):
#   1. build omniround;
#   2. generate text with the BF16 model;
#   3. quantize it to W4A16 with AutoRound (default recipe: 200 iterations per block) and with plain RTN;
#   4. compare both with the BF16 model on held-out text (PPL, ΔPPL, mean KLD, top-1 agreement);
#   5. generate with the AutoRound checkpoint;
#   6. text to image with the shipped FLUX-architecture model (models/tiny-flux): one BF16 image, then the quality
#      table of BF16 vs W4A16 RTN vs W4A16 AutoRound over 100 prompts x fixed seeds
#      (scripts/text_to_image_quality.sh).
# Calibration is sized to finish in a few minutes on a 2-core machine: 32 samples of 128 tokens, batch 4 (the
# AutoRound defaults are 128 × 2048, batch 8 — see docs/quality.md for runs at larger sizes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DOMNI_TESTS=OFF -DOMNI_BENCH=OFF >/dev/null
ninja -C build omniround

MODEL=models/tiny-qwen3
OUT=out
PROMPT="${PROMPT:-And God said unto Moses,}"
EVAL_TOKENS="${EVAL_TOKENS:-16000}"
bin=build/omniround
mkdir -p "$OUT"

echo; echo "== BF16: $MODEL"
$bin generate "$MODEL" -p "$PROMPT" -n 48

echo; echo "== quantize to W4A16 with AutoRound (group 128, auto_round format)"
rm -rf "$OUT/tiny-qwen3-w4a16-autoround" "$OUT/tiny-qwen3-w4a16-rtn"
$bin quantize "$MODEL" -o "$OUT/tiny-qwen3-w4a16-autoround" --nsamples 32 --seqlen 128 --batch-size 4 \
  --dataset "$MODEL/calibration.txt"

echo; echo "== quantize to W4A16 with RTN (for comparison)"
$bin quantize "$MODEL" -o "$OUT/tiny-qwen3-w4a16-rtn" --rtn

echo; echo "== quality on held-out text ($MODEL/heldout.txt, first $EVAL_TOKENS tokens)"
for m in rtn autoround; do
  $bin eval "$OUT/tiny-qwen3-w4a16-$m" --dataset "$MODEL/heldout.txt" --reference "$MODEL" \
    --max-tokens "$EVAL_TOKENS" 2>/dev/null
done

echo; echo "== W4A16 (AutoRound): $OUT/tiny-qwen3-w4a16-autoround"
$bin generate "$OUT/tiny-qwen3-w4a16-autoround" -p "$PROMPT" -n 48
echo
$bin inspect "$OUT/tiny-qwen3-w4a16-autoround"

echo; echo "== text to image: models/tiny-flux (BF16), $OUT/tiny-flux-bf16.png"
$bin image models/tiny-flux -p "a photo of a sneaker" --size 32x32 --steps 28 --true-cfg-scale 4 \
  --max-sequence-length 32 --seed 1 --device cpu -o "$OUT/tiny-flux-bf16.png"
echo; echo "== text to image quality: BF16 vs W4A16 RTN vs W4A16 AutoRound, 100 prompts (10 per class), fixed seeds"
bash scripts/text_to_image_quality.sh "$PWD/$bin" "$OUT/text-to-image"
