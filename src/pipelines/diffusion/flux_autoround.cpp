#include "pipelines/diffusion/flux_autoround.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <new>
#include <set>

#include "core/error.h"
#include "io/safetensors.h"
#include "io/temp_siblings.h"
#include "models/flux/flux_config.h"
#include "nn/flux_quantizable.h"
#include "pipelines/autoround/block_state.h"
#include "pipelines/autoround/block_tuner.h"
#include "pipelines/diffusion/flux_text_to_image.h"
#include "pipelines/diffusion/quantize_pipeline_folder.h"
#include "quant/export.h"
#include "quant/grouped_int_weight.h"
#include "quant/layer_selection.h"
#include "quant/quant_config.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr const char* kStem = "diffusion_pytorch_model";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void check_options(const FluxAutoRoundOptions& o) {
  const AutoRoundOptions& t = o.tuning;
  t.scheme.validate();
  OMNI_CHECK(t.method == QuantMethod::AutoRound, "only AutoRound (and --rtn) are implemented for pipeline folders");
  OMNI_CHECK(t.iters > 0, "AutoRound needs iters > 0, found ", t.iters, " (plain RTN is --rtn)");
  OMNI_CHECK(t.nsamples > 0, "--nsamples (captions) must be > 0");
  OMNI_CHECK(std::isfinite(t.lr) && std::isfinite(t.minmax_lr), "learning rates must be finite, found lr ", t.lr,
             " and minmax_lr ", t.minmax_lr);
  OMNI_CHECK(t.batch_size > 0 && t.grad_accum > 0, "batch size and gradient accumulation must be positive");
  OMNI_CHECK(t.scheme.sym || t.format == QuantizedCheckpointFormat::AutoGptq,
             "asymmetric quantization is exported in the auto_gptq layout only (use --format auto_gptq)");
  OMNI_CHECK(!t.dataset.empty(), "AutoRound of a pipeline folder needs calibration captions (--dataset FILE, one "
             "caption a line)");
  OMNI_CHECK(o.calibration.steps >= 1 && o.calibration.steps <= 1000, "--calib-steps ", o.calibration.steps,
             ": expected 1 to 1000");
}

// Calibration generates images from the captions: both text encoders and tokenizers must be there.
void check_text_components(const std::string& in_dir) {
  for (const char* c : {"tokenizer", "text_encoder", "tokenizer_2", "text_encoder_2"})
    OMNI_CHECK(fs::is_directory(fs::path(in_dir) / c), in_dir, ": the pipeline folder has no ", c, "/ component; "
               "AutoRound calibrates by running the pipeline on captions, which needs both text encoders and both "
               "tokenizers (--rtn needs none)");
}

nlohmann::json fingerprint(const FluxAutoRoundOptions& o, const std::string& transformer_dir, const Backend& be) {
  nlohmann::json j = run_fingerprint(o.tuning, transformer_dir, be.name());
  j["calib_width"] = o.calibration.width;
  j["calib_height"] = o.calibration.height;
  j["calib_steps"] = o.calibration.steps;
  j["calib_guidance"] = o.calibration.guidance;
  j["calib_seed"] = o.calibration.seed;
  j["max_sequence_length"] = o.calibration.max_sequence_length;
  return j;
}

// io tensors of a chain plus the block-0 conditioning (temb, rotary tables: the same for every block).
NamedTensors with_conditioning(const NamedTensors& io, const NamedTensors& cond) {
  NamedTensors all = io;
  for (const auto& [name, t] : cond.items()) all.set(name, t);
  return all;
}

// The integer weights of the block's quantized Linears from their tuned V, alpha, beta.
std::map<std::string, GroupedIntWeight> freeze(TuningContext& block, const std::string& prefix) {
  std::map<std::string, GroupedIntWeight> out;
  Backend& be = block.backend();
  for (TunableLinear& l : block.linears()) {
    if (!l.spec.quantize) continue;
    const Tensor w = be.download(l.weight), v = be.download(l.v), alpha = be.download(l.alpha),
                 beta = be.download(l.beta);
    const QuantizedMatrix qm = quantize_matrix(w.data<float>(), l.out_features, l.in_features, l.spec.scheme,
                                               {v.data<float>(), alpha.data<float>(), beta.data<float>()});
    out[prefix + "." + l.name] = to_grouped_int_weight(qm);
  }
  return out;
}

// Original mode with every quantized Linear at its frozen (dequantized) weight: the block as exported.
void use_frozen_weights(TuningContext& block, const std::string& prefix, const FrozenBlock& f) {
  std::vector<std::pair<std::string, Tensor>> weights;
  for (const TunableLinear& l : block.linears()) {
    const auto it = f.weights.find(prefix + "." + l.name);
    if (it != f.weights.end()) weights.emplace_back(l.name, dequantize_grouped_int_weight(it->second));
  }
  block.use_weights(weights);
}

std::string block_done_line(const BlockTuningReport& r, int64_t blocks, const std::string& prefix) {
  char line[320];
  std::snprintf(line, sizeof line, "block %lld/%lld (%s) done: loss %.6g -> best %.6g (iter %lld), %.1f s%s",
                static_cast<long long>(r.block + 1), static_cast<long long>(blocks), prefix.c_str(),
                r.tuning.initial_loss, r.tuning.best_loss, static_cast<long long>(r.tuning.best_iter), r.seconds,
                r.resumed ? " (resumed)" : "");
  return line;
}

QuantizationConfig export_config(const AutoRoundOptions& opt, const std::vector<std::string>& block_lists,
                                 const std::vector<std::string>& skipped, int64_t captions) {
  QuantizationConfig cfg;
  cfg.bits = opt.scheme.bits;
  cfg.group_size = opt.scheme.group_size;
  cfg.sym = opt.scheme.sym;
  cfg.block_name_to_quantize = block_lists;
  for (const std::string& s : skipped) cfg.extra_config.push_back(sixteen_bit_entry(s));
  cfg.tuning["iters"] = opt.iters;
  cfg.tuning["nsamples"] = captions;
  cfg.tuning["seed"] = opt.seed;
  cfg.tuning["lr"] = opt.effective_lr();
  cfg.tuning["minmax_lr"] = opt.effective_minmax_lr();
  cfg.tuning["batch_size"] = opt.batch_size;
  cfg.tuning["gradient_accumulate_steps"] = opt.grad_accum;
  cfg.tuning["enable_quanted_input"] = opt.enable_quanted_input;
  cfg.tuning["enable_minmax_tuning"] = opt.enable_minmax_tuning;
  return cfg;
}

}  // namespace

FluxAutoRoundSummary quantize_pipeline_folder_autoround(const std::string& in_dir, const std::string& out_dir,
                                                        const FluxAutoRoundOptions& o, const AutoRoundCallbacks& cb,
                                                        Backend& backend) {
  const auto t_start = Clock::now();
  auto log = [&](const std::string& s) {
    if (cb.log) cb.log(s);
  };
  const AutoRoundOptions& opt = o.tuning;
  check_options(o);
  check_flux_pipeline_folder(in_dir);
  check_text_components(in_dir);
  const std::string transformer_in = (fs::path(in_dir) / "transformer").string();
  const FluxSpec spec = read_flux_transformer_config(transformer_in);
  OMNI_CHECK(!read_quantization_config(transformer_in).has_value(), transformer_in,
             " is already quantized (its config has a quantization_config)");
  clean_stale_temp_siblings(out_dir, log);
  check_export_target(out_dir, in_dir, opt.overwrite);
  std::vector<std::string> captions = read_caption_file(opt.dataset);
  if (static_cast<int64_t>(captions.size()) > opt.nsamples) captions.resize(static_cast<size_t>(opt.nsamples));
  else if (static_cast<int64_t>(captions.size()) < opt.nsamples)
    log("note: " + opt.dataset + " holds " + std::to_string(captions.size()) + " captions, fewer than --nsamples " +
        std::to_string(opt.nsamples) + "; using them all");

  const std::unique_ptr<QuantizableModel> model = make_flux_quantizable(spec);
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(transformer_in, kStem);
  model->check_checkpoint(ckpt, transformer_in);
  const int64_t L = model->num_blocks();

  FluxAutoRoundSummary summary;
  summary.captions = static_cast<int64_t>(captions.size());
  summary.samples = summary.captions * o.calibration.steps;
  OMNI_CHECK(opt.batch_size <= summary.samples, "--batch-size ", opt.batch_size, " exceeds the ", summary.samples,
             " calibration samples (", summary.captions, " captions × ", o.calibration.steps, " steps)");

  BlockStateDir state(out_dir + ".partial", fingerprint(o, transformer_in, backend));
  if (opt.resume) {
    state.open_for_resume();
    log("resuming from " + state.dir() + ": " + std::to_string(state.completed_blocks()) + " of " +
        std::to_string(L) + " blocks done");
  } else {
    state.create_fresh();
  }

  AutoRoundSummary& ar = summary.tuning;
  try {
    // Calibration: the whole pipeline runs once per caption, then goes (the tuner needs the memory).
    NamedTensors captured;
    {
      const auto t0 = Clock::now();
      std::unique_ptr<FluxTextToImage> t2i = FluxTextToImage::open(in_dir, backend);
      try {
        captured = capture_flux_calibration(*t2i, backend, captions, o.calibration, [&](int64_t i, int64_t n) {
          log("calibration: caption " + std::to_string(i) + "/" + std::to_string(n));
        });
      } catch (const std::bad_alloc&) {
        OMNI_FAIL("not enough memory for the calibration inputs of ", summary.samples, " samples (", summary.captions,
                  " captions × ", o.calibration.steps, " steps at ", o.calibration.width, "x", o.calibration.height,
                  "): lower --nsamples, --calib-steps or --calib-size");
      }
      char line[160];
      std::snprintf(line, sizeof line, "calibration: %lld samples captured in %.1f s",
                    static_cast<long long>(summary.samples), seconds_since(t0));
      log(line);
    }
    NamedTensors io, cond;
    for (const auto& [name, t] : captured.items()) {
      const bool is_io = name == "img" || name == "txt";
      (is_io ? io : cond).set(name, t);
    }
    captured = NamedTensors();
    ar.calibration_tokens = summary.samples * (io.at("img").dim(1) + io.at("txt").dim(1));

    // The two chains (AUTOROUND.md §1 step 2): X_fp through the FP blocks, X_q through the frozen quantized ones.
    NamedTensors x_fp = io, x_q;
    for (const auto& [name, t] : io.items()) x_q.set(name, opt.enable_quanted_input ? t.clone() : t);
    io = NamedTensors();

    std::vector<QuantizedLinearOutput> quantized;
    const auto mask = [&](int64_t B, int64_t T) { return model->loss_mask(B, T); };
    for (int64_t b = 0; b < L; ++b) {
      const auto t_block = Clock::now();
      const std::string prefix = model->block_prefix(b);
      const Block& def = model->block(b);
      for (const LinearDesc& d : def.linears())
        if (!has_quantizable_shape(d.out_features, d.in_features, opt.scheme)) ar.skipped.push_back(prefix + "." + d.name);
      TuningContext block(
          def, prefix, [&](const std::string& name) { return ckpt.weight(name); },
          [&](const LinearDesc& d) {
            return LinearQuantSpec{has_quantizable_shape(d.out_features, d.in_features, opt.scheme), opt.scheme};
          },
          backend);

      FrozenBlock frozen;
      const bool resumed = state.is_completed(b);
      NamedTensors y_ref;
      if (resumed) {
        frozen = state.load_block(b);
      } else {
        block.refresh_weights(TuningContext::WeightMode::Original);
        y_ref = block_forward_all(block, with_conditioning(x_fp, cond), opt.batch_size);
        try {
          const auto on_iter = [&](int64_t t, double loss, double best) {
            if (!cb.progress) return;
            AutoRoundProgress p;
            p.block = b;
            p.blocks = L;
            p.iter = t + 1;
            p.iters = opt.iters;
            p.loss = loss;
            p.best_loss = best;
            p.elapsed_seconds = seconds_since(t_start);
            const double done = static_cast<double>(b) + static_cast<double>(t + 1) / static_cast<double>(opt.iters);
            p.eta_seconds = p.elapsed_seconds / done * (static_cast<double>(L) - done);
            cb.progress(p);
          };
          // Each block draws its mini-batches from its own stream, so a resumed run replays the same order.
          frozen.tuning = tune_block(block, with_conditioning(x_q, cond), y_ref, mask, opt,
                                     opt.seed + static_cast<uint64_t>(b), on_iter);
          frozen.weights = freeze(block, prefix);
        } catch (const Error&) {
          rethrow_with_context("block " + prefix);
        }
        frozen.seconds = seconds_since(t_block);
        state.save_block(b, frozen);
      }
      for (const auto& [name, w] : frozen.weights)
        quantized.push_back({name, w, ckpt.contains(name + ".bias") ? ckpt.tensor(name + ".bias") : Tensor()});
      if (b + 1 < L) {  // X_fp ← Block_fp(X_fp), X_q ← Block_q(X_q)
        if (y_ref.items().empty()) {
          block.refresh_weights(TuningContext::WeightMode::Original);
          y_ref = block_forward_all(block, with_conditioning(x_fp, cond), opt.batch_size);
        }
        if (opt.enable_quanted_input) {
          use_frozen_weights(block, prefix, frozen);
          x_q = block_forward_all(block, with_conditioning(x_q, cond), opt.batch_size);
        }
        x_fp = std::move(y_ref);
        if (!opt.enable_quanted_input) x_q = x_fp;
      }
      ar.blocks.push_back({b, frozen.tuning, frozen.seconds, resumed});
      log(block_done_line(ar.blocks.back(), L, prefix));
    }

    // Export: the quantized Linears (and their biases) replace the checkpoint's; every other tensor is kept.
    std::set<std::string> replaced;
    for (const QuantizedLinearOutput& q : quantized) {
      replaced.insert(q.prefix + ".weight");
      replaced.insert(q.prefix + ".bias");
    }
    std::vector<NamedTensor> unchanged;
    for (const std::string& name : ckpt.names())
      if (!replaced.count(name)) unchanged.push_back({name, ckpt.weight(name)});
    ExportOptions eo;
    eo.format = opt.format;
    eo.overwrite = false;  // into a fresh temporary folder; the whole output replaces an earlier one at the end
    eo.weights_stem = kStem;
    eo.progress = log;
    summary.copied = write_quantized_pipeline_folder(
        in_dir, out_dir,
        [&](const std::string& transformer_out) {
          ar.config = export_quantized_checkpoint(transformer_in, transformer_out, unchanged, quantized,
                                                  export_config(opt, model->block_lists(), ar.skipped,
                                                                summary.captions),
                                                  eo);
        },
        log);
  } catch (...) {
    if (state.completed_blocks() > 0)
      log("kept " + state.dir() + " (" + std::to_string(state.completed_blocks()) + " of " + std::to_string(L) +
          " blocks done): the same command with --resume continues from there");
    throw;
  }
  state.remove();
  ar.seconds = seconds_since(t_start);
  return summary;
}

}  // namespace omni
