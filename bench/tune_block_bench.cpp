// Runs the C++ AutoRound tuner on ONE block from a directory made by tools/make_block_tuning_input.py
// (config.json; block.safetensors with model.layers.0.* weights, x_q [n, T, D], y_ref [n, T, D]) and prints
// JSON in the shape tools/autoround_reference.py prints, so the two can be compared on the same block, data and
// sample order (issue 3, item 8):
//   tune_block_bench DIR [--iters 200] [--batch-size 8] [--grad-accum 1] [--seed 42] [--lr X] [--threads N]
// or, with no Python-made input (CI's smoke run), on block 0 of a model directory and its calibration.txt, the
// inputs computed here (embedding, then the FP block for y_ref):
//   tune_block_bench --from-model MODEL_DIR [--nsamples 8] [--seqlen 64] [other options as above]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <iostream>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "io/tokenizers/tokenizer.h"
#include "models/registry.h"
#include "pipelines/autoround/block_tuner.h"
#include "pipelines/calibration_samples.h"
#include "pipelines/text_dataset.h"

using namespace omni;

namespace {

// Mean masked MSE over all samples, in chunks (what the reference calls the full-set loss).
double full_set_loss(TuningContext& block, const QuantizableModel& model, const Tensor& x, const Tensor& y_ref,
                     int64_t chunk) {
  double sum = 0;
  int64_t chunks = 0;
  for (int64_t b0 = 0; b0 < x.dim(0); b0 += chunk) {
    const int64_t b1 = std::min(x.dim(0), b0 + chunk);
    NamedTensors in;
    in.set("hidden", x.slice_rows(b0, b1));
    const Tensor y = block.forward(in, false).at("hidden");
    std::vector<uint8_t> mask = model.loss_mask(b1 - b0, x.dim(1));
    const Tensor m = Tensor::borrow(mask.data(), {(b1 - b0) * x.dim(1)}, DType::U8, nullptr);
    sum += cpu_backend().masked_mse_loss(y, y_ref.slice_rows(b0, b1), m, nullptr, 1.0) * static_cast<double>(b1 - b0);
    chunks += b1 - b0;
  }
  return sum / static_cast<double>(chunks);
}

// Block 0's weights, inputs and FP outputs.
struct BlockInput {
  std::function<Tensor(const std::string&)> weight;
  Tensor x, y_ref;
};

BlockInput from_input_dir(const std::string& dir, std::shared_ptr<SafetensorsFile>& keep) {
  keep = SafetensorsFile::open(dir + "/block.safetensors");
  SafetensorsFile* file = keep.get();
  return {[file](const std::string& n) { return file->tensor(n); }, file->tensor("x_q").clone(),
          file->tensor("y_ref").clone()};
}

BlockInput from_model(const std::string& dir, const QuantizableModel& model, const SafetensorsCheckpoint& ckpt,
                      int64_t nsamples, int64_t seqlen, const AutoRoundOptions& opt) {
  const Tokenizer tokenizer = Tokenizer::from_dir(dir);
  const auto samples = build_calibration_samples(tokenizer, read_text_dataset(dir + "/calibration.txt"), nsamples,
                                                 seqlen, opt.seed, CalibrationPolicy::Concat);
  BlockInput in;
  in.weight = [&ckpt](const std::string& n) { return ckpt.weight(n); };
  in.x = model.calibration_inputs(ckpt, samples, cpu_backend()).at("hidden");
  TuningContext fp(
      model.block(0), model.block_prefix(0), in.weight, [](const LinearDesc&) { return LinearQuantSpec{false, {}}; },
      cpu_backend());
  fp.refresh_weights(TuningContext::WeightMode::Original);
  NamedTensors xs;
  xs.set("hidden", in.x);
  in.y_ref = fp.forward(xs, false).at("hidden").clone();
  return in;
}

}  // namespace

int main(int argc, char** argv) {
  const bool own_input = argc >= 3 && std::strcmp(argv[1], "--from-model") == 0;
  if (argc < 2 || (std::strcmp(argv[1], "--from-model") == 0 && !own_input)) {
    std::cerr << "usage: tune_block_bench DIR|--from-model MODEL_DIR [--nsamples N] [--seqlen T] [--iters N] "
                 "[--batch-size B] [--grad-accum A] [--seed S] [--lr X] [--threads N]\n";
    return 2;
  }
  const std::string dir = own_input ? argv[2] : argv[1];
  AutoRoundOptions opt;
  int threads = 0;
  int64_t nsamples = 8, seqlen = 64;
  for (int i = own_input ? 3 : 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--iters") opt.iters = std::atoll(v);
    else if (own_input && k == "--nsamples") nsamples = std::atoll(v);
    else if (own_input && k == "--seqlen") seqlen = std::atoll(v);
    else if (k == "--batch-size") opt.batch_size = std::atoll(v);
    else if (k == "--grad-accum") opt.grad_accum = std::atoll(v);
    else if (k == "--seed") opt.seed = std::strtoull(v, nullptr, 10);
    else if (k == "--lr") opt.lr = std::atof(v);
    else if (k == "--threads") threads = std::atoi(v);
    else {
      std::cerr << "unknown option " << k << "\n";
      return 2;
    }
  }
  try {
    set_num_threads(threads);
    const auto model = open_quantizable_model(dir);
    std::shared_ptr<SafetensorsFile> input_file;
    std::optional<SafetensorsCheckpoint> ckpt;
    if (own_input) ckpt.emplace(SafetensorsCheckpoint::open_dir(dir));
    const BlockInput input =
        own_input ? from_model(dir, *model, *ckpt, nsamples, seqlen, opt) : from_input_dir(dir, input_file);
    const Tensor& x = input.x;
    const Tensor& y_ref = input.y_ref;
    TuningContext block(
        model->block(0), model->block_prefix(0), input.weight,
        [&](const LinearDesc&) { return LinearQuantSpec{true, opt.scheme}; }, cpu_backend());
    block.refresh_weights(TuningContext::WeightMode::FakeQuant);
    const double rtn_loss = full_set_loss(block, *model, x, y_ref, 8);
    const auto t0 = std::chrono::steady_clock::now();
    double final_loss = 0;
    NamedTensors xs, ys;
    xs.set("hidden", x);
    ys.set("hidden", y_ref);
    const BlockTuningResult r =
        tune_block(block, xs, ys, [&](int64_t B, int64_t T) { return model->loss_mask(B, T); }, opt, opt.seed,
                   [&](int64_t, double loss, double) { final_loss = loss; });
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    block.refresh_weights(TuningContext::WeightMode::FakeQuant);  // the best snapshot
    const double best_full = full_set_loss(block, *model, x, y_ref, 8);
    std::printf(
        "{\n  \"implementation\": \"omniround C++\",\n  \"iters\": %lld,\n  \"batch_size\": %lld,\n"
        "  \"initial_loss\": %.8g,\n  \"best_loss\": %.8g,\n  \"best_iter\": %lld,\n  \"final_loss\": %.8g,\n"
        "  \"fullset_loss_rtn\": %.8g,\n  \"fullset_loss_best\": %.8g,\n  \"wall_s\": %.3f,\n  \"s_per_iter\": %.4f,\n"
        "  \"threads\": %d\n}\n",
        static_cast<long long>(opt.iters), static_cast<long long>(opt.batch_size), r.initial_loss, r.best_loss,
        static_cast<long long>(r.best_iter), final_loss, rtn_loss, best_full, wall,
        wall / static_cast<double>(opt.iters), num_threads());
  } catch (const std::exception& e) {
    std::cerr << "tune_block_bench: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
