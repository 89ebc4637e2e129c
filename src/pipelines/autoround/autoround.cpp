#include "pipelines/autoround/autoround.h"

#include <cmath>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <new>
#include <optional>
#include <set>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "io/tokenizers/tokenizer.h"
#include "models/registry.h"
#include "pipelines/autoround/block_state.h"
#include "pipelines/autoround/block_tuner.h"
#include "pipelines/calibration_samples.h"
#include "pipelines/text_dataset.h"
#include "quant/grouped_int_weight.h"
#include "quant/layer_selection.h"
#include "quant/optimized_rtn.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Block 0's inputs for every calibration sample ([n, T, ...] per io name; for a decoder, the token embeddings).
NamedTensors calibration_inputs(const std::string& model_dir, const SafetensorsCheckpoint& ckpt,
                                const QuantizableModel& model, const AutoRoundOptions& opt, Backend& backend,
                                const std::function<void(const std::string&)>& log) {
  OMNI_CHECK(!opt.dataset.empty() || !opt.calib_tokens.empty(),
             "a calibration dataset is needed (--dataset FILE or --calib-tokens FILE)");
  OMNI_CHECK(opt.dataset.empty() || opt.calib_tokens.empty(), "give either a dataset or token windows, not both");
  const Tokenizer tokenizer = Tokenizer::from_dir(model_dir);
  CalibrationExtras extras;
  extras.log = log;
  // Pre-tokenized windows are taken as they are (only checked against the vocabulary); texts go through a policy.
  const std::vector<std::vector<int32_t>> samples =
      !opt.calib_tokens.empty()
          ? calibration_samples_from_token_file(opt.calib_tokens, opt.nsamples, opt.seqlen, tokenizer.vocab_size(),
                                                extras)
          : build_calibration_samples(tokenizer, read_text_dataset(opt.dataset), opt.nsamples, opt.seqlen, opt.seed,
                                      parse_calibration_policy(opt.calibration_policy), extras);
  return model.calibration_inputs(ckpt, samples, backend);
}

// Tunes (AutoRound) or searches the scales of (optimized RTN) one block and freezes it; returns its integer
// weights.
FrozenBlock quantize_block(TuningContext& block, const QuantizableModel& model, int64_t b, QuantMethod method,
                           const NamedTensors& x_tune, const NamedTensors& y_ref, const NamedTensors& x_fp,
                           const AutoRoundOptions& opt, const std::function<void(int64_t, double, double)>& on_iter) {
  FrozenBlock f;
  const std::string prefix = model.block_prefix(b);
  if (method == QuantMethod::AutoRound) {
    // Each block draws its mini-batches from its own stream, so a resumed run replays the same order.
    const auto mask = [&](int64_t B, int64_t T) { return model.loss_mask(B, T); };
    f.tuning = tune_block(block, x_tune, y_ref, mask, opt, opt.seed + static_cast<uint64_t>(b), on_iter);
  }
  std::vector<std::vector<float>> importance;
  if (method == QuantMethod::OptimizedRtn) importance = collect_linear_importance(block, x_fp, opt.batch_size);
  Backend& be = block.backend();
  int i = 0;
  for (TunableLinear& l : block.linears()) {
    if (l.spec.quantize) {
      const Tensor w_host = be.download(l.weight);  // the final values, read back once
      const float* w = w_host.data<float>();
      QuantizedMatrix qm;
      if (method == QuantMethod::AutoRound) {
        const Tensor v = be.download(l.v), alpha = be.download(l.alpha), beta = be.download(l.beta);
        qm = quantize_matrix(w, l.out_features, l.in_features, l.spec.scheme,
                             {v.data<float>(), alpha.data<float>(), beta.data<float>()});
      }
      else
        qm = quantize_matrix_optimized(w, l.out_features, l.in_features, l.spec.scheme,
                                       importance[static_cast<size_t>(i)].data());
      f.weights[prefix + "." + l.name] = to_grouped_int_weight(qm);
    }
    ++i;
  }
  return f;
}

// Sets every quantized Linear of the block to its frozen Ŵ (the dequantized stored weight).
void use_frozen_weights(TuningContext& block, const std::string& prefix, const FrozenBlock& f) {
  std::vector<std::pair<std::string, Tensor>> weights;
  for (const TunableLinear& l : block.linears()) {
    const auto it = f.weights.find(prefix + "." + l.name);
    if (it != f.weights.end()) weights.emplace_back(l.name, dequantize_grouped_int_weight(it->second));
  }
  block.use_weights(weights);
}

QuantizationConfig write_checkpoint(const std::string& model_dir, const std::string& out_dir,
                                    const SafetensorsCheckpoint& ckpt, const std::vector<QuantizedLinearOutput>& q,
                                    const std::vector<std::string>& skipped, const AutoRoundOptions& opt,
                                    const std::vector<std::string>& block_lists, QuantMethod method,
                                    const std::function<void(const std::string&)>& log) {
  QuantizationConfig cfg;
  cfg.bits = opt.scheme.bits;
  cfg.group_size = opt.scheme.group_size;
  cfg.sym = opt.scheme.sym;
  cfg.block_name_to_quantize = block_lists;
  for (const std::string& s : skipped) cfg.extra_config.push_back(sixteen_bit_entry(s));
  // Tuning values are recorded (to_json drops those equal to the reference defaults).
  cfg.tuning["iters"] = method == QuantMethod::AutoRound ? opt.iters : 0;
  cfg.tuning["nsamples"] = opt.nsamples;
  cfg.tuning["seqlen"] = opt.seqlen;
  cfg.tuning["seed"] = opt.seed;
  if (method == QuantMethod::AutoRound) {
    cfg.tuning["lr"] = opt.effective_lr();
    cfg.tuning["minmax_lr"] = opt.effective_minmax_lr();
    cfg.tuning["batch_size"] = opt.batch_size;
    cfg.tuning["gradient_accumulate_steps"] = opt.grad_accum;
    cfg.tuning["enable_quanted_input"] = opt.enable_quanted_input;
    cfg.tuning["enable_minmax_tuning"] = opt.enable_minmax_tuning;
  }
  if (method == QuantMethod::OptimizedRtn) cfg.tuning["rtn_optimized"] = true;

  std::set<std::string> replaced;  // the quantized Linears' weights and biases are written with them
  for (const QuantizedLinearOutput& o : q) {
    replaced.insert(o.prefix + ".weight");
    replaced.insert(o.prefix + ".bias");
  }
  std::vector<NamedTensor> unchanged;
  for (const std::string& name : ckpt.names())
    if (!replaced.count(name)) unchanged.push_back({name, ckpt.weight(name)});
  ExportOptions eo;
  eo.format = opt.format;
  eo.overwrite = opt.overwrite;
  eo.progress = log;
  return export_quantized_checkpoint(model_dir, out_dir, unchanged, q, cfg, eo);
}


void check_options(const AutoRoundOptions& opt, const std::string& model_dir, const std::string& out_dir) {
  opt.scheme.validate();
  OMNI_CHECK(opt.method != QuantMethod::AutoRound || opt.iters > 0, "AutoRound needs iters > 0, found ", opt.iters,
             " (plain RTN is quantize_rtn_model)");
  OMNI_CHECK(opt.nsamples > 0 && opt.seqlen > 1, "nsamples must be > 0 and seqlen > 1");
  OMNI_CHECK(std::isfinite(opt.lr) && std::isfinite(opt.minmax_lr), "learning rates must be finite, found lr ", opt.lr,
             " and minmax_lr ", opt.minmax_lr);
  OMNI_CHECK(opt.batch_size > 0 && opt.grad_accum > 0, "batch size and gradient accumulation must be positive");
  OMNI_CHECK(opt.batch_size <= opt.nsamples, "--batch-size ", opt.batch_size, " exceeds --nsamples ", opt.nsamples,
             " (a mini-batch is drawn from the calibration samples)");
  // Every calibration token is kept as block inputs; the product is checked without forming it (it can overflow).
  constexpr int64_t kMaxCalibrationTokens = int64_t{1} << 31;
  OMNI_CHECK(opt.nsamples <= kMaxCalibrationTokens / opt.seqlen, "--nsamples ", opt.nsamples, " × --seqlen ",
             opt.seqlen, " calibration tokens exceed the limit of ", kMaxCalibrationTokens,
             " (2^31; real runs use 128 × 2048 = 2^18)");
  OMNI_CHECK(opt.scheme.sym || opt.format == QuantizedCheckpointFormat::AutoGptq,
             "asymmetric quantization is exported in the auto_gptq layout only (use --format auto_gptq)");
  OMNI_CHECK(!read_quantization_config(model_dir).has_value(), model_dir,
             " is already quantized (its config has a quantization_config)");
  check_export_target(out_dir, model_dir, opt.overwrite);
}

// The per-iteration callback of block b: progress with an ETA over all blocks.
std::function<void(int64_t, double, double)> progress_of(const AutoRoundCallbacks& cb, int64_t b, int64_t blocks,
                                                        int64_t iters, Clock::time_point t_start) {
  return [&cb, b, blocks, iters, t_start](int64_t t, double loss, double best) {
    if (!cb.progress) return;
    AutoRoundProgress p;
    p.block = b;
    p.blocks = blocks;
    p.iter = t + 1;
    p.iters = iters;
    p.loss = loss;
    p.best_loss = best;
    p.elapsed_seconds = seconds_since(t_start);
    const double done = static_cast<double>(b) + static_cast<double>(t + 1) / static_cast<double>(iters);
    p.eta_seconds = p.elapsed_seconds / done * (static_cast<double>(blocks) - done);
    cb.progress(p);
  };
}

std::string block_done_line(const BlockTuningReport& r, int64_t blocks, QuantMethod method) {
  char line[256];
  const char* resumed = r.resumed ? " (resumed)" : "";
  if (method == QuantMethod::AutoRound)
    std::snprintf(line, sizeof line, "block %lld/%lld done: loss %.6g -> best %.6g (iter %lld), %.1f s%s",
                  static_cast<long long>(r.block + 1), static_cast<long long>(blocks), r.tuning.initial_loss,
                  r.tuning.best_loss, static_cast<long long>(r.tuning.best_iter), r.seconds, resumed);
  else
    std::snprintf(line, sizeof line, "block %lld/%lld done, %.1f s%s", static_cast<long long>(r.block + 1),
                  static_cast<long long>(blocks), r.seconds, resumed);
  return line;
}

// The two chains of block inputs (§1 step 2): X_fp through the FP blocks and X_q through the frozen quantized
// ones (the same tensors when enable_quanted_input is off).
struct CalibrationChains {
  NamedTensors fp, q;
  bool quanted_input = true;

  CalibrationChains(NamedTensors inputs, bool quanted) : fp(std::move(inputs)), quanted_input(quanted) {
    for (const auto& [name, t] : fp.items()) q.set(name, quanted ? t.clone() : t);
  }
  // Past the block: X_fp ← Y_ref = Block_fp(X_fp) (computed here if the block was resumed, y_ref empty), and
  // X_q ← Block_q(X_q) with the frozen weights.
  void advance(TuningContext& block, const std::string& prefix, const FrozenBlock& frozen, NamedTensors y_ref,
               int64_t batch) {
    if (y_ref.items().empty()) {
      block.refresh_weights(TuningContext::WeightMode::Original);
      y_ref = block_forward_all(block, fp, batch);
    }
    if (quanted_input) {
      use_frozen_weights(block, prefix, frozen);
      q = block_forward_all(block, q, batch);
    }
    fp = std::move(y_ref);
    if (!quanted_input) q = fp;
  }
};

}  // namespace

AutoRoundSummary autoround_quantize(const std::string& model_dir, const std::string& out_dir,
                                    const AutoRoundOptions& opt, const AutoRoundCallbacks& cb, Backend* backend_or_null) {
  Backend& backend = backend_or_null ? *backend_or_null : cpu_backend();
  const auto t_start = Clock::now();
  auto log = [&](const std::string& s) {
    if (cb.log) cb.log(s);
  };
  check_options(opt, model_dir, out_dir);
  const std::unique_ptr<QuantizableModel> model = open_quantizable_model(model_dir);
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(model_dir);
  model->check_checkpoint(ckpt, model_dir);
  const int64_t L = model->num_blocks();
  // transformers runs such lengths too (RoPE extrapolates), so this is a warning: positions past the model's
  // context were never trained, and calibrating on them tunes for text the model does not see.
  if (opt.seqlen > model->max_positions())
    log("warning: --seqlen " + std::to_string(opt.seqlen) + " exceeds the model's max_position_embeddings (" +
        std::to_string(model->max_positions()) + ")");

  BlockStateDir state(out_dir + ".partial", run_fingerprint(opt, model_dir, backend.name()));
  if (opt.resume) {
    state.open_for_resume();
    log("resuming from " + state.dir() + ": " + std::to_string(state.completed_blocks()) + " of " +
        std::to_string(L) + " blocks done");
  } else {
    state.create_fresh();
  }

  // A failed run keeps OUT.partial only when it holds finished blocks that a --resume can reuse, and says so.
  AutoRoundSummary summary;
  try {
    // Sizes come from options, so an allocation failure here is the options' doing: say which (finding 5).
    std::optional<CalibrationChains> chains_or;
    try {
      chains_or.emplace(calibration_inputs(model_dir, ckpt, *model, opt, backend, log), opt.enable_quanted_input);
    } catch (const std::bad_alloc&) {
      OMNI_FAIL("not enough memory for the calibration inputs of --nsamples ", opt.nsamples, " × --seqlen ",
                opt.seqlen, " tokens (block inputs are kept for every token, twice with quantized inputs): lower "
                "--nsamples or --seqlen");
    }
    CalibrationChains& chains = *chains_or;
    const Tensor& first = chains.fp.items().at(0).second;
    summary.calibration_tokens = first.dim(0) * first.dim(1);

    std::vector<QuantizedLinearOutput> quantized;
    for (int64_t b = 0; b < L; ++b) {
      const auto t_block = Clock::now();
      const std::string prefix = model->block_prefix(b);
      const Block& block_def = model->block(b);
      for (const LinearDesc& d : block_def.linears())
        if (!has_quantizable_shape(d.out_features, d.in_features, opt.scheme))
          summary.skipped.push_back(prefix + "." + d.name);
      TuningContext block(
          block_def, prefix, [&](const std::string& name) { return ckpt.weight(name); },
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
        y_ref = block_forward_all(block, chains.fp, opt.batch_size);  // Y_ref = Block_fp(X_fp), also the next X_fp
        try {
          frozen = quantize_block(block, *model, b, opt.method, chains.q, y_ref, chains.fp, opt,
                                  progress_of(cb, b, L, opt.iters, t_start));
        } catch (const Error&) {
          rethrow_with_context("block " + prefix);
        }
        frozen.seconds = seconds_since(t_block);
        state.save_block(b, frozen);
      }
      for (const auto& [name, w] : frozen.weights)
        quantized.push_back({name, w, ckpt.contains(name + ".bias") ? ckpt.tensor(name + ".bias") : Tensor()});
      if (b + 1 < L) chains.advance(block, prefix, frozen, std::move(y_ref), opt.batch_size);

      summary.blocks.push_back({b, frozen.tuning, frozen.seconds, resumed});
      log(block_done_line(summary.blocks.back(), L, opt.method));
    }

    summary.config = write_checkpoint(model_dir, out_dir, ckpt, quantized, summary.skipped, opt, model->block_lists(),
                                      opt.method, log);
  } catch (...) {
    if (state.completed_blocks() > 0)
      log("kept " + state.dir() + " (" + std::to_string(state.completed_blocks()) + " of " + std::to_string(L) +
          " blocks done): the same command with --resume continues from there");
    throw;
  }
  state.remove();
  summary.seconds = seconds_since(t_start);
  return summary;
}

RtnSummary quantize_rtn_model(const std::string& model_dir, const std::string& out_dir, RtnOptions options) {
  const std::unique_ptr<QuantizableModel> model = open_quantizable_model(model_dir);
  model->check_checkpoint(SafetensorsCheckpoint::open_dir(model_dir), model_dir);
  options.block_names = model->block_lists();
  std::set<std::string> names;
  for (int64_t b = 0; b < model->num_blocks(); ++b)
    for (const LinearDesc& d : model->block(b).linears()) names.insert(d.name);
  options.linear_names.assign(names.begin(), names.end());
  return quantize_rtn_checkpoint(model_dir, out_dir, options);
}

}  // namespace omni
