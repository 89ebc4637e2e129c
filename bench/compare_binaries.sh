#!/usr/bin/env bash
# Two builds of omniround side by side, in one run, interleaved (A B A B ...) so that load drift hits both
# equally: prefill and decode tokens/s of generate on a BF16 and a W4A16 checkpoint, and AutoRound wall time on
# the shipped tiny model. Prints a markdown table of medians and the ratio new/base.
#   bench/compare_binaries.sh BASE_BIN NEW_BIN BF16_DIR W4A16_DIR [REPS=5] [THREADS=2]
set -euo pipefail
base=$1 new=$2 bf16=$3 w4=$4 reps=${5:-5} threads=${6:-2}
root=$(cd "$(dirname "$0")/.." && pwd)
tiny=$root/models/tiny-qwen3
prompt=$(head -c 400 "$tiny/heldout.txt" | tr '\n"' '  ')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in $(seq "$reps"); do
  for which in base new; do
    bin=${!which}
    for m in bf16 w4; do
      out=$("$bin" generate "${!m}" -p "$prompt" -n 128 --threads "$threads" 2>&1)
      echo "$out" | sed -n 's/.*prefill \([0-9.]*\) tokens\/s.*/\1/p' >> "$tmp/$which.$m.prefill"
      echo "$out" | sed -n 's/.*decode \([0-9.]*\) tokens\/s.*/\1/p' >> "$tmp/$which.$m.decode"
    done
    rm -rf "$tmp/q"
    s=$(date +%s.%N)
    "$bin" quantize "$tiny" -o "$tmp/q" --iters 50 --nsamples 32 --seqlen 128 --batch-size 8 --threads "$threads" \
      > /dev/null 2>&1
    echo "$(date +%s.%N) - $s" | bc >> "$tmp/$which.autoround"
  done
done
echo "| measure | base | new | new / base |"
echo "|---|---:|---:|---:|"
for row in "bf16.prefill:BF16 prefill, tokens/s" "bf16.decode:BF16 decode, tokens/s" \
           "w4.prefill:W4A16 prefill, tokens/s" "w4.decode:W4A16 decode, tokens/s" \
           "autoround:AutoRound (tiny model, 8 blocks, 50 iters), s"; do
  key=${row%%:*} label=${row#*:}
  b=$(median < "$tmp/base.$key") n=$(median < "$tmp/new.$key")
  printf "| %s | %.1f | %.1f | %.3f |\n" "$label" "$b" "$n" "$(echo "$n / $b" | bc -l)"
done
