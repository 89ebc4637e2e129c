// omniround quantize MODEL_DIR -o OUT_DIR: AutoRound (default), RTN or optimized RTN to a W4A16 (generally
// Wb A16) checkpoint in the auto_round or auto_gptq format.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "cli/backend_options.h"
#include "core/process_stats.h"
#include "core/error.h"
#include "io/file_util.h"
#include "io/temp_siblings.h"
#include "models/registry.h"
#include "pipelines/autoround/autoround.h"
#include "quant/export.h"
#include "quant/quant_summary.h"
#include "pipelines/diffusion/flux_autoround.h"
#include "pipelines/diffusion/quantize_pipeline_folder.h"
#include "quant/rtn_checkpoint.h"

namespace omni::cli {
namespace {

struct QuantizeArgs {
  std::string model_dir, out_dir;
  std::string scheme = "W4A16";
  std::string recipe = "default";
  std::string format = "auto_round";
  std::string calib_policy = "concat";
  AutoRoundOptions opt;
  bool rtn = false, rtn_opt = false, no_quanted_input = false, no_minmax = false;
  int64_t loss_every = 0;  // --loss-every: print the loss curve (for comparisons with other tuners)
  BackendArgs backend;
  int bits = 4;
  int64_t group_size = 128;
  bool asym = false;
  // Set when given on the command line, so a recipe does not override them.
  int64_t iters = -1, nsamples = -1;
  double lr = -1;
  // Calibration of a diffusers pipeline folder (AutoRound of its transformer); unset: FluxCalibrationOptions'.
  std::string calib_size;
  int64_t calib_steps = -1, max_sequence_length = -1;
  double calib_guidance = std::nan("");
  bool pipeline_calibration_given() const {
    return !calib_size.empty() || calib_steps >= 0 || max_sequence_length >= 0 || !std::isnan(calib_guidance);
  }
};

// Captions used when --nsamples is not given for a pipeline folder: 32 captions × 4 steps = 128 samples, the
// text quantizer's default count (flux_calibration.h).
constexpr int64_t kDefaultPipelineCaptions = 32;

std::string mmss(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%d:%02d", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return buf;
}

int run_quantize_checked(QuantizeArgs& a);

// The log line sink, a live progress line on a terminal, and with --loss-every one line per N iterations. The
// --loss-every callback calls cb.log, so cb must outlive the run.
void set_up_callbacks(AutoRoundCallbacks& cb, int64_t loss_every) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  cb.log = [tty](const std::string& line) { std::cerr << (tty ? "\r\033[K" : "") << line << "\n"; };
  if (tty)
    cb.progress = [](const AutoRoundProgress& p) {
      std::fprintf(stderr, "\r\033[Kblock %lld/%lld  iter %lld/%lld  loss %.6g  best %.6g  elapsed %s  ETA %s",
                   static_cast<long long>(p.block + 1), static_cast<long long>(p.blocks),
                   static_cast<long long>(p.iter), static_cast<long long>(p.iters), p.loss, p.best_loss,
                   mmss(p.elapsed_seconds).c_str(), mmss(p.eta_seconds).c_str());
    };
  if (loss_every > 0)  // one line per N iterations (0-based, as the block summary's best iter), and the last
    cb.progress = [every = loss_every, live = cb.progress, &cb](const AutoRoundProgress& p) {
      const long long t = static_cast<long long>(p.iter - 1);
      if (t % every == 0 || p.iter == p.iters)
        cb.log(str_cat("loss curve: block ", p.block, " iter ", t, " loss ", p.loss));
      if (live) live(p);
    };
}

void print_block_table(const AutoRoundSummary& s) {
  std::printf("| block | initial loss | best loss | best iter | seconds |\n|---:|---:|---:|---:|---:|\n");
  for (const BlockTuningReport& b : s.blocks)
    std::printf("| %lld | %.6g | %.6g | %lld | %.1f%s |\n", static_cast<long long>(b.block), b.tuning.initial_loss,
                b.tuning.best_loss, static_cast<long long>(b.tuning.best_iter), b.seconds, b.resumed ? " (resumed)" : "");
}

int run_quantize(QuantizeArgs& a) {
  try {
    return run_quantize_checked(a);
  } catch (const Error&) {
    rethrow_with_context("quantizing " + a.model_dir + " into " + a.out_dir);
  }
}

// AutoRound of a pipeline folder's transformer: captions through the pipeline's denoising loop, then the
// block-wise tuning (pipelines/diffusion/flux_autoround.h). As auto-round does for diffusion models, tuning runs
// at batch 1 with --batch-size × --grad-accum micro-batches accumulated per step.
int run_autoround_pipeline(QuantizeArgs& a) {
  FluxAutoRoundOptions fo;
  AutoRoundOptions& o = fo.tuning;
  o = a.opt;
  o.apply_recipe(a.recipe);
  if (a.iters >= 0) o.iters = a.iters;
  o.nsamples = a.nsamples >= 0 ? a.nsamples : kDefaultPipelineCaptions;
  if (a.lr >= 0) o.lr = a.lr;
  o.scheme = QuantScheme{a.bits, a.group_size, !a.asym};
  o.format = parse_quantized_checkpoint_format(a.format);
  o.enable_quanted_input = !a.no_quanted_input;
  o.enable_minmax_tuning = !a.no_minmax;
  o.grad_accum = a.opt.batch_size * a.opt.grad_accum;
  o.batch_size = 1;
  OMNI_CHECK(a.opt.calib_tokens.empty(), "--calib-tokens is for text models; a pipeline folder calibrates from "
             "captions (--dataset FILE, one caption a line)");
  if (o.dataset.empty()) {
    const std::string shipped = a.model_dir + "/calibration.txt";
    OMNI_CHECK(file_exists(shipped), "no --dataset given and ", shipped, " does not exist (AutoRound of a pipeline "
               "folder needs calibration captions, one a line; --rtn needs none)");
    o.dataset = shipped;
  }
  FluxCalibrationOptions& c = fo.calibration;
  if (!a.calib_size.empty()) std::tie(c.width, c.height) = parse_image_size(a.calib_size, "--calib-size");
  if (a.calib_steps >= 0) c.steps = a.calib_steps;
  if (!std::isnan(a.calib_guidance)) c.guidance = static_cast<float>(a.calib_guidance);
  if (a.max_sequence_length >= 0) c.max_sequence_length = a.max_sequence_length;
  c.seed = o.seed;

  AutoRoundCallbacks cb;
  set_up_callbacks(cb, a.loss_every);
  const std::unique_ptr<Backend> backend = make_backend(a.backend, "f32");
  std::printf("tuning on %s: calibration %lldx%lld, %lld steps, batch 1 × %lld accumulated\n",
              backend->name().c_str(), static_cast<long long>(c.width), static_cast<long long>(c.height),
              static_cast<long long>(c.steps), static_cast<long long>(o.grad_accum));
  const auto t0 = std::chrono::steady_clock::now();
  const FluxAutoRoundSummary s = quantize_pipeline_folder_autoround(a.model_dir, a.out_dir, fo, cb, *backend);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("AutoRound of the transformer: %s, %lld captions × %lld steps = %lld samples (%lld tokens); copied "
              "%zu components unchanged\n",
              describe_quantization(s.tuning.config).c_str(), static_cast<long long>(s.captions),
              static_cast<long long>(c.steps), static_cast<long long>(s.samples),
              static_cast<long long>(s.tuning.calibration_tokens), s.copied.size());
  print_block_table(s.tuning);
  if (!s.tuning.skipped.empty()) std::printf("kept 16-bit: %zu linear layers (shapes)\n", s.tuning.skipped.size());
  std::printf("wall time %.1f s | peak memory %.0f MiB\nwrote %s\n", secs, peak_rss_bytes() / 1048576.0,
              a.out_dir.c_str());
  return 0;
}

// A diffusers pipeline folder: its transformer is quantized, the other components copied. RTN with --rtn (or
// --iters 0), AutoRound otherwise.
int run_quantize_pipeline(QuantizeArgs& a) {
  OMNI_CHECK(!a.rtn_opt, "--rtn-opt is not implemented for diffusers pipeline folders (use --rtn or AutoRound)");
  OMNI_CHECK(a.scheme == "W4A16" || a.bits != 4, "--scheme ", a.scheme,
             " is not supported (W4A16; use --bits for other widths)");
  if (!(a.rtn || a.iters == 0)) return run_autoround_pipeline(a);
  RtnOptions r;
  r.scheme = QuantScheme{a.bits, a.group_size, !a.asym};
  r.format = parse_quantized_checkpoint_format(a.format);
  OMNI_CHECK(r.scheme.sym || r.format == QuantizedCheckpointFormat::AutoGptq,
             "asymmetric quantization is exported in the auto_gptq layout only (use --format auto_gptq)");
  r.overwrite = a.opt.overwrite;
  r.progress = [](const std::string& line) { std::cerr << line << "\n"; };
  const auto t0 = std::chrono::steady_clock::now();
  const PipelineQuantizeSummary s = quantize_pipeline_folder_rtn(a.model_dir, a.out_dir, r);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("RTN of the transformer: quantized %zu linear layers (%zu left 16-bit): %s; copied %zu components "
              "unchanged | wall time %.1f s\n",
              s.transformer.quantized.size(), s.transformer.skipped.size(),
              describe_quantization(s.transformer.config).c_str(), s.copied.size(), secs);
  std::printf("wrote %s\n", a.out_dir.c_str());
  return 0;
}

int run_quantize_checked(QuantizeArgs& a) {
  if (is_pipeline_folder(a.model_dir)) return run_quantize_pipeline(a);
  OMNI_CHECK(!a.pipeline_calibration_given(), "--calib-size, --calib-steps, --calib-guidance and "
             "--max-sequence-length are for diffusers pipeline folders; ", a.model_dir, " is a text model");
  model_architecture(a.model_dir);  // an unsupported architecture or a bad config fails here, before any work
  // Leftovers of a killed earlier run beside OUT go first (an output it was replacing is put back), so that the
  // check below sees what is really there.
  clean_stale_temp_siblings(a.out_dir, [](const std::string& line) { std::cerr << line << "\n"; });
  check_export_target(a.out_dir, a.model_dir, a.opt.overwrite);  // and a bad output path
  OMNI_CHECK(a.scheme == "W4A16" || a.bits != 4, "--scheme ", a.scheme,
             " is not supported (W4A16; use --bits for other widths)");
  AutoRoundOptions& o = a.opt;
  o.apply_recipe(a.recipe);
  if (a.iters >= 0) o.iters = a.iters;
  if (a.nsamples >= 0) o.nsamples = a.nsamples;
  // CLI11's number checks let "nan" through (every comparison with NaN is false): refuse it here, by name.
  if (a.lr >= 0) o.lr = a.lr;
  o.scheme = QuantScheme{a.bits, a.group_size, !a.asym};
  o.format = parse_quantized_checkpoint_format(a.format);
  o.calibration_policy = a.calib_policy;
  o.enable_quanted_input = !a.no_quanted_input;
  o.enable_minmax_tuning = !a.no_minmax;
  o.method = a.rtn_opt ? QuantMethod::OptimizedRtn : QuantMethod::AutoRound;
  const bool plain_rtn = a.rtn || (o.method == QuantMethod::AutoRound && o.iters == 0);
  OMNI_CHECK(!(a.rtn && a.rtn_opt), "--rtn and --rtn-opt exclude each other");
  if (!plain_rtn && o.dataset.empty() && o.calib_tokens.empty()) {
    // The default calibration text: the one shipped beside the model, if any.
    const std::string shipped = a.model_dir + "/calibration.txt";
    OMNI_CHECK(file_exists(shipped), "no --dataset given and ", shipped, " does not exist");
    o.dataset = shipped;
  }

  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t before = directory_bytes(a.model_dir);
  if (plain_rtn) {
    RtnOptions r;
    r.scheme = o.scheme;
    r.format = o.format;
    r.overwrite = o.overwrite;
    r.progress = [](const std::string& line) { std::cerr << line << "\n"; };
    const RtnSummary s = quantize_rtn_model(a.model_dir, a.out_dir, r);
    std::printf("RTN: quantized %zu linear layers (%zu left 16-bit): %s\n", s.quantized.size(), s.skipped.size(),
                describe_quantization(s.config).c_str());
  } else {
    AutoRoundCallbacks cb;
    set_up_callbacks(cb, a.loss_every);
    // Tuning is f32 by the backend contract, on whichever device --device names.
    const std::unique_ptr<Backend> backend = make_backend(a.backend, "f32");
    std::printf("tuning on %s\n", backend->name().c_str());
    const AutoRoundSummary s = autoround_quantize(a.model_dir, a.out_dir, o, cb, backend.get());
    const char* name = o.method == QuantMethod::OptimizedRtn ? "optimized RTN" : "AutoRound";
    std::printf("%s: %s, %lld calibration tokens\n", name, describe_quantization(s.config).c_str(),
                static_cast<long long>(s.calibration_tokens));
    if (o.method == QuantMethod::AutoRound) {
      print_block_table(s);
    }
    if (!s.skipped.empty()) std::printf("kept 16-bit: %zu linear layers (shapes)\n", s.skipped.size());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const uint64_t after = directory_bytes(a.out_dir);
  std::printf("size: %.2f MiB -> %.2f MiB (%.2fx smaller) | wall time %.1f s | peak memory %.0f MiB\nwrote %s\n",
              before / 1048576.0, after / 1048576.0, after ? static_cast<double>(before) / after : 0.0, secs,
              peak_rss_bytes() / 1048576.0, a.out_dir.c_str());
  return 0;
}

}  // namespace

std::function<int()> add_quantize_command(CLI::App& app) {
  auto a = std::make_shared<QuantizeArgs>();
  CLI::App* sub = app.add_subcommand("quantize", "quantize a 16-bit checkpoint to W4A16 (AutoRound, RTN)");
  sub->add_option("model_dir", a->model_dir, "Hugging Face model directory (BF16/F16/F32)")
      ->required()
      ->check(CLI::ExistingDirectory);
  sub->add_option("-o,--output", a->out_dir, "output directory (must not exist unless --overwrite)")->required();
  sub->add_option("--scheme", a->scheme, "quantization scheme (W4A16)");
  sub->add_option("--bits", a->bits, "weight bits: 2, 3, 4 or 8 (default 4)")->check(CLI::IsMember({2, 3, 4, 8}));
  sub->add_option("--group-size", a->group_size, "inputs per scale group: 32, 64, 128 (default), 256, or -1 per channel")
      ->check(CLI::IsMember({-1, 32, 64, 128, 256}));
  sub->add_flag("--asym", a->asym, "asymmetric (zero point) instead of full-range symmetric; auto_gptq format only");
  sub->add_option("--iters", a->iters, "tuning iterations per block (default 200; 0 = RTN)")
      ->check(omni::cli::non_negative());
  sub->add_option("--nsamples", a->nsamples, "calibration samples (default 128); for a pipeline folder, captions "
                                             "(default 32, each giving --calib-steps samples)")
      ->check(omni::cli::positive());
  sub->add_option("--seqlen", a->opt.seqlen, "tokens per calibration sample (default 2048)")
      ->check(omni::cli::in_range(2, 1 << 20));
  sub->add_option("--batch-size", a->opt.batch_size, "samples per mini-batch (default 8); a pipeline folder tunes at "
                                                      "batch 1, accumulating --batch-size × --grad-accum per step")
      ->check(omni::cli::positive());
  sub->add_option("--grad-accum", a->opt.grad_accum, "mini-batches per update (default 1)")
      ->check(omni::cli::positive());
  sub->add_option("--lr", a->lr, "learning rate of V (default 1/iters)")->check(omni::cli::positive());
  sub->add_option("--minmax-lr", a->opt.minmax_lr, "learning rate of alpha/beta (default: --lr)")
      ->check(omni::cli::positive());
  sub->add_option("--recipe", a->recipe, "light (50 iters, lr 5e-3), default (200) or best (1000 iters, 512 samples)")
      ->check(CLI::IsMember({"light", "default", "best"}));
  sub->add_flag("--rtn", a->rtn, "round-to-nearest: no calibration, streams tensor by tensor");
  add_backend_options(sub, &a->backend, /*with_dtype=*/false);
  sub->add_flag("--rtn-opt", a->rtn_opt, "optimized RTN: scales searched against calibration activations");
  sub->add_flag("--no-quanted-input", a->no_quanted_input, "tune each block on FP inputs instead of quantized ones");
  sub->add_flag("--no-minmax-tuning", a->no_minmax, "tune only V, not alpha/beta");
  sub->add_option("--format", a->format, "auto_round (default) or auto_gptq")
      ->check(CLI::IsMember({"auto_round", "auto_gptq"}));
  sub->add_option("--dataset", a->opt.dataset, "calibration text: one sample per line, or JSONL with \"text\"; for a "
                                               "pipeline folder, captions one a line "
                                               "(default: MODEL_DIR/calibration.txt)")
      ->check(CLI::ExistingFile);
  sub->add_option("--calib-policy", a->calib_policy,
                  "how texts become samples: concat (default; joined with <|endoftext|>), skip (texts of at least "
                  "seqlen tokens, truncated), stream (the file as one document, random windows), chat (ChatML turns)")
      ->check(CLI::IsMember({"concat", "skip", "stream", "chat"}));
  // Pre-tokenized windows, so that another tool and ours tune on the very same tokens (docs/cli.md).
  sub->add_option("--calib-tokens", a->opt.calib_tokens,
                  "pre-tokenized calibration: JSONL, one {\"input_ids\": [...]} of exactly --seqlen ids per line; "
                  "the first --nsamples are used as they are")
      ->check(CLI::ExistingFile)
      ->excludes(sub->get_option("--dataset"))
      ->excludes(sub->get_option("--calib-policy"));
  sub->add_option("--seed", a->opt.seed, "seed of the sample order (default 42); for a pipeline folder also of the "
                                         "calibration noise");
  sub->add_option("--calib-size", a->calib_size, "pipeline folders: WIDTHxHEIGHT of the calibration images "
                                                 "(default 256x256)");
  sub->add_option("--calib-steps", a->calib_steps, "pipeline folders: denoising steps per caption, each a "
                                                   "calibration sample (default 4)")
      ->check(omni::cli::in_range(1, 1000));
  sub->add_option("--calib-guidance", a->calib_guidance, "pipeline folders: distilled guidance of the calibration "
                                                         "images (default 3.5)");
  sub->add_option("--max-sequence-length", a->max_sequence_length, "pipeline folders: T5 tokens of the captions "
                                                                   "(default 512; FLUX.1-schnell 256)")
      ->check(omni::cli::in_range(1, 4096));
  sub->add_option("--loss-every", a->loss_every, "print each block's mini-batch loss every N iterations (default 0: off)")
      ->check(omni::cli::non_negative());
  sub->add_flag("--resume", a->opt.resume, "continue an interrupted run from OUT_DIR.partial");
  sub->add_flag("--overwrite", a->opt.overwrite, "replace an existing output directory");
  return [a] { return run_quantize(*a); };
}

}  // namespace omni::cli
