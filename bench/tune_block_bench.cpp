// Runs the C++ AutoRound tuner on ONE block from a directory made by tools/make_block_tuning_input.py
// (config.json; block.safetensors with model.layers.0.* weights, x_q [n, T, D], y_ref [n, T, D]) and prints
// JSON in the shape tools/autoround_reference.py prints, so the two can be compared on the same block, data and
// sample order (issue 3, item 8):
//   tune_block_bench DIR [--iters 200] [--batch-size 8] [--grad-accum 1] [--seed 42] [--lr X] [--threads N]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "pipelines/autoround/block_tuner.h"

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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: tune_block_bench DIR [--iters N] [--batch-size B] [--grad-accum A] [--seed S] [--lr X] "
                 "[--threads N]\n";
    return 2;
  }
  const std::string dir = argv[1];
  AutoRoundOptions opt;
  int threads = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--iters") opt.iters = std::atoll(v);
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
    const auto file = SafetensorsFile::open(dir + "/block.safetensors");
    const Tensor x = file->tensor("x_q").clone(), y_ref = file->tensor("y_ref").clone();
    TuningContext block(
        model->block(0), model->block_prefix(0), [&](const std::string& n) { return file->tensor(n); },
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
