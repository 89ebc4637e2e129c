// omniround bench flux: the FLUX transformer at FLUX.1-dev's shapes with random weights (no checkpoint needed), or
// at a checkpoint's config: weight memory, seconds per forward, TFLOP/s, and with --cfg-compare batched against
// sequential CFG. One weight format per run, so that the device's peak memory is that format's alone.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "cli/backend_options.h"
#include "cli/commands.h"
#include "cli/option_checks.h"
#include "core/error.h"
#include "models/flux/flux_config.h"
#include "pipelines/diffusion/flux_bench.h"

namespace omni::cli {
namespace {

struct BenchFluxArgs {
  std::string config_dir, weights = "w4a16", size = "1024x1024";
  FluxBenchOptions options;
  BackendArgs backend;
};

std::pair<int64_t, int64_t> parse_wxh(const std::string& s) {
  int w = 0, h = 0;
  char x = 0, extra = 0;
  OMNI_CHECK(std::sscanf(s.c_str(), "%d%c%d%c", &w, &x, &h, &extra) == 3 && (x == 'x' || x == 'X') && w > 0 && h > 0,
             "--size ", s, ": expected WIDTHxHEIGHT in pixels, e.g. 1024x1024");
  return {w, h};
}

int run_bench_flux(BenchFluxArgs& a) {
  OMNI_CHECK(a.weights == "bf16" || a.weights == "w4a16", "--weights ", a.weights, ": expected bf16 or w4a16");
  FluxBenchOptions& o = a.options;
  std::tie(o.width, o.height) = parse_wxh(a.size);
  if (!a.config_dir.empty()) o.spec = read_flux_transformer_config(a.config_dir);
  const std::unique_ptr<Backend> backend = make_backend(a.backend);
  const FluxBenchRun r = bench_flux_transformer(*backend, o, a.weights == "w4a16");
  const double flops = flux_forward_flops(o), t = median_of(r.forward_seconds);
  std::printf("FLUX transformer (%s), random %s weights, on %s: %lld double + %lld single blocks, D %lld\n",
              a.config_dir.empty() ? "FLUX.1-dev shapes" : a.config_dir.c_str(), a.weights.c_str(),
              backend->name().c_str(), static_cast<long long>(o.spec.num_layers),
              static_cast<long long>(o.spec.num_single_layers), static_cast<long long>(o.spec.inner_dim()));
  std::printf("linears: %s, %.2f GB of weights (load %.1f s)\n", r.layouts.c_str(),
              static_cast<double>(r.linear_weight_bytes) / 1e9, r.load_seconds);
  std::printf("%lldx%lld: %lld image + %lld text tokens, %.1f TFLOP per forward\n", static_cast<long long>(o.width),
              static_cast<long long>(o.height), static_cast<long long>(flux_image_tokens(o)),
              static_cast<long long>(o.text_tokens), flops / 1e12);
  std::printf("forward (batch 1): %.1f ms median of %zu (%.1f TFLOP/s); %lld steps: %.2f s\n", 1e3 * t,
              r.forward_seconds.size(), flops / t / 1e12, 28LL, 28 * t);
  if (!r.batch2_forward_seconds.empty()) {
    const double t2 = median_of(r.batch2_forward_seconds);
    std::printf("CFG per step: batched (one forward of batch 2) %.1f ms, sequential (two of batch 1) %.1f ms: "
                "batched takes %.2fx the sequential time\n", 1e3 * t2, 2e3 * t, t2 / (2 * t));
  }
  if (!r.vae_decode_seconds.empty())
    std::printf("VAE decode (FLUX's AutoencoderKL, random weights): %.1f ms median of %zu\n",
                1e3 * median_of(r.vae_decode_seconds), r.vae_decode_seconds.size());
  if (r.device_peak_bytes > 0)
    std::printf("device memory at its peak: %.2f GB\n", static_cast<double>(r.device_peak_bytes) / 1e9);
  return 0;
}

}  // namespace

std::function<int()> add_bench_flux_command(CLI::App* bench) {
  auto a = std::make_shared<BenchFluxArgs>();
  CLI::App* sub = bench->add_subcommand("flux", "FLUX transformer forward time with random weights (FLUX.1-dev shapes)");
  sub->add_option("--config", a->config_dir, "a transformer/ folder whose config.json gives the shapes (default FLUX.1-dev)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--weights", a->weights, "bf16 or w4a16 (the blocks' Linears 4-bit, group 128; default)");
  sub->add_option("--size", a->size, "image WIDTHxHEIGHT in pixels (default 1024x1024)");
  sub->add_option("--text-tokens", a->options.text_tokens, "T5 sequence length (default 512)");
  sub->add_option("--repeat", a->options.repeats, "timed forwards after one warm-up (default 3)")->check(in_range(1, 1000));
  sub->add_flag("--cfg-compare", a->options.cfg_compare, "also time one forward of batch 2 (batched CFG)");
  sub->add_flag("--vae", a->options.vae, "also time the VAE decode of one image at --size (FLUX's VAE, random weights)");
  sub->add_option("--seed", a->options.seed, "seed of the random weights and inputs (default 0)");
  add_backend_options(sub, &a->backend, /*with_dtype=*/true);
  return [a] { return run_bench_flux(*a); };
}

}  // namespace omni::cli
