#!/usr/bin/env bash
# The text-to-image quality table of the shipped model (models/tiny-flux): BF16, W4A16 by RTN and W4A16 by
# AutoRound, each generating the same prompts with the same seeds; each quantized set compared with the BF16 set
# (PSNR, MAE, cosine, relative L2 on the uint8 images) and scored by the model's classifier (class accuracy against
# the class asked for, and the Fréchet distance of its features to the BF16 images').
#
#   scripts/text_to_image_quality.sh OMNIROUND OUT_DIR [IMAGES_PER_CLASS=10]
# Writes OUT_DIR/{bf16,rtn,autoround}/NN-K.png (class NN, seed index K) and OUT_DIR/table.md.
set -euo pipefail
bin=${1:?usage: text_to_image_quality.sh OMNIROUND OUT_DIR [IMAGES_PER_CLASS]}
out=${2:?usage: text_to_image_quality.sh OMNIROUND OUT_DIR [IMAGES_PER_CLASS]}
per_class=${3:-10}
cd "$(dirname "$0")/.."
FLUX=models/tiny-flux
# The model's settings (models/tiny-flux/README.md): 32 px, T5 sequences of 32 tokens, true CFG 4 against "".
img=(--size 32x32 --steps 28 --true-cfg-scale 4 --max-sequence-length 32 --device cpu -q)
classes=("a t-shirt" "a pair of trousers" "a pullover" "a dress" "a coat" "a sandal" "a shirt" "a sneaker" "a bag"
         "an ankle boot")
mkdir -p "$out"
# Calibration captions for AutoRound: the other templates the model was trained on, never the evaluation prompt's.
calib="$out/captions.txt"
: > "$calib"
for t in "%s" "a picture of %s" "an image of %s" "a product photo of %s"; do
  for c in "${classes[@]}"; do printf "$t\n" "$c" >> "$calib"; done
done
rm -rf "$out/tiny-flux-rtn" "$out/tiny-flux-autoround"
# Their logs (per-block losses, timings) go to OUT_DIR/quantize-*.log; the last line is printed.
"$bin" quantize "$FLUX" -o "$out/tiny-flux-rtn" --rtn >"$out/quantize-rtn.log" 2>&1 ||
  { cat "$out/quantize-rtn.log" >&2; exit 1; }
"$bin" quantize "$FLUX" -o "$out/tiny-flux-autoround" --dataset "$calib" --calib-size 32x32 --calib-steps 4 \
  --max-sequence-length 32 --nsamples 40 --device cpu >"$out/quantize-autoround.log" 2>&1 ||
  { cat "$out/quantize-autoround.log" >&2; exit 1; }
echo "AutoRound of the transformer: $(grep -h "wall time" "$out/quantize-autoround.log") (log: $out/quantize-autoround.log)"
for m in bf16 rtn autoround; do
  dir=$FLUX
  [ "$m" != bf16 ] && dir="$out/tiny-flux-$m"
  mkdir -p "$out/$m"
  t0=$SECONDS
  for i in "${!classes[@]}"; do
    for k in $(seq 0 $((per_class - 1))); do
      "$bin" image "$dir" -p "a photo of ${classes[$i]}" --seed $((1000 + 10 * i + k)) "${img[@]}" \
        -o "$out/$m/$(printf %02d "$i")-$k.png" >/dev/null 2>"$out/image.err" || { cat "$out/image.err" >&2; exit 1; }
    done
  done
  echo "$m: $((${#classes[@]} * per_class)) images in $((SECONDS - t0)) s"
done
{
  echo "| tiny-flux, $((${#classes[@]} * per_class)) prompts | PSNR vs BF16 dB | MAE | cosine | rel. L2 | class accuracy | drift vs BF16 | Fréchet distance to BF16 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  for m in rtn autoround; do
    "$bin" compare --reference "$out/bf16" --candidate "$out/$m" --classifier "$FLUX/classifier" --level strict \
      --json "$out/$m.json" >/dev/null || true
    python3 - "$out/$m.json" "$m" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); m = j["all_images_metrics"]; c = j["classifier"]
if sys.argv[2] == "rtn":
    print(f"| BF16 | - | - | - | - | {100 * c['reference_accuracy']:.1f} % | - | 0 |")
print(f"| W4A16 {sys.argv[2]} | {m['psnr_db']:.2f} | {m['mae']:.3f} | {m['cosine_similarity']:.5f} | "
      f"{m['relative_l2']:.4f} | {100 * c['candidate_accuracy']:.1f} % | "
      f"{100 * (c['candidate_accuracy'] - c['reference_accuracy']):+.1f} points | {c['frechet_distance']:.3f} |")
PY
  done
} > "$out/table.md"
cat "$out/table.md"
