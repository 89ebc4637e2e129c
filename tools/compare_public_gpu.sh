#!/usr/bin/env bash
# The GPU-machine side of docs/quality.md's comparison with the public auto-round (issue 12): from the repository
# root of a copy that carries .whl/ (auto-round 0.16.1 and the wheels it lacks there), .gpu/bundle-q.tar.xz
# (scripts/build_gpu_bundle.sh .gpu/bundle-q) and .device/second-qwen3/ (tools/train_second_model.py prepare):
#
#   tools/compare_public_gpu.sh OUT_DIR [WORK_DIR] [--skip-train] [-- COMPARE_RUN_ARGS...]
#
# installs the wheels into /tmp/site, unpacks the bundle, trains the second model into WORK_DIR (unless it is
# there already), runs tools/compare_with_public_autoround.py run for both models, and leaves the table, the
# training log and every run's small files (losses, eval json, logs) as a tarball in OUT_DIR.
set -uo pipefail
out=${1:?usage: tools/compare_public_gpu.sh OUT_DIR [WORK_DIR]}
work=${2:-/tmp/compare}
shift $(( $# >= 2 ? 2 : 1 ))
train=1
[ "${1:-}" = "--skip-train" ] && { train=0; shift; }
[ "${1:-}" = "--" ] && shift
mkdir -p "$out" "$work"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1
[ -x .gpu/bundle-q/omniround ] || tar xJf .gpu/bundle-q.tar.xz -C .gpu
for d in /usr/local/cuda/lib64 /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib \
         /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cublas/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/machine.txt"
python3 -c "import auto_round, torch, transformers; print('auto-round', auto_round.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)" \
  | tee -a "$out/machine.txt"
second=$work/second-qwen3
# Each run stops by LIMIT seconds after this script started (default 560: a device call's 600 s less the tarball),
# so that what finished comes back; finished jobs are skipped by the next call.
limit=${LIMIT:-560}
run() {
  timeout $((limit - SECONDS)) python3 tools/compare_with_public_autoround.py run --bin .gpu/bundle-q/omniround \
    --work "$work/runs" --deadline $((limit - SECONDS - 150)) "$@"
}
M=models/tiny-qwen3
# The shipped model's runs go while the second model trains (the GPU has room for both; wall times are not
# compared).
run --model "tiny=$M:$M/calibration.txt:eot:$M/heldout.txt" "$@" > "$out/compare_tiny.log" 2>&1 &
tiny_pid=$!
if [ "$train" = 1 ] && [ ! -f "$second/model/model.safetensors" ]; then
  python3 tools/train_second_model.py train --out "$second" > "$out/train_second.log" 2>&1 \
    || { echo "training failed"; tail -20 "$out/train_second.log"; }
fi
tail -3 "$out/train_second.log" 2>/dev/null
if [ -f "$second/model/model.safetensors" ]; then
  run --model "second=$second/model:$second/model/calibration.txt:newline:$second/model/heldout.jsonl" "$@" \
    > "$out/compare_second.log" 2>&1
fi
wait "$tiny_pid"
python3 tools/compare_with_public_autoround.py table --work "$work/runs" > "$out/table.md"
cp "$second/metrics.json" "$out/second_metrics.json" 2>/dev/null
cp "$second/train_log.txt" "$out/second_train_log.txt" 2>/dev/null
# Everything but the checkpoints, in one file (a lease returns few files).
tar czf "$out/runs.tar.gz" -C "$work" --exclude=model --exclude='*.safetensors' runs
