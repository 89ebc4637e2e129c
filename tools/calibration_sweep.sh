#!/usr/bin/env bash
# AutoRound quality per calibration policy (issue 12, item 1): quantizes MODEL with each --calib-policy and seed,
# evaluates every result with `omniround eval --reference MODEL` on held-out text, and prints one markdown row per
# policy: mean ΔPPL, KLD and top-1 agreement over the seeds with their standard errors (of the mean over seeds).
#
#   tools/calibration_sweep.sh BIN MODEL_DIR OUT_DIR [--policies "concat stream chat"] [--seeds "1 2 3"]
#                              [--device cpu|cuda] [--heldout FILE] [-- QUANTIZE_ARGS...]
# QUANTIZE_ARGS default to `--nsamples 128 --seqlen 512 --batch-size 8` (the issue's measurement); the dataset is
# MODEL_DIR/calibration.txt unless QUANTIZE_ARGS name one. Eval runs with f32 activations on the chosen device.
set -euo pipefail
bin=$1 model=$2 out=$3
shift 3
policies="concat stream chat" seeds="1 2 3" device=cpu heldout=$model/heldout.txt
qargs=(--nsamples 128 --seqlen 512 --batch-size 8)
while [ $# -gt 0 ]; do
  case "$1" in
    --policies) policies=$2; shift ;;
    --seeds) seeds=$2; shift ;;
    --device) device=$2; shift ;;
    --heldout) heldout=$2; shift ;;
    --) shift; qargs=("$@"); break ;;
    *) echo "calibration_sweep: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out"
# mean and standard error of the mean of the numbers on stdin
stats() { awk '{s+=$1; q+=$1*$1; n++} END {m=s/n; v=(n>1)?(q-n*m*m)/(n-1):0; if (v<0) v=0; printf "%.4g ± %.2g", m, sqrt(v/n)}'; }
echo "| policy | seeds | ΔPPL | mean KLD | same top-1 % | calibration |"
echo "|---|---|---|---|---|---|"
for p in $policies; do
  : > "$out/$p.dppl"; : > "$out/$p.kld"; : > "$out/$p.top1"
  calib=""
  for s in $seeds; do
    q=$out/$p-seed$s
    rm -rf "$q"
    "$bin" quantize "$model" -o "$q" --calib-policy "$p" --seed "$s" --device "$device" "${qargs[@]}" \
      > "$out/$p-seed$s.quantize.log" 2>&1 || { echo "| $p | quantize failed: $(tail -1 "$out/$p-seed$s.quantize.log") |"; continue 2; }
    calib=$(grep -m1 "calibration: policy" "$out/$p-seed$s.quantize.log" | sed 's/^.*calibration: //; s/|/\//g' || true)
    "$bin" eval "$q" --dataset "$heldout" --reference "$model" --device "$device" --dtype f32 \
      > "$out/$p-seed$s.eval.log" 2>&1
    row=$(grep -F "| $q |" "$out/$p-seed$s.eval.log")
    echo "$row" | awk -F'|' '{split($4, a, " "); print a[1]}' >> "$out/$p.dppl"
    echo "$row" | awk -F'|' '{split($5, a, " "); print a[1]}' >> "$out/$p.kld"
    echo "$row" | awk -F'|' '{split($6, a, " "); print a[1]}' >> "$out/$p.top1"
    rm -rf "$q"
  done
  echo "| $p | $seeds | $(stats < "$out/$p.dppl") | $(stats < "$out/$p.kld") | $(stats < "$out/$p.top1") | $calib |"
done
