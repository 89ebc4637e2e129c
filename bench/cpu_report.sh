#!/usr/bin/env bash
# The CPU performance report of one machine, in one run: the CPU named, the kernel tests of every SIMD path the
# build holds (correctness first: on an AVX-512 machine this is where the AVX-512 kernels are checked), the matmul
# benchmark per SIMD path at 2 threads and at all cores, and `omniround bench decode` of a Qwen3-0.6B-shaped
# random checkpoint (28 layers, hidden 1024) in BF16 and W4A16 (RTN, group 128) at 2 threads and at all cores.
#
#   bench/cpu_report.sh BUILD_DIR OUT_DIR [PYTHON]
# BUILD_DIR holds omniround, matmul_bench and the CPU kernel tests; PYTHON (with torch and safetensors) writes the
# checkpoint once into OUT_DIR/ckpt. Writes OUT_DIR/report.md and the raw logs beside it.
set -euo pipefail
build=$(cd "$1" && pwd) out=$2 py=${3:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
report=$out/report.md
all=$(nproc)
isas=$("$build/matmul_bench" --benchmark_list_tests=true >/dev/null && for i in avx512 avx2; do
  "$build/matmul_bench" --isa=$i --benchmark_filter=NONE >/dev/null 2>&1 && echo $i; done || true)
{
  echo "# CPU report, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $all cores; flags: $(grep -o -w -E 'avx2|avx512f|avx512bw|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
  echo "SIMD paths in this build: $isas"
  echo
} > "$report"

echo "== kernel tests"
for t in w4a16_matmul_test matmul_test backend_ops_test; do
  "$build/$t" --gtest_brief=1 > "$out/$t.log" 2>&1 || { echo "FAILED: $t (see $out/$t.log)" | tee -a "$report"; exit 1; }
  echo "- $t: $(grep -E '^\[  PASSED  \]' "$out/$t.log")" >> "$report"
done

echo "== matmul_bench"
for isa in $isas; do
  for th in 2 "$all"; do
    log=$out/matmul_${isa}_t$th.txt
    "$build/matmul_bench" --isa="$isa" --threads="$th" --benchmark_min_time=0.5 --benchmark_counters_tabular=true \
      --benchmark_filter='Bandwidth|/M:(1|64)/' > "$log" 2> /dev/null
    {
      echo
      echo "## matmul_bench, $isa, $th threads (GB/s = weight bytes read per second)"
      echo
      echo "| benchmark | ms | GB/s |"
      echo "|---|---|---|"
      # Console rows: name, time, unit, cpu time, unit, iterations, GB/s ("12.3/s"), threads.
      awk '/^BM_/ {name=$1; sub(/\/real_time/, "", name); gb=$7; sub(/\/s$/, "", gb); printf "| %s | %s | %.1f |\n", name, $2, gb}' "$log"
    } >> "$report"
  done
done

echo "== bench decode"
ckpt=$out/ckpt
if [ ! -f "$ckpt/model.safetensors" ]; then
  "$py" "$root/tools/make_random_qwen3.py" "$ckpt" --hidden 1024 --intermediate 3072 --layers 28 --heads 16 \
    --kv-heads 8 --head-dim 128 > "$out/make_ckpt.log" 2>&1
fi
[ -d "$out/ckpt-w4a16" ] || "$build/omniround" quantize "$ckpt" --rtn -o "$out/ckpt-w4a16" > "$out/quantize.log" 2>&1
{
  echo
  echo "## omniround bench decode: Qwen3-0.6B-shaped random checkpoint, 64-token prompt, 128 decode tokens, median of 5"
  echo
  echo "| weights | threads | prefill tok/s | decode tok/s | MB read / token | read GB/s | decode / roofline |"
  echo "|---|---|---|---|---|---|---|"
} >> "$report"
for th in 2 "$all"; do
  for m in ckpt ckpt-w4a16; do
    log=$out/decode_${m}_t$th.log
    "$build/omniround" bench decode "$out/$m" --prompt-tokens 64 --tokens 128 --repeat 5 --threads "$th" > "$log" 2>&1
    pre=$(sed -n 's/^prefill: [0-9]* tokens, \([0-9.]*\) tokens.*/\1/p' "$log")
    dec=$(sed -n 's/^decode: *[0-9]* tokens, \([0-9.]*\) tokens.*/\1/p' "$log")
    mb=$(sed -n 's/^read per decode token: \([0-9.]*\) MB.*/\1/p' "$log")
    bw=$(sed -n 's/.*: \([0-9.]*\) GB\/s -> decode roofline.*/\1/p' "$log")
    frac=$(sed -n 's/.*decode at \([0-9]*%\) of it.*/\1/p' "$log")
    echo "| $([ $m = ckpt ] && echo BF16 || echo W4A16) | $th | $pre | $dec | $mb | $bw | $frac |" >> "$report"
  done
done
# Everything but the checkpoints in one archive (a remote machine may return only a few files).
tar czf "$out.logs.tar.gz" -C "$out" --exclude=ckpt --exclude=ckpt-w4a16 . && mv "$out.logs.tar.gz" "$out/logs.tar.gz"
echo "report: $report"
