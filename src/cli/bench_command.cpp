// omniround bench decode MODEL_DIR: prefill and decode speed on random prompts (median of several runs), and on
// the CPU the decode roofline: bytes read per token against the read bandwidth measured in the same run.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "backends/cpu/read_bandwidth.h"
#include "cli/option_checks.h"
#include "cli/backend_options.h"
#include "cli/commands.h"
#include "core/thread_pool.h"
#include "models/registry.h"
#include "pipelines/decode_bench.h"

namespace omni::cli {
namespace {

struct BenchDecodeArgs {
  std::string model_dir;
  DecodeBenchOptions options;
  BackendArgs backend;
};

std::string runs_str(const std::vector<double>& v) {
  std::string s;
  char buf[32];
  for (double x : v) {
    std::snprintf(buf, sizeof buf, "%s%.1f", s.empty() ? "" : " ", x);
    s += buf;
  }
  return s;
}

int run_bench_decode(const BenchDecodeArgs& a) {
  const std::unique_ptr<Backend> backend = make_backend(a.backend);
  std::unique_ptr<CausalLM> model = open_causal_lm(a.model_dir, *backend);
  const LoadReport& report = model->load_report();
  std::printf("model: %s (%s, %s), on %s (%s), %d threads\n", a.model_dir.c_str(), model->info().architecture.c_str(),
              report.quant_format.empty() ? "16-bit weights" : report.quant_format.c_str(), backend->name().c_str(),
              report.layouts_summary().c_str(), num_threads());
  const DecodeBenchResult r = bench_decode(*model, a.options);
  const double prefill = DecodeBenchResult::median(r.prefill_tokens_per_second);
  const double decode = DecodeBenchResult::median(r.decode_tokens_per_second);
  std::printf("prefill: %lld tokens, %.1f tokens/s (median of %zu runs: %s)\n",
              static_cast<long long>(a.options.prompt_tokens), prefill, r.prefill_tokens_per_second.size(),
              runs_str(r.prefill_tokens_per_second).c_str());
  std::printf("decode:  %lld tokens, %.1f tokens/s (median of %zu runs: %s)\n",
              static_cast<long long>(a.options.decode_tokens), decode, r.decode_tokens_per_second.size(),
              runs_str(r.decode_tokens_per_second).c_str());
  const double bytes = static_cast<double>(r.weight_bytes_per_token + r.kv_bytes_per_token);
  std::printf("read per decode token: %.2f MB (%.2f MB weights, %.2f MB KV cache)\n", bytes / 1e6,
              static_cast<double>(r.weight_bytes_per_token) / 1e6, static_cast<double>(r.kv_bytes_per_token) / 1e6);
  if (backend->device().is_cpu()) {
    const double bw = measure_cpu_read_bandwidth();
    std::printf("read bandwidth (measured now, %d threads): %.1f GB/s -> decode roofline %.1f tokens/s; decode at %.0f%% of it\n",
                num_threads(), bw / 1e9, bw / bytes, 100.0 * decode / (bw / bytes));
  } else {
    std::printf("decode roofline: no bandwidth probe for %s in this build\n", backend->name().c_str());
  }
  return 0;
}

}  // namespace

std::function<int()> add_bench_command(CLI::App& app) {
  CLI::App* bench = app.add_subcommand(
      "bench", "measure speed (decode: prefill and decode tokens/s; flux: the FLUX transformer's forward time)");
  bench->require_subcommand(1);
  auto args = std::make_shared<BenchDecodeArgs>();
  CLI::App* sub = bench->add_subcommand("decode", "prefill and decode speed on random prompts, with the roofline");
  sub->add_option("model_dir", args->model_dir, "Hugging Face model directory")->required()->check(CLI::ExistingDirectory);
  sub->add_option("--prompt-tokens", args->options.prompt_tokens, "prefill length (default 64)")
      ->check(omni::cli::positive());
  sub->add_option("--tokens", args->options.decode_tokens, "decode steps timed (default 128)")->check(omni::cli::positive());
  sub->add_option("--repeat", args->options.repeats, "timed runs after one warm-up run (default 5)")
      ->check(omni::cli::in_range(1, 1000));
  sub->add_option("--seed", args->options.seed, "seed of the random prompts (default 0)");
  add_backend_options(sub, &args->backend, /*with_dtype=*/true);
  std::function<int()> flux = add_bench_flux_command(bench);
  CLI::App* flux_sub = bench->get_subcommand("flux");
  return [args, sub, flux, flux_sub]() -> int {
    if (flux_sub->parsed()) return flux();
    if (!sub->parsed()) return 2;
    return run_bench_decode(*args);
  };
}

}  // namespace omni::cli
