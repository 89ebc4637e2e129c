#!/usr/bin/env bash
# The one command for the GPU side. On a machine with an NVIDIA GPU, from the repository root:
#
#   scripts/gpu_check.sh OUT_DIR
#
# Uses the bundle of scripts/build_gpu_bundle.sh (.gpu/bundle or its .tar.xz, or $OMNI_GPU_BUNDLE; built here
# when absent and this machine can build it), then runs: every backend op on the GPU against the reference (backend_ops_test),
# the golden model tests on the GPU, the CUDA unit tests, the shipped model end to end (generate on GPU vs CPU,
# AutoRound on the GPU vs the CPU, both evaluated), and the benchmarks that exist. Logs and markdown tables go
# to OUT_DIR; the last lines printed are a summary. Exits non-zero when any check fails.
set -uo pipefail
out=${1:?usage: scripts/gpu_check.sh OUT_DIR}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
mkdir -p "$out/logs"
bundle=${OMNI_GPU_BUNDLE:-$repo/.gpu/bundle}
if [ ! -x "$bundle/omniround" ] && [ -f "$bundle.tar.xz" ]; then
  tar xJf "$bundle.tar.xz" -C "$(dirname "$bundle")"
fi
if [ ! -x "$bundle/omniround" ]; then
  echo "== no bundle at $bundle: building one"
  bash scripts/build_gpu_bundle.sh "$bundle" || { echo "gpu_check: no bundle and it cannot be built here" >&2; exit 2; }
fi
# cuBLAS: the CUDA toolkit's, else the one PyTorch carries.
for d in /usr/local/cuda/lib64 /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib \
         /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cublas/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export OMNI_SOURCE_DIR=$repo
B=$bundle/omniround
status=0
summary=()
check() {  # NAME COMMAND...: runs it with its log in OUT_DIR
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$out/logs/$name.log" 2>&1; then
    summary+=("PASS  $name ($((SECONDS - t0)) s)")
  else
    summary+=("FAIL  $name ($((SECONDS - t0)) s): see logs/$name.log")
    status=1
  fi
}

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv | tee "$out/gpu.txt"

echo "== backend ops on the GPU"
check backend_ops "$bundle/backend_ops_test" --gtest_filter='*cuda*'
sed -n '/backend_ops summary/,/^\[/p' "$out/logs/backend_ops.log" | grep -v '^\[' > "$out/backend_ops_summary.md"
echo "== golden model tests on the GPU"
check golden_models "$bundle/causal_lm_golden_test" --gtest_filter='*cuda*'
# Every other test program of the bundle (the CUDA unit tests, the W4A16 kernel test).
for t in "$bundle"/*_test; do
  case "$(basename "$t")" in backend_ops_test|causal_lm_golden_test) continue ;; esac
  check "$(basename "$t")" "$t"
done

echo "== the shipped model end to end"
M=models/tiny-qwen3
work=$(mktemp -d)
prompt="The meaning of the word"
# Greedy with f32 activations: the GPU and the CPU must continue the prompt with the same text.
check generate_gpu_f32 "$B" generate $M -p "$prompt" -n 48 --device cuda --dtype f32
check generate_cpu_f32 "$B" generate $M -p "$prompt" -n 48 --device cpu
if [ "$(head -c 2000 "$out/logs/generate_gpu_f32.log" | grep -v '^model:\|^prompt:' )" = \
     "$(head -c 2000 "$out/logs/generate_cpu_f32.log" | grep -v '^model:\|^prompt:')" ]; then
  summary+=("PASS  greedy text GPU f32 == CPU f32")
else
  summary+=("FAIL  greedy text GPU f32 != CPU f32 (generate_*_f32.log)"); status=1
fi
check generate_gpu_bf16 "$B" generate $M -p "$prompt" -n 48 --device cuda
# AutoRound on each device, same settings; both evaluated against BF16 on held-out text (on the GPU).
ar=(--iters 50 --nsamples 16 --seqlen 256 --batch-size 8)
check quantize_gpu "$B" quantize $M -o "$work/ar-gpu" "${ar[@]}" --device cuda
check quantize_cpu "$B" quantize $M -o "$work/ar-cpu" "${ar[@]}" --device cpu
check quantize_rtn "$B" quantize $M -o "$work/rtn" --rtn
for q in ar-gpu ar-cpu rtn; do
  check "eval_$q" "$B" eval "$work/$q" --dataset $M/heldout.txt --reference $M --device cuda --json "$out/logs/eval_$q.json"
done
{
  echo "| tiny-qwen3 W4A16 | ΔPPL | mean KLD | top-1 |"
  echo "|---|---|---|---|"
  for q in ar-gpu ar-cpu rtn; do
    python3 - "$out/logs/eval_$q.json" "$q" <<'PY' 2>/dev/null || echo "| $q | (no result) | | |"
import json, sys
j = json.load(open(sys.argv[1]))
print(f"| {sys.argv[2]} | {j.get('delta_ppl', float('nan')):.4f} | {j.get('mean_kld', float('nan')):.5f} | "
      f"{100 * j.get('same_top_p', float('nan')):.2f} % |")
PY
  done
} > "$out/quality_gpu_vs_cpu.md"
grep -h "tuning on\|wall\|AutoRound:" "$out/logs/quantize_gpu.log" "$out/logs/quantize_cpu.log" > "$out/quantize_times.md" || true
rm -rf "$work"

echo "== decode: Qwen3-8B-shaped blocks (random weights), BF16 vs W4A16 (RTN g128), batch 1"
# Eight of the 36 blocks of Qwen3-8B (hidden 4096, intermediate 12288, 32/8 heads × 128): per-token time per
# block is what scales, and eight keep the checkpoint at ~3 GB. tools/make_random_qwen3.py needs PyTorch.
dec=$(mktemp -d)
if python3 tools/make_random_qwen3.py "$dec/bf16" --hidden 4096 --intermediate 12288 --layers "${OMNI_DECODE_LAYERS:-8}" \
     --heads 32 --kv-heads 8 --head-dim 128 >"$out/logs/decode_model.log" 2>&1; then
  check decode_rtn "$B" quantize "$dec/bf16" -o "$dec/w4a16" --rtn
  for m in bf16 w4a16; do
    check "decode_$m" "$B" generate "$dec/$m" -p "$prompt" -n 128 --device cuda
  done
  {
    echo "| weights | checkpoint GB | decode tokens/s | bytes/token ÷ 4.25 TB/s (roofline tokens/s) | % of roofline |"
    echo "|---|---|---|---|---|"
    for m in bf16 w4a16; do
      gb=$(du -sb "$dec/$m" | cut -f1)
      tps=$(sed -n 's/.*decode \([0-9.]*\) tokens\/s.*/\1/p' "$out/logs/decode_$m.log" | tail -1)
      python3 -c "import sys; b=float(sys.argv[1]); t=float(sys.argv[2] or 'nan'); r=4.25e12/b; print(f'| {sys.argv[3]} | {b/1e9:.2f} | {t:.1f} | {r:.0f} | {100*t/r:.1f} % |')" "$gb" "${tps:-nan}" "$m"
    done
  } > "$out/decode.md"
else
  summary+=("SKIP  decode: tools/make_random_qwen3.py failed (see logs/decode_model.log)")
fi
rm -rf "$dec"

echo "== FLUX: the transformer at FLUX.1-dev shapes (random weights), BF16 vs W4A16, 1024² and 512²"
for w in bf16 w4a16; do
  check "flux_${w}_1024" "$B" bench flux --weights $w --size 1024x1024 --cfg-compare --device cuda
  check "flux_${w}_512" "$B" bench flux --weights $w --size 512x512 --cfg-compare --device cuda
done
# FLUX's VAE decode at 1024² (its mid-block attention has one head of 512 channels).
check flux_vae_1024 "$B" bench flux --weights w4a16 --size 1024x1024 --repeat 1 --vae --device cuda
{
  echo "| FLUX.1-dev shapes | weights GB | forward ms | TFLOP/s | 28 steps s | batched CFG / sequential | device peak GB |"
  echo "|---|---|---|---|---|---|---|"
  for w in bf16 w4a16; do
    for px in 1024 512; do
      l="$out/logs/flux_${w}_${px}.log"
      gb=$(sed -n 's/.*, \([0-9.]*\) GB of weights.*/\1/p' "$l"); ms=$(sed -n 's/^forward (batch 1): \([0-9.]*\) ms.*/\1/p' "$l")
      tf=$(sed -n 's/.*(\([0-9.]*\) TFLOP\/s).*/\1/p' "$l"); st=$(sed -n 's/.*28 steps: \([0-9.]*\) s.*/\1/p' "$l")
      cfg=$(sed -n 's/.*batched takes \([0-9.]*\)x.*/\1/p' "$l"); pk=$(sed -n 's/^device memory at its peak: \([0-9.]*\) GB/\1/p' "$l")
      echo "| $w ${px}² | ${gb:-?} | ${ms:-?} | ${tf:-?} | ${st:-?} | ${cfg:-?}x | ${pk:-?} |"
    done
  done
  grep -h "^VAE decode" "$out"/logs/flux_vae_1024.log | sed 's/^/ /'
} > "$out/flux.md"
if [ -f models/tiny-flux/model_index.json ]; then
  echo "== FLUX: the shipped tiny text-to-image model, GPU vs CPU"
  for d in cuda cpu; do
    check "tiny_flux_image_$d" "$B" image models/tiny-flux -p "a photo of a sneaker" --size 32x32 --steps 20 \
      --true-cfg-scale 4 --max-sequence-length 32 --seed 1 --device $d --dtype f32 -o "$out/tiny_flux_$d.png"
  done
  check tiny_flux_gpu_vs_cpu "$B" compare --reference "$out/tiny_flux_cpu.png" --candidate "$out/tiny_flux_cuda.png" --level strict
fi

for b in "$bundle"/*_bench; do
  [ -x "$b" ] || continue
  name=$(basename "$b")
  echo "== $name"
  check "$name" "$b"
  cp "$out/logs/$name.log" "$out/$name.md"
done

# The logs travel as one archive (a GPU lease returns few files); the tables stay beside it.
tar czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$out/logs"
{
  echo "== gpu_check summary ($(head -2 "$out/gpu.txt" | tail -1))"
  printf '%s\n' "${summary[@]}"
  cat "$out/quality_gpu_vs_cpu.md"
  [ -f "$out/decode.md" ] && cat "$out/decode.md"
  [ -f "$out/flux.md" ] && cat "$out/flux.md"
} | tee "$out/summary.md"
exit $status
