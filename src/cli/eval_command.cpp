// omniround eval MODEL_DIR --dataset FILE [--reference BF16_DIR]: perplexity on a text dataset and, against a
// reference model, ΔPPL, mean KLD and top-1 agreement, printed as a markdown table in llama.cpp's scoreboard
// columns (and optionally written as JSON for scripts).
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "core/thread_pool.h"
#include "io/file_util.h"
#include "io/tokenizers/tokenizer.h"
#include "cli/backend_options.h"
#include "models/registry.h"
#include "pipelines/eval.h"
#include "pipelines/text_dataset.h"

namespace omni::cli {
namespace {

struct EvalArgs {
  std::string model_dir, dataset, reference_dir, json_path;
  int64_t ctx = 512;
  int64_t max_tokens = 0;
  int64_t max_windows = 0;
  BackendArgs backend;
};

std::string describe(const CausalLM& m) {
  const LoadReport& r = m.load_report();
  return r.quant_format.empty() ? std::string("16-bit weights") : r.quant_format;
}

// "38.4551 ± 0.2910" with the precision a scoreboard shows.
std::string pm(double value, double err, int decimals) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%.*f ± %.*f", decimals, value, decimals, err);
  return buf;
}

void print_table(const EvalArgs& a, const EvalResult& r) {
  std::printf("\n| model | PPL | ΔPPL | mean KLD | same top p %% | tokens |\n|---|---|---|---|---|---|\n");
  if (r.has_reference)
    std::printf("| %s (reference) | %s | 0 | 0 | 100 | %lld |\n", a.reference_dir.c_str(),
                pm(r.ref_ppl, r.ref_ppl_stderr, 4).c_str(), static_cast<long long>(r.tokens));
  if (!r.has_reference) {
    std::printf("| %s | %s | — | — | — | %lld |\n", a.model_dir.c_str(), pm(r.ppl, r.ppl_stderr, 4).c_str(),
                static_cast<long long>(r.tokens));
    return;
  }
  std::printf("| %s | %s | %s | %s | %s | %lld |\n", a.model_dir.c_str(), pm(r.ppl, r.ppl_stderr, 4).c_str(),
              pm(r.delta_ppl, r.delta_ppl_stderr, 4).c_str(), pm(r.mean_kld, r.mean_kld_stderr, 6).c_str(),
              pm(100 * r.same_top, 100 * r.same_top_stderr, 2).c_str(), static_cast<long long>(r.tokens));
  std::printf("\nKLD: median %.6f, 99%% %.6f, 99.9%% %.6f, max %.6f\n", r.kld_median, r.kld_p99, r.kld_p999,
              r.kld_max);
}

void write_json(const EvalArgs& a, const EvalResult& r) {
  nlohmann::ordered_json j;
  j["model"] = a.model_dir;
  j["dataset"] = a.dataset;
  j["ctx"] = r.ctx;
  j["windows"] = r.windows;
  j["tokens"] = r.tokens;
  j["threads"] = num_threads();
  j["seconds"] = r.seconds;
  j["ppl"] = r.ppl;
  j["ppl_stderr"] = r.ppl_stderr;
  j["mean_nll"] = r.mean_nll;
  if (r.has_reference) {
    j["reference"] = a.reference_dir;
    j["reference_ppl"] = r.ref_ppl;
    j["reference_ppl_stderr"] = r.ref_ppl_stderr;
    j["delta_ppl"] = r.delta_ppl;
    j["delta_ppl_stderr"] = r.delta_ppl_stderr;
    j["mean_kld"] = r.mean_kld;
    j["mean_kld_stderr"] = r.mean_kld_stderr;
    j["kld_median"] = r.kld_median;
    j["kld_p99"] = r.kld_p99;
    j["kld_p999"] = r.kld_p999;
    j["kld_max"] = r.kld_max;
    j["same_top_p"] = r.same_top;
    j["same_top_p_stderr"] = r.same_top_stderr;
  }
  write_file_atomic(a.json_path, j.dump(2) + "\n");
}

int run_eval(const EvalArgs& a) {
  if (!a.json_path.empty()) check_output_file(a.json_path);  // before the evaluation, not after it
  const std::vector<std::string> samples = read_text_dataset(a.dataset);
  const std::unique_ptr<Backend> backend = make_backend(a.backend);
  std::unique_ptr<CausalLM> model = open_causal_lm(a.model_dir, *backend);
  std::unique_ptr<CausalLM> reference;
  if (!a.reference_dir.empty()) reference = open_causal_lm(a.reference_dir, *backend);
  // Both models read the same token stream, made with the evaluated model's tokenizer.
  const Tokenizer tokenizer = Tokenizer::from_dir(a.model_dir);
  const std::vector<int32_t> stream = tokenize_eval_stream(tokenizer, samples);

  std::cerr << "model: " << a.model_dir << " (" << describe(*model) << ")";
  if (reference) std::cerr << " | reference: " << a.reference_dir << " (" << describe(*reference) << ")";
  std::cerr << "\ndataset: " << a.dataset << ", " << samples.size() << " samples, " << stream.size()
            << " tokens; windows of " << a.ctx << " tokens, on " << backend->name() << ", " << num_threads()
            << " threads\n";
  if (a.ctx > model->info().max_positions)
    std::cerr << "warning: --ctx " << a.ctx << " exceeds the model's max_position_embeddings "
              << model->info().max_positions << "\n";

  EvalOptions opt;
  opt.ctx = a.ctx;
  opt.max_tokens = a.max_tokens;
  opt.max_windows = a.max_windows;
  const bool tty = isatty(STDERR_FILENO) != 0;
  int64_t last_decile = -1;
  const EvalResult r = evaluate_tokens(*model, reference.get(), stream, opt,
                                       [&](int64_t done, int64_t total, const EvalResult& s) {
    // On a terminal one line updates in place; in a log, about ten lines in all.
    const int64_t decile = done * 10 / total;
    if (!tty && decile == last_decile && done != total) return;
    last_decile = decile;
    std::fprintf(stderr, "%swindow %lld/%lld | %lld tokens | PPL %.4f", tty ? "\r" : "",
                 static_cast<long long>(done), static_cast<long long>(total), static_cast<long long>(s.tokens), s.ppl);
    if (s.has_reference)
      std::fprintf(stderr, " | ref PPL %.4f | mean KLD %.6f | same top %.2f%%", s.ref_ppl, s.mean_kld,
                   100 * s.same_top);
    std::fprintf(stderr, " | %.1f s%s", s.seconds, tty ? "" : "\n");
  });
  if (tty) std::fprintf(stderr, "\n");

  print_table(a, r);
  std::printf("\n%lld windows × %lld tokens (%lld predicted tokens), %.2f s, %d threads\n",
              static_cast<long long>(r.windows), static_cast<long long>(r.ctx), static_cast<long long>(r.tokens),
              r.seconds, num_threads());
  if (!a.json_path.empty()) {
    write_json(a, r);
    std::printf("wrote %s\n", a.json_path.c_str());
  }
  return 0;
}

}  // namespace

std::function<int()> add_eval_command(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* sub = app.add_subcommand("eval", "perplexity on a text dataset; KLD and top-1 agreement vs a reference");
  sub->add_option("model_dir", a->model_dir, "model directory (BF16 or W4A16 checkpoint)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("--dataset", a->dataset, "text file (one sample per line) or JSONL with a \"text\" field")
      ->required()
      ->check(CLI::ExistingFile);
  sub->add_option("--reference", a->reference_dir, "reference model (usually the BF16 original) for ΔPPL, KLD, top-1")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--ctx", a->ctx, "tokens per evaluation window (default 512)")->check(omni::cli::in_range(2, 1 << 20));
  sub->add_option("--max-tokens", a->max_tokens, "use only the first N tokens of the dataset (0 = all)")
      ->check(omni::cli::non_negative());
  sub->add_option("--max-windows", a->max_windows, "evaluate at most N windows (0 = all)")->check(omni::cli::non_negative());
  sub->add_option("--json", a->json_path, "also write the numbers to this JSON file");
  add_backend_options(sub, &a->backend, /*with_dtype=*/true);
  return [a] { return run_eval(*a); };
}

}  // namespace omni::cli
