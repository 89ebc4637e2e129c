#!/usr/bin/env bash
# Regenerates every committed fixture with its generator in tools/, in dependency order, using the venv of
# tools/setup_venv.sh, then lists what changed (git status): a generator that no longer reproduces its committed
# fixture shows up there. Fixtures made from randomness use fixed seeds, so an unchanged generator with the pinned
# packages rewrites identical bytes.
#
#   tools/regenerate_fixtures.sh [VENV_DIR=venv]
# Not regenerated here: the shipped model (tools/train_tiny_model.py, hours of CPU) and the interop checkpoints
# made by the public auto-round (tools/interop_autoround_quantize.py, needs auto-round; see tests/data/interop).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${1:-$repo/venv}
py="$venv/bin/python"
[ -x "$py" ] || { echo "regenerate_fixtures: no venv at $venv (run tools/setup_venv.sh)" >&2; exit 2; }
cd "$repo"
for gen in make_broken_configs.py make_safetensors_fixtures.py make_broken_safetensors.py make_tokenizer_fixtures.py \
           make_qwen3_fixtures.py make_qwen2_fixtures.py make_flux_fixtures.py make_flux_pipeline_fixtures.py \
           make_text_encoder_fixtures.py make_block_grad_fixtures.py gptq_pack_reference.py \
           make_clip_t5_tokenizer_fixtures.py make_flux_pipeline_golden.py make_flux_text_to_image_golden.py \
           make_flux_block_grad_fixtures.py \
           make_fuzz_seeds.py; do
  echo "== tools/$gen"
  "$py" "tools/$gen"
done
echo "== tools/train_tiny_flux.py --phases fixture (models/tiny-flux's golden; training itself is not rerun)"
"$py" tools/train_tiny_flux.py --phases fixture
git status --short tests/data tests/fuzz/corpus
