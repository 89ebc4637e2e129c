// omniround image MODEL_DIR -p PROMPT -o out.png: text to image with a diffusers FLUX folder (BF16 or W4A16
// transformer), a progress line per denoising step, the prompt and settings stored in the PNG's text chunks, and
// the time of each stage and the peak memory printed.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "cli/backend_options.h"
#include "cli/commands.h"
#include "cli/option_checks.h"
#include "cli/step_progress.h"
#include "core/error.h"
#include "core/process_stats.h"
#include "io/image/png.h"
#include "pipelines/backend_choice.h"
#include "pipelines/diffusion/flux_text_to_image.h"

namespace omni::cli {
namespace {

struct ImageArgs {
  std::string model_dir, prompt, negative_prompt, size = "1024x1024", cfg = "sequential", output;
  bool has_negative = false;
  float true_cfg_scale = 1.0f, guidance = 3.5f;
  int64_t steps = 28, max_sequence_length = 512;
  uint64_t seed = 0;
  bool quiet = false;
  BackendArgs backend;
};

// "WxH" (or "N" for N x N), both positive integers.
std::pair<int64_t, int64_t> parse_size(const std::string& s) {
  const size_t x = s.find_first_of("xX");
  auto number = [&](const std::string& part) -> int64_t {
    OMNI_CHECK(!part.empty() && part.size() <= 6 && part.find_first_not_of("0123456789") == std::string::npos,
               "--size ", s, ": expected WIDTHxHEIGHT in pixels, e.g. 1024x768");
    return std::stoll(part);
  };
  if (x == std::string::npos) {
    const int64_t n = number(s);
    return {n, n};
  }
  return {number(s.substr(0, x)), number(s.substr(x + 1))};
}

std::string settings_text(const ImageArgs& a, const FluxSampling& s, const Backend& be) {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "steps %lld, size %lldx%lld, seed %llu, guidance %g, true_cfg_scale %g, cfg %s, "
                "max_sequence_length %lld, device %s, activations %s",
                static_cast<long long>(s.steps), static_cast<long long>(s.width), static_cast<long long>(s.height),
                static_cast<unsigned long long>(s.seed), s.guidance, s.true_cfg_scale, cfg_mode_name(s.cfg),
                static_cast<long long>(a.max_sequence_length), be.name().c_str(), std::string(dtype_name(be.activation_dtype())).c_str());
  return buf;
}

int run_image(const ImageArgs& a) {
  FluxImageRequest r;
  r.prompt = a.prompt;
  r.negative_prompt = a.negative_prompt;
  r.max_sequence_length = a.max_sequence_length;
  FluxSampling& s = r.sampling;
  std::tie(s.width, s.height) = parse_size(a.size);
  s.steps = a.steps;
  s.guidance = a.guidance;
  s.true_cfg_scale = a.true_cfg_scale;
  s.cfg = parse_cfg_mode(a.cfg);
  s.seed = a.seed;
  if (a.has_negative && s.true_cfg_scale <= 1.0f)
    std::fprintf(stderr, "note: --negative-prompt is used only with --true-cfg-scale > 1 (true CFG); it is ignored\n");

  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<Backend> backend = make_backend(a.backend);
  std::unique_ptr<FluxTextToImage> t2i = FluxTextToImage::open(a.model_dir, *backend);
  t2i->pipeline().check(s, s.true_cfg_scale > 1.0f);
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::fprintf(stderr, "loaded %s in %.2f s on %s (%s activations)\n", a.model_dir.c_str(), load_seconds,
               backend->name().c_str(), std::string(dtype_name(backend->activation_dtype())).c_str());

  StepProgress progress(stderr);
  const FluxImageResult out = t2i->generate(r, [&](const FluxStepInfo& i) {
    if (!a.quiet) progress.update(i.step, i.steps, i.elapsed_seconds);
  });
  progress.finish();
  if (out.clip_truncated)
    std::fprintf(stderr, "note: the prompt has %lld CLIP tokens; CLIP read the first 77 (as diffusers), T5 all of it\n",
                 static_cast<long long>(out.prompt_clip_tokens));

  PngText text = {{"prompt", a.prompt}, {"parameters", settings_text(a, s, *backend)},
                  {"Software", std::string("omniround ") + OMNI_VERSION}};
  if (s.true_cfg_scale > 1.0f) text.insert(text.begin() + 1, {"negative_prompt", a.negative_prompt});
  write_png(a.output, out.image, text);

  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("wrote %s (%lldx%lld) | load %.2f s, text encoders %.2f s, denoising %.2f s (%.3f s/step), VAE decode "
              "%.2f s, total %.2f s | peak memory: host %.0f MiB",
              a.output.c_str(), static_cast<long long>(out.image.width), static_cast<long long>(out.image.height),
              load_seconds, out.encode_seconds, out.denoise_seconds, out.denoise_seconds / static_cast<double>(s.steps),
              out.decode_seconds, total, static_cast<double>(peak_rss_bytes()) / 1048576.0);
  if (const std::optional<uint64_t> dev = device_memory_peak_bytes(*backend))
    std::printf(", device %.0f MiB", static_cast<double>(*dev) / 1048576.0);
  std::printf("\n");
  return 0;
}

}  // namespace

std::function<int()> add_image_command(CLI::App& app) {
  auto a = std::make_shared<ImageArgs>();
  CLI::App* sub = app.add_subcommand("image", "text to image with a diffusers FLUX folder (BF16 or W4A16 transformer)");
  sub->add_option("model_dir", a->model_dir, "diffusers FluxPipeline folder")->required()->check(CLI::ExistingDirectory);
  sub->add_option("-p,--prompt", a->prompt, "prompt text")->required();
  CLI::Option* neg = sub->add_option("--negative-prompt", a->negative_prompt,
                                     "negative prompt for true CFG (default: the empty prompt)");
  sub->add_option("--true-cfg-scale", a->true_cfg_scale, "true classifier-free guidance scale; > 1 turns it on (default 1)")
      ->check(in_range(0, 100));
  sub->add_option("--guidance", a->guidance, "distilled guidance of guidance-embedding models (default 3.5)")
      ->check(in_range(0, 100));
  sub->add_option("--steps", a->steps, "denoising steps (default 28)");
  sub->add_option("--size", a->size, "WIDTHxHEIGHT in pixels, multiples of 16 for FLUX (default 1024x1024)");
  sub->add_option("--seed", a->seed, "noise seed (default 0); the same seed gives the same image on the same device");
  sub->add_option("--cfg", a->cfg, "with true CFG: sequential (two forwards per step) or batched (one of batch 2)");
  sub->add_option("--max-sequence-length", a->max_sequence_length, "T5 tokens (default 512; FLUX.1-schnell 256)");
  sub->add_option("-o,--output", a->output, "PNG file to write")->required();
  sub->add_flag("-q,--quiet", a->quiet, "no per-step progress");
  add_backend_options(sub, &a->backend, /*with_dtype=*/true);
  return [a, neg] {
    a->has_negative = neg->count() > 0;
    return run_image(*a);
  };
}

}  // namespace omni::cli
