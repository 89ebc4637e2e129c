#!/usr/bin/env bash
# Do the guarding tests fail when the defect they guard against is put back? (issue 11: "a test that fails on
# today's main where the finding describes a defect".) For each mutation below: apply it to the source in place,
# rebuild only the test (and the binary for CLI tests) in BUILD, run the named test, record whether it failed,
# then restore the file byte for byte (also when interrupted). Prints one line per mutation and exits non-zero if
# any mutation survived (its test still passed).
#
#   tools/mutation_check.sh BUILD [NAME...]       (default: every mutation; BUILD: an existing CMake build dir)
#
# Never run it while another build reads the same source tree: the mutated file is there for a minute or two.
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${1:?usage: tools/mutation_check.sh BUILD [NAME...]}" && pwd)
shift
jobs=${OMNI_BUILD_JOBS:-2}

# name | file | text to find (exactly once) | replacement | ninja targets | test program and gtest filter | finding
mutations=(
  "tuner-never-steps|src/pipelines/autoround/block_tuner.cpp|      be.sign_step(l.v, l.grad_v, lr_t);|      (void)lr_t;|omniround autoround_quality_test|autoround_quality_test *|issue 11 finding 1: a tuner that never updates V is plain RTN"
  "rope-theta-off-by-0.1%|src/models/hf_decoder/hf_decoder_config.cpp|    c.rope_theta = r.positive_number(rp.at(\"rope_theta\"), \"rope_parameters.rope_theta\");|    c.rope_theta = 1.001 * r.positive_number(rp.at(\"rope_theta\"), \"rope_parameters.rope_theta\");|causal_lm_golden_test|causal_lm_golden_test *|issue 11 finding 4: a small numeric error (RoPE theta misread by 0.1 %) must fail the golden logits"
  "generate-streams-nothing|src/pipelines/generate.cpp|  if (options.max_new_tokens == 0) return stats;|  return stats;|omniround cli_test|cli_test Cli.GenerateStreamsTextAndReportsSpeed|issue 11 finding 6: a generate test that passes with zero generated tokens"
  "export-real-zero|src/quant/export.cpp|    stored[static_cast<size_t>(i)] = static_cast<uint8_t>(z[i] - 1);|    stored[static_cast<size_t>(i)] = static_cast<uint8_t>(z[i]);|omniround rtn_interop_fixture_test|rtn_interop_fixture_test *|issue 11 finding 3: the writer checked against the public tool's bytes, not our own reader"
)

restore=""
cleanup() { if [ -n "$restore" ]; then cp "$restore.orig" "$restore" && touch "$restore"; rm -f "$restore.orig"; fi; }
trap cleanup EXIT INT TERM

survived=0
rebuilt=""
for m in "${mutations[@]}"; do
  IFS='|' read -r name file find replace targets test finding <<<"$m"
  if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx "$name"; then continue; fi
  path=$repo/$file
  rebuilt="$rebuilt $targets"
  cp "$path" "$path.orig"
  restore=$path
  if ! python3 - "$path" "$find" "$replace" <<'EOF'
import sys
path, find, replace = sys.argv[1:]
text = open(path).read()
if text.count(find) != 1:
    sys.exit(f"{path}: the text to mutate occurs {text.count(find)} times, not once: {find!r}")
open(path, "w").write(text.replace(find, replace))
EOF
  then
    echo "MUTATION $name: could not be applied (source changed?)"; survived=1; cleanup; restore=""; continue
  fi
  # shellcheck disable=SC2086
  if ! ninja -C "$build" -j "$jobs" $targets >"$build/mutation-$name.build.log" 2>&1; then
    echo "MUTATION $name: does not build (see $build/mutation-$name.build.log)"; survived=1
  else
    read -r program filter <<<"$test"
    if (cd "$repo" && "$build/$program" --gtest_filter="$filter" --gtest_brief=1 >"$build/mutation-$name.log" 2>&1); then
      echo "MUTATION $name SURVIVED: $program still passes ($finding)"; survived=1
    else
      echo "mutation $name killed: $program fails ($finding); first failure:"
      grep -m 3 -E "Failure|Expected|Which is|Value of" "$build/mutation-$name.log" | sed 's/^/    /' | cut -c1-200
    fi
  fi
  cleanup
  restore=""
done
# Rebuild what was built mutated, so that BUILD holds the real code again.
# shellcheck disable=SC2086
[ -z "$rebuilt" ] || ninja -C "$build" -j "$jobs" $rebuilt >/dev/null 2>&1 || true
exit $survived
