#!/usr/bin/env bash
# Calibration policy sweep on the second model (issue 12 item 1), in one GPU-machine call: trains the second model as
# tools/compare_public_gpu.sh does (tools/train_second_model.py train, from the carried .device/second-qwen3/), then
# quantizes it once per --calib-policy and seed (AutoRound defaults, 128 x 512 tokens of its calibration.txt, batch
# 8, on the GPU) and evaluates each result with `omniround eval --reference MODEL --device cuda --dtype f32` on its
# held-out text. From the repository root of a copy that carries .gpu/bundle-q.tar.xz and .device/second-qwen3/:
#
#   tools/second_model_policy_sweep.sh OUT_DIR [WORK_DIR]
#
# Environment: LIMIT (seconds after this script starts by which every job has ended; default 540), POLICIES
# (default "concat stream chat"), SEEDS (default "1 2 3"), BIN (default .gpu/bundle-q/omniround), DEVICE (cuda);
# QARGS (replaces the quantize arguments above) and EVAL_ARGS (extra eval arguments): CPU smoke tests only.
# Jobs run one at a time, seed by seed (every policy's seed 1, then every policy's seed 2, ...), so that a cut run
# still has each policy measured alike. Each finished job appends one line to OUT_DIR/results.tsv at once;
# OUT_DIR/table.md (mean ± standard error of the mean over the finished seeds) and OUT_DIR/runs.tar.gz (logs and
# eval json) are written at the end, after the deadline too. The second model is retrained in every call and its GPU
# training is not bit-reproducible: compare policies within one call only.
set -uo pipefail
out=${1:?usage: tools/second_model_policy_sweep.sh OUT_DIR [WORK_DIR]}
work=${2:-/tmp/policy}
limit=${LIMIT:-540}
policies=${POLICIES:-concat stream chat}
seeds=${SEEDS:-1 2 3}
bin=${BIN:-.gpu/bundle-q/omniround}
device=${DEVICE:-cuda}
runs=$out/runs
mkdir -p "$runs" "$work"
if [ -z "${BIN:-}" ]; then
  [ -x "$bin" ] || tar xJf .gpu/bundle-q.tar.xz -C .gpu || exit 1
  for d in /usr/local/cuda/lib64 /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib \
           /opt/torch/.venv/lib/python3.12/site-packages/nvidia/cublas/lib; do
    [ -d "$d" ] && export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  done
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$out/machine.txt" 2>&1
fi
export PYTHONUNBUFFERED=1
second=$work/second-qwen3
model=$second/model
if [ ! -f "$model/model.safetensors" ]; then
  timeout $((limit - SECONDS)) python3 tools/train_second_model.py train --out "$second" > "$runs/train_second.log" 2>&1 \
    || { echo "training failed"; tail -20 "$runs/train_second.log"; }
fi
tail -2 "$runs/train_second.log" 2>/dev/null
cp "$second/metrics.json" "$runs/second_metrics.json" 2>/dev/null
printf 'policy\tseed\tdelta_ppl\tmean_kld\tsame_top1_pct\tquantize_s\teval_s\tcalibration\n' > "$out/results.tsv"
min_job=${MIN_JOB:-25}  # a job is not started with fewer seconds than this left
if [ -f "$model/model.safetensors" ]; then
  for s in $seeds; do
    for p in $policies; do
      left=$((limit - SECONDS))
      if [ "$left" -lt "$min_job" ]; then echo "not run (deadline): $p seed $s" | tee -a "$runs/not_run.txt"; continue; fi
      q=$work/q-$p-$s log=$runs/$p-seed$s
      rm -rf "$q" "$log.eval.json"
      t0=$SECONDS
      timeout "$left" "$bin" quantize "$model" -o "$q" --calib-policy "$p" --seed "$s" --device "$device" \
        ${QARGS:---nsamples 128 --seqlen 512 --batch-size 8} > "$log.quantize.log" 2>&1 \
        || { echo "quantize failed or cut: $p seed $s: $(tail -1 "$log.quantize.log")"; continue; }
      t1=$SECONDS
      timeout $((limit - SECONDS > 1 ? limit - SECONDS : 1)) "$bin" eval "$q" --dataset "$model/heldout.jsonl" \
        --reference "$model" --device "$device" --dtype f32 --json "$log.eval.json" ${EVAL_ARGS:-} > "$log.eval.log" 2>&1 \
        || { echo "eval failed or cut: $p seed $s: $(tail -1 "$log.eval.log")"; continue; }
      calib=$(grep -m1 "calibration: policy" "$log.quantize.log" | sed 's/^.*calibration: //; s/|/\//g')
      python3 - "$log.eval.json" "$p" "$s" $((t1 - t0)) $((SECONDS - t1)) "$calib" >> "$out/results.tsv" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
print("\t".join([sys.argv[2], sys.argv[3], repr(j["delta_ppl"]), repr(j["mean_kld"]), repr(100 * j["same_top_p"]),
                 sys.argv[4], sys.argv[5], sys.argv[6]]))
EOF
      echo "done $p seed $s: quantize $((t1 - t0)) s, eval $((SECONDS - t1)) s; $(tail -1 "$out/results.tsv" | cut -f3-5)"
      rm -rf "$q"
    done
  done
fi
# mean ± standard error of the mean over the finished seeds, per policy
awk -F'\t' 'NR > 1 {p = $1; if (!(p in n)) order[++k] = p; n[p]++; sd[p] = sd[p] " " $2
  for (c = 3; c <= 5; c++) { s[p, c] += $c; q[p, c] += $c * $c }; cal[p] = $8 }
  function ms(p, c,   m, v) { m = s[p, c] / n[p]; v = n[p] > 1 ? (q[p, c] - n[p] * m * m) / (n[p] - 1) : 0
    if (v < 0) v = 0; return sprintf("%.4g ± %.2g", m, sqrt(v / n[p])) }
  END { print "| policy | seeds | ΔPPL | mean KLD | same top-1 % | calibration (last seed) |"
        print "|---|---|---|---|---|---|"
        for (i = 1; i <= k; i++) { p = order[i]
          printf "| %s |%s | %s | %s | %s | %s |\n", p, sd[p], ms(p, 3), ms(p, 4), ms(p, 5), cal[p] } }' \
  "$out/results.tsv" > "$out/table.md"
cat "$out/table.md"
tar czf "$out/runs.tar.gz" -C "$out" runs && rm -rf "$runs"
