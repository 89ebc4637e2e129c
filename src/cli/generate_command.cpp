// omniround generate MODEL_DIR -p PROMPT: streams generated text, then prints prefill and decode speed.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "core/thread_pool.h"
#include "io/tokenizers/chat_format.h"
#include "io/tokenizers/tokenizer.h"
#include "cli/backend_options.h"
#include "models/registry.h"
#include "pipelines/sampling.h"
#include "pipelines/generate.h"

namespace omni::cli {
namespace {

struct GenerateArgs {
  std::string model_dir;
  std::string prompt;
  int64_t max_new_tokens = 64;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 42;
  bool chat = false;
  BackendArgs backend;
};

int run_generate(const GenerateArgs& a) {
  const std::unique_ptr<Backend> backend = make_backend(a.backend);
  std::unique_ptr<CausalLM> model = open_causal_lm(a.model_dir, *backend);
  Tokenizer tokenizer = Tokenizer::from_dir(a.model_dir);
  const std::string text = a.chat ? format_chatml({{"user", a.prompt}}, /*add_generation_prompt=*/true) : a.prompt;
  const std::vector<int32_t> prompt = tokenizer.encode(text);

  GenerateOptions opt;
  opt.max_new_tokens = a.max_new_tokens;
  opt.sampling = SamplingParams{a.temperature, a.top_k, a.top_p, a.seed};
  opt.stop_ids = model->info().eos_token_ids;
  for (int32_t id : tokenizer.eos_ids())
    if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) == opt.stop_ids.end()) opt.stop_ids.push_back(id);

  const LoadReport& r = model->load_report();
  std::cerr << "model: " << a.model_dir << " (" << model->info().architecture << ", "
            << (r.quant_format.empty() ? std::string("16-bit weights") : r.quant_format) << ", "
            << r.quantized_linears << " quantized / " << r.dense_linears << " dense linear layers), on "
            << backend->name() << " (" << r.layouts_summary() << "), " << num_threads() << " threads\n";
  if (!a.chat) std::cout << a.prompt;
  std::cout << std::flush;
  StreamingDecoder decoder(tokenizer);
  const GenerateStats s = generate(*model, prompt, opt, [&](int32_t id) {
    if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end()) return;
    std::cout << decoder.push(id) << std::flush;
  });
  std::cout << std::endl;
  std::fprintf(stderr,
               "prompt: %lld tokens, prefill %.1f tokens/s | generated: %lld tokens, decode %.1f tokens/s | "
               "stopped: %s\n",
               static_cast<long long>(s.prompt_tokens), s.prefill_tokens_per_second(),
               static_cast<long long>(s.generated_tokens), s.decode_tokens_per_second(), s.stop_reason.c_str());
  return 0;
}

}  // namespace

std::function<int()> add_generate_command(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  CLI::App* sub = app.add_subcommand("generate", "generate text with a model (BF16 or W4A16 checkpoint)");
  sub->add_option("model_dir", args->model_dir, "Hugging Face model directory")->required()->check(CLI::ExistingDirectory);
  sub->add_option("-p,--prompt", args->prompt, "prompt text")->required();
  sub->add_option("-n,--max-new-tokens", args->max_new_tokens, "tokens to generate (default 64)")
      ->check(omni::cli::non_negative());
  sub->add_option("--temperature", args->temperature, "0 = greedy (default)")->check(omni::cli::in_range(0, 100));
  sub->add_option("--top-k", args->top_k, "keep the k most likely tokens (0 = off)")->check(omni::cli::non_negative());
  sub->add_option("--top-p", args->top_p, "nucleus sampling mass (1 = off)")->check(omni::cli::in_range(0, 1, /*lo_open=*/true));
  sub->add_option("--seed", args->seed, "sampling seed (default 42)");
  sub->add_flag("--chat", args->chat, "wrap the prompt in the ChatML chat format");
  add_backend_options(sub, &args->backend, /*with_dtype=*/true);
  return [args] { return run_generate(*args); };
}

}  // namespace omni::cli
