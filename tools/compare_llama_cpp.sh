#!/usr/bin/env bash
# omniround against llama.cpp on the CPU, side by side, from one run (issue 13, item 3).
#
#   tools/compare_llama_cpp.sh [--speed | --quality | --all] [--table FILE] [--threads N] [--runs N]
#                              [--work DIR] [--jobs N] [--build-only] [--fresh]
#
# What it does:
#   1. Downloads llama.cpp's public source as vendored in PyPI's llama-cpp-python source distribution (pinned
#      below; `pip download --no-binary :all:`), unpacks it and builds the CPU tools it needs (Release,
#      GGML_NATIVE=ON, i.e. -march=native) under .cache/llama.cpp/ (git-ignored), exactly as released: no source
#      file is changed. Nothing of llama.cpp is ever committed. The download, the unpacked tree and the build are
#      cached: a second run skips them. A tree left by an earlier version of this script (which modified
#      llama.cpp's sources) is recognised by its unpack stamp, removed with its build, and unpacked and built again.
#   --speed (default): a random-weight Qwen3-0.6B-shaped checkpoint (tools/make_random_qwen3.py: hidden 1024,
#      intermediate 3072, 28 layers, 16/8 heads x 128, tied, vocab 8192, BF16) is converted to GGUF F16
#      (tools/hf_to_gguf.py, written on llama.cpp's own gguf-py package), quantized to Q4_0 and Q4_K_M with
#      llama-quantize and measured with `llama-bench -t T -p 64 -n 128 -r RUNS`; ours runs the same checkpoint in
#      BF16 and as W4A16 (`omniround quantize --rtn`, group 128) with `omniround generate` on a 64-token prompt
#      and 128 new tokens, RUNS times (after one warm-up run). Medians of the RUNS runs on both sides.
#   --quality: on the shipped models/tiny-qwen3, llama.cpp's Q4_0 and Q4_K_M, each without and with an importance
#      matrix (llama-imatrix on models/tiny-qwen3/calibration.txt, its lines joined by single spaces), measured
#      with llama-perplexity --kl-divergence against its own BF16 GGUF at ctx 512; beside them our RTN and
#      AutoRound W4A16 measured with `omniround eval --reference models/tiny-qwen3`. Both sides read one and the
#      same file, WORK/quality/heldout.joined.txt: every line of models/tiny-qwen3/heldout.txt joined by one space,
#      as a single line with no newline. `omniround eval` reads a .txt as one sample per line, so this is one
#      sample with no separators in it, and llama-perplexity reads it as plain text: no special token on either
#      side, so the two tokenize it to the same token ids (checked against llama-tokenize and reported).
#   --all: both.
#
# Options: --table FILE also writes the tables (markdown) to FILE; --threads N (default 2) for every tool on both
# sides; --runs N (default 5) measured runs per format; --work DIR; --jobs N for the llama.cpp build (default: all
# cores); --build-only stops after building llama.cpp; --fresh redoes the cached checkpoint, GGUFs and quantized
# models. OMNI_AR_ARGS (environment) replaces our AutoRound settings in --quality (default: run_main.sh's).
#
# Outputs go to --work (default out/compare_llama_cpp/, git-ignored); the tables are printed on stdout and, with
# --table FILE, also written to FILE. Tool logs are kept under WORK/logs/. Converted and llama.cpp-quantized
# models are cached in WORK (delete it or pass --fresh to redo them); ours is re-quantized on every run, since
# that is the code under development.
#
# Needs: venv/ (tools/setup_venv.sh), build/omniround (scripts/run_main.sh builds it), cmake and a C++ compiler
# (scripts/install_deps.sh), and network access to PyPI for the first run.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION="0.3.36"   # pinned: vendors llama.cpp ggml-org/llama.cpp@0c1e57098 (its CHANGELOG.md)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "compare_llama_cpp: error: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

MODE=speed
THREADS=2
RUNS=5
TABLE_OUT=""
WORK="out/compare_llama_cpp"
CACHE="$ROOT/.cache/llama.cpp"
JOBS="$(nproc)"
BUILD_ONLY=0
FRESH=0
# AutoRound settings of our quality row: those of scripts/run_main.sh (32 x 128 tokens, batch 4). Override with
# OMNI_AR_ARGS="..." (e.g. "" for the AutoRound defaults, 128 x 2048, which take far longer on two cores).
OMNI_AR_ARGS="${OMNI_AR_ARGS---nsamples 32 --seqlen 128 --batch-size 4}"

while [ $# -gt 0 ]; do
  case "$1" in
    --speed) MODE=speed ;;
    --quality) MODE=quality ;;
    --all) MODE=all ;;
    --table|-o) [ $# -ge 2 ] || die "$1 needs a file name"; TABLE_OUT="$2"; shift ;;
    --threads) [ $# -ge 2 ] || die "$1 needs a number"; THREADS="$2"; shift ;;
    --runs) [ $# -ge 2 ] || die "$1 needs a number"; RUNS="$2"; shift ;;
    --work) [ $# -ge 2 ] || die "$1 needs a directory"; WORK="$2"; shift ;;
    --jobs) [ $# -ge 2 ] || die "$1 needs a number"; JOBS="$2"; shift ;;
    --build-only) BUILD_ONLY=1 ;;
    --fresh) FRESH=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  shift
done
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "--threads must be a positive integer, got '$THREADS'"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || die "--jobs must be a positive integer, got '$JOBS'"

PY="$ROOT/venv/bin/python"
PIP="$ROOT/venv/bin/pip"
OMNI="$ROOT/build/omniround"
[ -x "$PY" ] || die "no Python venv at venv/ (make it with: bash tools/setup_venv.sh)"
command -v cmake >/dev/null || die "cmake not found (install it with: bash scripts/install_deps.sh)"
command -v c++ >/dev/null || die "no C++ compiler (c++) found (install one with: bash scripts/install_deps.sh)"
if [ "$BUILD_ONLY" = 0 ]; then
  [ -x "$OMNI" ] || die "build/omniround not found: build it first (bash scripts/run_main.sh, or cmake -S . -B build)"
fi

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"
[ "$FRESH" = 1 ] && { log "--fresh: removing cached models under $WORK"; rm -rf "${WORK:?}/speed" "${WORK:?}/quality"; }
LOGS="$WORK/logs"
mkdir -p "$LOGS"

# Runs a command with its output in a log file; on failure shows the log's tail and stops.
run_logged() {
  local name="$1"; shift
  local logf="$LOGS/$name.log"
  if ! "$@" >"$logf" 2>&1; then
    echo "compare_llama_cpp: error: '$*' failed; last lines of $logf:" >&2
    tail -n 25 "$logf" >&2
    exit 1
  fi
}

# The same with the command's stdout in a file of its own (stderr in the log).
run_logged_stdout() {
  local name="$1" outf="$2"; shift 2
  local logf="$LOGS/$name.log"
  if ! "$@" >"$outf" 2>"$logf"; then
    echo "compare_llama_cpp: error: '$*' failed; last lines of $logf:" >&2
    tail -n 25 "$logf" >&2
    exit 1
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# 1. llama.cpp: fetch and build (cached)
# ---------------------------------------------------------------------------------------------------------------
V="$LLAMA_CPP_PYTHON_VERSION"
SRC="$CACHE/llama_cpp_python-$V"
LLAMA="$SRC/vendor/llama.cpp"
BUILD="$CACHE/build-$V"
BIN="$BUILD/bin"
TARGETS=(llama-quantize llama-bench llama-perplexity llama-imatrix llama-tokenize)

# The unpacked tree is reused only when its stamp says it was unpacked as released by this version of the script;
# any other tree (none, a half-unpacked one, or one an earlier version of this script had modified) is removed,
# with its build, and the sdist unpacked again. The build goes too because tar keeps the sdist's old file times,
# which an existing build would take for up to date.
UNPACK_STAMP="llama-cpp-python $V sdist, unpacked as released, no file changed"
fetch_llama_cpp() {
  if [ -f "$SRC/.unpacked" ] && [ "$(cat "$SRC/.unpacked")" = "$UNPACK_STAMP" ]; then return; fi
  if [ -e "$SRC" ] || [ -e "$BUILD" ]; then
    log "removing ${SRC#"$ROOT"/} and ${BUILD#"$ROOT"/} (not an unmodified tree of this script's): unpacking and" \
        "building llama.cpp again as released"
    rm -rf "$SRC" "$BUILD"
  fi
  local tarball="$CACHE/sdist/llama_cpp_python-$V.tar.gz"
  if [ ! -f "$tarball" ]; then
    log "downloading llama-cpp-python==$V (source distribution) from PyPI"
    mkdir -p "$CACHE/sdist"
    "$PIP" download --quiet --no-deps --no-binary :all: "llama-cpp-python==$V" -d "$CACHE/sdist" \
      || die "pip download of llama-cpp-python==$V failed (network to PyPI?)"
    [ -f "$tarball" ] || die "expected $tarball after pip download"
  fi
  rm -rf "$CACHE/unpack.tmp"
  mkdir -p "$CACHE/unpack.tmp"
  tar -xzf "$tarball" -C "$CACHE/unpack.tmp"
  [ -f "$CACHE/unpack.tmp/llama_cpp_python-$V/vendor/llama.cpp/CMakeLists.txt" ] \
    || die "the sdist has no vendor/llama.cpp/CMakeLists.txt"
  mv "$CACHE/unpack.tmp/llama_cpp_python-$V" "$SRC"
  rmdir "$CACHE/unpack.tmp"
  echo "$UNPACK_STAMP" >"$SRC/.unpacked"
}

# The llama.cpp commit the sdist vendors, from llama-cpp-python's CHANGELOG.md (the sdist has no .git).
llama_commit() {
  awk -v v="$V" '
    $0 ~ "^## \\[" v "\\]" { f = 1; next }
    /^## \[/ { f = 0 }
    f && match($0, /ggml-org\/llama\.cpp@[0-9a-f]+/) { print substr($0, RSTART + 19, RLENGTH - 19); exit }
  ' "$SRC/CHANGELOG.md" 2>/dev/null || true
}

build_llama_cpp() {
  local stamp="$BUILD/.built" commit
  commit="$(llama_commit)"
  local want="$V ${commit:-unknown} ${TARGETS[*]} native as-released"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    local t ok=1
    for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || ok=0; done
    if [ "$ok" = 1 ]; then log "llama.cpp build cached in ${BUILD#"$ROOT"/}"; return; fi
  fi
  local gen=()
  command -v ninja >/dev/null && gen=(-G Ninja)
  log "building llama.cpp ${commit:-?} (CPU, Release, GGML_NATIVE=ON) in ${BUILD#"$ROOT"/} with $JOBS jobs" \
      "(takes a while on few cores)"
  local t0=$SECONDS
  run_logged llama-cmake-configure cmake -S "$LLAMA" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_COMMIT="${commit:-unknown}" -DLLAMA_BUILD_NUMBER=0 \
    -DCMAKE_RUNTIME_OUTPUT_DIRECTORY="$BIN"
  run_logged llama-cmake-build cmake --build "$BUILD" --target "${TARGETS[@]}" -j "$JOBS"
  for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] || die "llama.cpp build did not produce $BIN/$t"; done
  echo "$want" >"$stamp"
  log "llama.cpp built in $((SECONDS - t0)) s"
}

fetch_llama_cpp
build_llama_cpp
LLAMA_COMMIT="$(llama_commit)"
LLAMA_DESC="llama.cpp ${LLAMA_COMMIT:-unknown commit} (vendored in llama-cpp-python $V, PyPI sdist)"
[ "$BUILD_ONLY" = 1 ] && { log "built: $LLAMA_DESC in ${BIN#"$ROOT"/}"; exit 0; }

# tools/hf_to_gguf.py runs on llama.cpp's own gguf-py package, from the source just unpacked (not from PyPI).
hf_to_gguf() { PYTHONPATH="$LLAMA/gguf-py${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$ROOT/tools/hf_to_gguf.py" "$@"; }

CPU_NAME="$(lscpu | sed -n 's/^Model name: *//p' | head -n1)"
CPU_FLAGS="$(grep -m1 '^flags' /proc/cpuinfo || true)"
CPU_ISA="$(for f in avx2 fma f16c avx512f avx512_vnni avx_vnni amx_tile; do
             if [[ " $CPU_FLAGS " == *" $f "* ]]; then printf '%s ' "$f"; fi; done)"
CPU_ISA="${CPU_ISA% }"
OMNI_REV="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null | grep -v '^?? ' || true)" ]; then
  OMNI_REV="$OMNI_REV + uncommitted changes"
fi
[ -x "$OMNI" ] && OMNI_REV="$OMNI_REV, build/omniround of $(date -u -r "$OMNI" '+%Y-%m-%d %H:%M UTC')"
DATE="$(date -u '+%Y-%m-%d %H:%M UTC')"
REPORT="$WORK/report.md"
: >"$REPORT"
emit() { printf '%s\n' "$*" | tee -a "$REPORT"; }

# ---------------------------------------------------------------------------------------------------------------
# 2. Speed: random-weight Qwen3-0.6B-shaped checkpoint
# ---------------------------------------------------------------------------------------------------------------
speed_part() {
  local S="$WORK/speed" t0 load0
  load0="$(cut -d' ' -f1-3 /proc/loadavg)"
  mkdir -p "$S"
  local CKPT="$S/random-qwen3-0.6b"
  local shape=(--hidden 1024 --intermediate 3072 --layers 28 --heads 16 --kv-heads 8 --head-dim 128)
  if [ ! -f "$CKPT/.done" ] || [ "$(cat "$CKPT/.done")" != "${shape[*]}" ]; then
    log "writing the random-weight checkpoint ${CKPT#"$ROOT"/}"
    t0=$SECONDS
    rm -rf "$CKPT"
    run_logged make-random-qwen3 "$PY" tools/make_random_qwen3.py "$CKPT" "${shape[@]}"
    echo "${shape[*]}" >"$CKPT/.done"
    log "  $((SECONDS - t0)) s"
  fi

  local F16="$S/random-f16.gguf" Q40="$S/random-q4_0.gguf" Q4KM="$S/random-q4_k_m.gguf"
  if [ ! -f "$F16" ] || [ "$F16" -ot "$CKPT/.done" ]; then
    log "converting to GGUF F16 (tools/hf_to_gguf.py)"
    t0=$SECONDS
    run_logged hf-to-gguf-random hf_to_gguf "$CKPT" "$F16.tmp" --outtype f16
    mv "$F16.tmp" "$F16"
    log "  $((SECONDS - t0)) s"
  fi
  local q out type
  for q in "Q4_0:$Q40" "Q4_K_M:$Q4KM"; do
    type="${q%%:*}"; out="${q#*:}"
    if [ ! -f "$out" ] || [ "$out" -ot "$F16" ] || [ "$out" -ot "$BUILD/.built" ]; then
      log "llama-quantize -> $type"
      t0=$SECONDS
      run_logged "llama-quantize-random-$type" "$BIN/llama-quantize" "$F16" "$out.tmp" "$type" "$THREADS"
      mv "$out.tmp" "$out"
      log "  $((SECONDS - t0)) s"
    fi
  done

  log "our W4A16 RTN g128: omniround quantize --rtn"
  t0=$SECONDS
  local W4="$S/ours-w4a16-rtn"
  rm -rf "$W4" "$W4.partial"
  run_logged omni-quantize-rtn "$OMNI" --threads "$THREADS" quantize "$CKPT" --rtn --group-size 128 -o "$W4" \
    --device cpu
  log "  $((SECONDS - t0)) s"

  # A 64-token prompt: "the" and 63 times " the" are 64 tokens of the shipped tokenizer (checked below from what
  # generate prints).
  local PROMPT
  PROMPT="the$(printf ' the%.0s' $(seq 63))"

  # ours: one warm-up run, then RUNS runs; the generate summary line goes to stderr.
  local name dir r line
  for name in bf16 w4a16; do
    if [ "$name" = bf16 ]; then dir="$CKPT"; else dir="$W4"; fi
    log "omniround generate ($name): 1 warm-up + $RUNS runs, $THREADS threads"
    t0=$SECONDS
    : >"$S/ours-$name.runs"
    for r in $(seq 0 "$RUNS"); do
      run_logged_stdout "omni-generate-$name-$r" "$S/ours-$name-$r.txt" \
        "$OMNI" --threads "$THREADS" generate "$dir" -p "$PROMPT" -n 128 --device cpu
      line="$(grep -oE 'prompt: [0-9]+ tokens, prefill .*' "$LOGS/omni-generate-$name-$r.log" | tail -n1 || true)"
      [ -n "$line" ] || die "no 'prompt: N tokens ...' line in $LOGS/omni-generate-$name-$r.log"
      [ "$r" = 0 ] || echo "$line" >>"$S/ours-$name.runs"
    done
    log "  $((SECONDS - t0)) s"
  done

  for q in "F16:$F16" "Q4_0:$Q40" "Q4_K_M:$Q4KM"; do
    type="${q%%:*}"; out="${q#*:}"
    log "llama-bench $type: -t $THREADS -p 64 -n 128 -r $RUNS"
    t0=$SECONDS
    run_logged_stdout "llama-bench-$type" "$S/llama-bench-$type.json" \
      "$BIN/llama-bench" -m "$out" -t "$THREADS" -p 64 -n 128 -r "$RUNS" -o json
    log "  $((SECONDS - t0)) s"
  done

  local table
  table="$("$PY" - "$S" "$CKPT" "$W4" "$F16" "$Q40" "$Q4KM" "$RUNS" <<'EOF'
import json, math, re, statistics, sys
from pathlib import Path
S, ckpt, w4, f16, q40, q4km, runs = sys.argv[1:8]
runs = int(runs)

def mb(p):
    p = Path(p)
    files = sorted(p.glob("*.safetensors")) if p.is_dir() else [p]
    return sum(f.stat().st_size for f in files) / 1e6

rx = re.compile(r"prompt: (\d+) tokens, prefill ([\d.]+) tokens/s \| generated: (\d+) tokens, decode ([\d.]+) "
                r"tokens/s(?: \| stopped: (.*))?")
notes, rows = [], []
for name, label, d in (("bf16", "omniround BF16", ckpt), ("w4a16", "omniround W4A16 (RTN, g128)", w4)):
    pre, dec = [], []
    for line in Path(S, f"ours-{name}.runs").read_text().splitlines():
        m = rx.search(line)
        if not m:
            sys.exit(f"compare_llama_cpp: error: cannot parse generate's summary line: {line!r}")
        n_prompt, n_gen = int(m.group(1)), int(m.group(3))
        if n_prompt != 64:
            sys.exit(f"compare_llama_cpp: error: the prompt is {n_prompt} tokens, not 64")
        if n_gen != 128:
            notes.append(f"{label}: generated {n_gen} tokens, not 128 (stopped: {m.group(5)})")
        pre.append(float(m.group(2))); dec.append(float(m.group(4)))
    rows.append((label, mb(d), statistics.median(pre), statistics.median(dec), (pre, dec)))

for label, path, typ in (("llama.cpp F16", f16, "F16"), ("llama.cpp Q4_0", q40, "Q4_0"),
                         ("llama.cpp Q4_K_M", q4km, "Q4_K_M")):
    res = json.loads(Path(S, f"llama-bench-{typ}.json").read_text())
    pp = [r for r in res if r["n_prompt"] == 64 and r["n_gen"] == 0]
    tg = [r for r in res if r["n_prompt"] == 0 and r["n_gen"] == 128]
    if len(pp) != 1 or len(tg) != 1:
        sys.exit(f"compare_llama_cpp: error: unexpected llama-bench results for {typ}")
    rows.append((label, mb(path), statistics.median(pp[0]["samples_ts"]), statistics.median(tg[0]["samples_ts"]),
                 (pp[0]["samples_ts"], tg[0]["samples_ts"])))

f = open(Path(ckpt, "model.safetensors"), "rb")
hdr = json.loads(f.read(int.from_bytes(f.read(8), "little")))
n_params = sum(math.prod(v["shape"]) for k, v in hdr.items() if k != "__metadata__")
print(f"Checkpoint: random weights in the Qwen3-0.6B shape (hidden 1024, intermediate 3072, 28 layers, 16/8 heads "
      f"x 128, tied embeddings, vocab 8192), {n_params / 1e6:.1f}M parameters, BF16 (tools/make_random_qwen3.py).")
print()
print("| format | file MB | prefill, 64-token prompt, tok/s | decode, 128 tokens, tok/s |")
print("|---|---|---|---|")
for label, size, pre, dec, n in rows:
    print(f"| {label} | {size:.0f} | {pre:.1f} | {dec:.1f} |")
r = {row[0]: row for row in rows}
ob, ow = r["omniround BF16"], r["omniround W4A16 (RTN, g128)"]
lf, lq = r["llama.cpp F16"], r["llama.cpp Q4_0"]
print()
print(f"Ours / llama.cpp: W4A16 vs Q4_0 decode {ow[3] / lq[3]:.2f}x, prefill {ow[2] / lq[2]:.2f}x; "
      f"BF16 vs F16 decode {ob[3] / lf[3]:.2f}x, prefill {ob[2] / lf[2]:.2f}x.")
print()
print("Spread over the runs, min-max (prefill; decode): " + "; ".join(
    f"{label} {min(pre):.1f}-{max(pre):.1f}; {min(dec):.1f}-{max(dec):.1f}" for label, _, _, _, (pre, dec) in rows) + ".")
for n in notes:
    print(f"\nNote: {n}")
EOF
)" || exit 1

  emit ""
  emit "### CPU speed: omniround vs llama.cpp (development run)"
  emit ""
  emit "Development run on a noisy shared VM (other jobs may have shared the cores), $DATE; load average" \
       "(1/5/15 min) $load0 at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  emit "CPU: $CPU_NAME ($(nproc) cores visible; ${CPU_ISA:-no AVX2}), $THREADS threads on both sides."
  emit "omniround $OMNI_REV: \`generate -p <64 tokens> -n 128 --device cpu\` (greedy), median of $RUNS runs after" \
       "1 warm-up (file MB: the safetensors files);"
  emit "$LLAMA_DESC, CPU build, GGML_NATIVE=ON: \`llama-bench -t $THREADS -p 64 -n 128 -r $RUNS\`, median of the" \
       "$RUNS repetitions (llama-bench's tg128 decodes from an empty context, ours after the 64-token prompt)."
  emit ""
  emit "$table"
}

# ---------------------------------------------------------------------------------------------------------------
# 3. Quality: the shipped tiny model
# ---------------------------------------------------------------------------------------------------------------
quality_part() {
  local Q="$WORK/quality" t0
  local TINY="$ROOT/models/tiny-qwen3"
  local HELD="$TINY/heldout.txt" CALIB="$TINY/calibration.txt"
  if [ ! -f "$HELD" ] || [ ! -f "$CALIB" ]; then die "models/tiny-qwen3/heldout.txt or calibration.txt missing"; fi
  mkdir -p "$Q"

  # One text that both sides read the same way, with no special token in it: every line of heldout.txt (and, for
  # llama-imatrix, of calibration.txt) joined by one space, written as a single line with no newline at all.
  # omniround eval reads a .txt as one sample per line, so the held-out file is one sample, and a single sample
  # gets no separator; llama-perplexity and llama-tokenize read the file as plain text (no --parse-special). Blank
  # lines are left out and a trailing '\r' dropped, as omniround reads lines. A file is rewritten only when its
  # text changes, so that what is made from it stays cached. Refused: text with "<|" (which our tokenizer would
  # read as a special token, llama.cpp without --parse-special not) or a backslash (llama.cpp's tools process
  # escapes such as "\n" in their input text).
  local HELD_TXT="$Q/heldout.joined.txt" CALIB_TXT="$Q/calibration.joined.txt"
  "$PY" - "$HELD" "$HELD_TXT" "$CALIB" "$CALIB_TXT" <<'EOF'
import os, sys
for src, dst in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):
    lines = [l[:-1] if l.endswith("\r") else l for l in open(src, encoding="utf-8", newline="").read().split("\n")]
    samples = [l for l in lines if l.strip(" \t\r\n\f\v")]
    for bad, why in (("<|", "our tokenizer would read it as a special token, llama.cpp as text"),
                     ("\\", "llama.cpp's tools would process it as an escape")):
        if any(bad in l for l in samples):
            sys.exit(f"compare_llama_cpp: error: {src} contains '{bad}': {why}")
    text = " ".join(samples)
    try:
        old = open(dst, encoding="utf-8", newline="").read()
    except FileNotFoundError:
        old = None
    if old != text:
        open(dst + ".tmp", "w", encoding="utf-8", newline="").write(text)
        os.replace(dst + ".tmp", dst)
EOF

  local BF="$Q/tiny-bf16.gguf" F16="$Q/tiny-f16.gguf"
  if [ ! -f "$BF" ] || [ "$BF" -ot "$TINY/model.safetensors" ] || [ ! -f "$F16" ]; then
    log "converting models/tiny-qwen3 to GGUF BF16 and F16 (tools/hf_to_gguf.py)"
    run_logged hf-to-gguf-tiny-bf16 hf_to_gguf "$TINY" "$BF.tmp" --outtype bf16
    mv "$BF.tmp" "$BF"
    run_logged hf-to-gguf-tiny-f16 hf_to_gguf "$TINY" "$F16.tmp" --outtype f16
    mv "$F16.tmp" "$F16"
  fi

  local IMAT="$Q/imatrix-calibration.gguf"
  if [ ! -f "$IMAT" ] || [ "$IMAT" -ot "$BF" ] || [ "$IMAT" -ot "$BUILD/.built" ] || [ "$IMAT" -ot "$CALIB_TXT" ]
  then
    log "llama-imatrix over models/tiny-qwen3/calibration.txt (lines joined by spaces, ctx 512)"
    t0=$SECONDS
    run_logged llama-imatrix "$BIN/llama-imatrix" -m "$BF" -f "$CALIB_TXT" -c 512 -b 512 \
      -t "$THREADS" --output-format gguf -o "$IMAT.tmp.gguf"
    mv "$IMAT.tmp.gguf" "$IMAT"
    log "  $((SECONDS - t0)) s"
  fi
  local type tag out
  for type in Q4_0 Q4_K_M; do
    for tag in plain imatrix; do
      out="$Q/tiny-$type-$tag.gguf"
      if [ ! -f "$out" ] || [ "$out" -ot "$IMAT" ]; then
        log "llama-quantize -> $type ($tag)"
        if [ "$tag" = imatrix ]; then
          run_logged "llama-quantize-tiny-$type-$tag" "$BIN/llama-quantize" --imatrix "$IMAT" "$BF" "$out.tmp" \
            "$type" "$THREADS"
        else
          run_logged "llama-quantize-tiny-$type-$tag" "$BIN/llama-quantize" "$BF" "$out.tmp" "$type" "$THREADS"
        fi
        mv "$out.tmp" "$out"
      fi
    done
  done

  # --no-parse-special: tokenized as llama-perplexity tokenizes it (llama-tokenize alone parses special tokens by
  # default; the text has none, so this changes nothing but makes it explicit).
  log "llama-tokenize of the held-out text (for the token-by-token check)"
  run_logged_stdout llama-tokenize "$Q/heldout.llama-ids" "$BIN/llama-tokenize" -m "$BF" -f "$HELD_TXT" --ids \
    --no-parse-special --log-disable

  local BASE="$Q/base-bf16.kld" m
  log "llama-perplexity: BF16 base, then --kl-divergence of F16, Q4_0, Q4_K_M (ctx 512)"
  t0=$SECONDS
  run_logged llama-perplexity-base "$BIN/llama-perplexity" -m "$BF" -f "$HELD_TXT" -c 512 -b 512 \
    -t "$THREADS" --kl-divergence-base "$BASE"
  for m in F16 Q4_0-plain Q4_0-imatrix Q4_K_M-plain Q4_K_M-imatrix; do
    if [ "$m" = F16 ]; then out="$F16"; else out="$Q/tiny-$m.gguf"; fi
    run_logged "llama-perplexity-$m" "$BIN/llama-perplexity" -m "$out" -c 512 -b 512 -t "$THREADS" \
      --kl-divergence-base "$BASE" --kl-divergence
  done
  log "  $((SECONDS - t0)) s"

  log "omniround quantize: RTN, and AutoRound ($OMNI_AR_ARGS --dataset models/tiny-qwen3/calibration.txt)"
  t0=$SECONDS
  rm -rf "$Q/ours-rtn" "$Q/ours-autoround" "$Q/ours-rtn.partial" "$Q/ours-autoround.partial"
  run_logged omni-quantize-tiny-rtn "$OMNI" --threads "$THREADS" quantize "$TINY" --rtn -o "$Q/ours-rtn" --device cpu
  # shellcheck disable=SC2086  # OMNI_AR_ARGS is a list of options
  run_logged omni-quantize-tiny-autoround "$OMNI" --threads "$THREADS" quantize "$TINY" -o "$Q/ours-autoround" \
    $OMNI_AR_ARGS --dataset "$CALIB" --device cpu
  log "  $((SECONDS - t0)) s"
  log "omniround eval of both against models/tiny-qwen3 (ctx 512)"
  t0=$SECONDS
  for m in rtn autoround; do
    rm -f "$Q/ours-$m.json"
    run_logged "omni-eval-$m" "$OMNI" --threads "$THREADS" eval "$Q/ours-$m" --dataset "$HELD_TXT" \
      --reference "$TINY" --ctx 512 --json "$Q/ours-$m.json" --device cpu
  done
  log "  $((SECONDS - t0)) s"

  local table
  table="$(PYTHONPATH="$LLAMA/gguf-py" "$PY" - "$Q" "$TINY" "$LOGS" "$HELD_TXT" "$HELD" <<'EOF'
import json, math, re, sys
from pathlib import Path
from tokenizers import Tokenizer
Q, tiny, logs, held, held_src = map(Path, sys.argv[1:6])

# --- tokenization: llama.cpp's ids of the joined held-out text against the Hugging Face tokenizer of tokenizer.json
# (which omniround's tokenizer reproduces) on the same text, without special tokens, and omniround eval's count
tok = Tokenizer.from_file(str(tiny / "tokenizer.json"))
text = open(held, encoding="utf-8", newline="").read()
n_lines = sum(1 for l in open(held_src, encoding="utf-8", newline="").read().split("\n") if l.strip(" \t\r\n\f\v"))
hf_ids = tok.encode(text, add_special_tokens=False).ids
m = re.search(r"^\[([\d, ]*)\]\s*$", (Q / "heldout.llama-ids").read_text(), re.M)
if not m:
    sys.exit("compare_llama_cpp: error: no id list in llama-tokenize's output")
ll_ids = [int(x) for x in m.group(1).split(",") if x.strip()]
ours = re.search(r"dataset: .*?, (\d+) samples?, (\d+) tokens", (logs / "omni-eval-rtn.log").read_text())
ours_samples, ours_n = (int(ours.group(1)), int(ours.group(2))) if ours else (None, None)
diff = next((i for i, (a, b) in enumerate(zip(hf_ids, ll_ids)) if a != b), None)
if diff is None and len(hf_ids) != len(ll_ids):
    diff = min(len(hf_ids), len(ll_ids))

# --- bits per weight: tensor bytes x 8 / weights, over all tensors (llama.cpp's "BPW") and over the blocks' linear
# layers only; and the storage of the tied embedding / LM head
from gguf import GGUFReader
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GG_LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")

def st_tensors(d):
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        with open(f, "rb") as fh:
            n = int.from_bytes(fh.read(8), "little")
            out.update({k: v for k, v in json.loads(fh.read(n)).items() if k != "__metadata__"})
    return out

def is_linear(name):
    parts = name.split(".")
    return name.startswith("model.layers.") and len(parts) >= 6 and parts[4] in LINEARS

ref = st_tensors(tiny)
n_all = sum(math.prod(v["shape"]) for v in ref.values())
n_lin = sum(math.prod(v["shape"]) for k, v in ref.items() if is_linear(k))

def st_bits(d):
    t = st_tensors(d)
    nbytes = lambda v: v["data_offsets"][1] - v["data_offsets"][0]
    return (sum(nbytes(v) for v in t.values()) * 8 / n_all,
            sum(nbytes(v) for k, v in t.items() if is_linear(k)) * 8 / n_lin,
            t["model.embed_tokens.weight"]["dtype"])

def gguf_bits(path):
    ts = GGUFReader(str(path)).tensors
    lin = [x for x in ts if x.name.split(".")[0] == "blk" and x.name.split(".")[2] in GG_LINEARS]
    emb = {x.name: x.tensor_type.name for x in ts if x.name in ("token_embd.weight", "output.weight")}
    head = emb["token_embd.weight"] + ("" if "output.weight" not in emb else f" / {emb['output.weight']}")
    return (sum(int(x.n_bytes) for x in ts) * 8 / sum(int(x.n_elements) for x in ts),
            sum(int(x.n_bytes) for x in lin) * 8 / sum(int(x.n_elements) for x in lin), head)

def grab(log, key):
    m = re.search(re.escape(key) + r"\s*:\s*(-?[\d.]+)\s*±\s*([\d.]+)", log)
    return (float(m.group(1)), float(m.group(2))) if m else (float("nan"), float("nan"))

def pm(v, d):
    return f"{v[0]:.{d}f} ± {v[1]:.{d}f}"

rows = []
for name, label in (("F16", "llama.cpp F16 (vs its BF16 GGUF)"),
                    ("Q4_0-plain", "llama.cpp Q4_0"), ("Q4_0-imatrix", "llama.cpp Q4_0 + imatrix"),
                    ("Q4_K_M-plain", "llama.cpp Q4_K_M"), ("Q4_K_M-imatrix", "llama.cpp Q4_K_M + imatrix")):
    log = (logs / f"llama-perplexity-{name}.log").read_text()
    top = re.search(r"Same top p:\s*([\d.]+)\s*±\s*([\d.]+)", log)
    rows.append((label, gguf_bits(Q / ("tiny-f16.gguf" if name == "F16" else f"tiny-{name}.gguf")),
                 grab(log, "Mean PPL(Q)-PPL(base)"), grab(log, "Mean    KLD"),
                 (float(top.group(1)), float(top.group(2))) if top else None))
base_ppl = grab((logs / "llama-perplexity-Q4_0-plain.log").read_text(), "Mean PPL(base)")
chunks = re.search(r"computing over (\d+) chunks, n_ctx=(\d+)", (logs / "llama-perplexity-Q4_0-plain.log").read_text())

js = {}
for m, label in (("rtn", "omniround W4A16 RTN g128"), ("autoround", "omniround W4A16 AutoRound g128")):
    j = js[m] = json.loads((Q / f"ours-{m}.json").read_text())
    top = (j["same_top_p"], j["same_top_p_stderr"])
    if top[0] <= 1.0:
        top = (100 * top[0], 100 * top[1])
    rows.append((label, st_bits(Q / f"ours-{m}"), (j["delta_ppl"], j["delta_ppl_stderr"]),
                 (j["mean_kld"], j["mean_kld_stderr"]), top))

print("| scheme | bits/weight, all | bits/weight, linear layers | embedding (tied head) | ΔPPL | KLD | same top-1 % |")
print("|---|---|---|---|---|---|---|")
for label, (b_all, b_lin, emb), dppl, kld, top in rows:
    print(f"| {label} | {b_all:.2f} | {b_lin:.2f} | {emb} | {pm(dppl, 4)} | {pm(kld, 6)} | "
          f"{pm(top, 2) if top else '–'} |")
print()
j = js["rtn"]
if chunks:
    n_chunk, ctx = int(chunks.group(1)), int(chunks.group(2))
    scored = f"{n_chunk * (ctx - 1 - ctx // 2)} scored tokens ({n_chunk} windows x {ctx - 1 - ctx // 2}, the second half of each)"
else:
    scored = "the second half of each window"
print(f"16-bit PPL: llama.cpp BF16 GGUF {pm(base_ppl, 4)} over {scored}; omniround BF16 "
      f"{pm((j['reference_ppl'], j['reference_ppl_stderr']), 4)} over {j['tokens']} predicted tokens "
      f"({j['windows']} windows x {j['ctx'] - 1}). The two sides score different positions of the same windows; each "
      f"ΔPPL and KLD is against its own 16-bit model.")
print()
same = "identical, token for token" if diff is None else f"DIFFERENT from token {diff} on"
count = ("the same count" if ours_n == len(ll_ids) == len(hf_ids) else "COUNTS DIFFER")
print(f"Tokens: the held-out text ({n_lines} lines joined by spaces, one line; {len(text)} characters) is "
      f"{len(ll_ids)} tokens for llama.cpp (llama-tokenize --no-parse-special, GGUF vocab), {len(hf_ids)} for "
      f"tokenizer.json (Hugging Face tokenizers, no special tokens) and {ours_n} for omniround eval "
      f"({ours_samples} sample{'' if ours_samples == 1 else 's'}): {count}; ids of llama.cpp vs tokenizer.json: "
      f"{same}.")
EOF
)" || exit 1

  emit ""
  emit "### Quantization quality: omniround vs llama.cpp on models/tiny-qwen3 (development run)"
  emit ""
  emit "Development run, $DATE, CPU: $CPU_NAME, $THREADS threads. Held-out text: every line of" \
       "models/tiny-qwen3/heldout.txt joined by one space into a single line (no newline, no <|endoftext|>), one" \
       "file read by both sides: \`omniround eval\` takes it as one sample (one per line), so no separator token" \
       "is inserted, and llama-perplexity as plain text, so both tokenize it to the same ids without any special" \
       "token (checked below); ctx 512, non-overlapping windows."
  emit "$LLAMA_DESC, built as released: each quantization of the BF16 GGUF (tools/hf_to_gguf.py) against that" \
       "BF16 GGUF, \`llama-perplexity -c 512 --kl-divergence-base / --kl-divergence\`, which scores the second" \
       "half of each window; imatrix: \`llama-imatrix -c 512\` over all of models/tiny-qwen3/calibration.txt," \
       "its lines joined by spaces likewise."
  emit "omniround $OMNI_REV: \`eval --reference models/tiny-qwen3 --ctx 512\` (every token but each window's first);" \
       "RTN \`quantize --rtn\`; AutoRound \`quantize $OMNI_AR_ARGS --dataset models/tiny-qwen3/calibration.txt\`."
  emit "bits/weight: tensor bytes x 8 / weights, over all tensors (as llama.cpp's BPW) and over the blocks' linear" \
       "layers; the tied 8192 x 256 embedding (25 % of the weights) is not quantized by ours; llama-quantize quantizes it (column 4)."
  emit ""
  emit "$table"
}

T_START=$SECONDS
case "$MODE" in
  speed) speed_part ;;
  quality) quality_part ;;
  all) speed_part; quality_part ;;
esac
log "done in $((SECONDS - T_START)) s; report: ${REPORT#"$ROOT"/}"
if [ -n "$TABLE_OUT" ]; then
  mkdir -p "$(dirname "$TABLE_OUT")"
  cp "$REPORT" "$TABLE_OUT"
  log "tables written to $TABLE_OUT"
fi
