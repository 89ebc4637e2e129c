#include "pipelines/autoround/block_tuner.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace omni {

BatchSampler::BatchSampler(int64_t samples, int64_t batch_size, uint64_t seed) : rng_(seed), batch_(batch_size) {
  OMNI_CHECK(batch_size > 0 && samples >= batch_size, "batch size ", batch_size, " exceeds the ", samples,
             " calibration samples");
  order_.resize(static_cast<size_t>(samples));
  for (int64_t i = 0; i < samples; ++i) order_[static_cast<size_t>(i)] = i;
  shuffle(order_, rng_);
}

std::vector<int64_t> BatchSampler::next() {
  if (pos_ + batch_ > static_cast<int64_t>(order_.size())) {
    shuffle(order_, rng_);
    pos_ = 0;
  }
  std::vector<int64_t> out(order_.begin() + pos_, order_.begin() + pos_ + batch_);
  pos_ += batch_;
  return out;
}

Tensor gather_samples(const Tensor& all, const std::vector<int64_t>& idx) {
  const int64_t row = all.numel() / all.dim(0);
  Shape shape = all.shape();
  shape[0] = static_cast<int64_t>(idx.size());
  Tensor out = Tensor::empty(shape, DType::F32);
  for (size_t i = 0; i < idx.size(); ++i)
    std::memcpy(out.data<float>() + static_cast<int64_t>(i) * row, all.data<float>() + idx[i] * row,
                static_cast<size_t>(row) * sizeof(float));
  return out;
}

NamedTensors gather_samples(const NamedTensors& all, const std::vector<int64_t>& idx) {
  NamedTensors out;
  for (const auto& [name, t] : all.items()) out.set(name, gather_samples(t, idx));
  return out;
}

namespace {

// Samples b0..b1−1 of the block's io and conditioning tensors in `all` (those it holds).
NamedTensors sample_range(const Block& block, const NamedTensors& all, int64_t b0, int64_t b1) {
  NamedTensors x;
  for (const std::string& name : block.io_names()) x.set(name, all.at(name).slice_rows(b0, b1));
  for (const std::string& name : block.conditioning_names())
    if (all.contains(name)) x.set(name, all.at(name).slice_rows(b0, b1));
  return x;
}

}  // namespace

NamedTensors block_forward_all(TuningContext& ctx, const NamedTensors& inputs, int64_t batch) {
  const std::vector<std::string> names = ctx.block().io_names();
  const int64_t n = inputs.at(names.at(0)).dim(0);
  NamedTensors out;
  for (const std::string& name : names) out.set(name, Tensor::empty(inputs.at(name).shape(), DType::F32));
  for (int64_t b0 = 0; b0 < n; b0 += batch) {
    const int64_t b1 = std::min(n, b0 + batch);
    const NamedTensors x = sample_range(ctx.block(), inputs, b0, b1);
    const NamedTensors y = ctx.forward(x, /*save_activations=*/false);
    for (const std::string& name : names) {
      const Tensor yt = ctx.backend().download(y.at(name));
      std::memcpy(out.at(name).slice_rows(b0, b1).raw(), yt.raw(), yt.nbytes());
    }
  }
  return out;
}

namespace {

// The best V/alpha/beta so far, in backend buffers allocated once per block.
class Snapshot {
 public:
  explicit Snapshot(TuningContext& ctx) : be_(ctx.backend()) {
    for (const TunableLinear& l : ctx.linears()) {
      if (!l.spec.quantize) continue;
      for (const Tensor* t : {&l.v, &l.alpha, &l.beta}) saved_.push_back(be_.alloc(t->shape(), DType::F32));
    }
  }
  void take(TuningContext& ctx) { copy(ctx, /*save=*/true); }
  void restore(TuningContext& ctx) { copy(ctx, /*save=*/false); }

 private:
  void copy(TuningContext& ctx, bool save) {
    size_t i = 0;
    for (TunableLinear& l : ctx.linears()) {
      if (!l.spec.quantize) continue;
      for (Tensor* t : {&l.v, &l.alpha, &l.beta}) {
        Tensor& s = saved_[i++];
        if (save)
          be_.copy(s, *t);
        else
          be_.copy(*t, s);
      }
    }
  }
  Backend& be_;
  std::vector<Tensor> saved_;
};

}  // namespace

BlockTuningResult tune_block(TuningContext& ctx, const NamedTensors& inputs, const NamedTensors& targets,
                             const std::function<std::vector<uint8_t>(int64_t, int64_t)>& mask_of,
                             const AutoRoundOptions& opt, uint64_t seed,
                             const std::function<void(int64_t, double, double)>& on_iter) {
  const std::vector<std::string> names = ctx.block().io_names();
  for (const std::string& name : names)
    OMNI_CHECK(inputs.at(name).shape() == targets.at(name).shape(), "tune_block: inputs ",
               shape_str(inputs.at(name).shape()), " vs targets ", shape_str(targets.at(name).shape()), " of \"",
               name, "\"");
  const Tensor& first = inputs.at(names.at(0));
  Backend& be = ctx.backend();
  // The loss runs on the backend: masks, targets and gradients live there (calibration data stays on the host and
  // each micro-batch is uploaded). One mask per output: their token counts may differ (FLUX's image and text).
  NamedTensors masks;
  for (const std::string& name : names) {
    const int64_t T = inputs.at(name).dim(1);
    const std::vector<uint8_t> mask_v = mask_of(opt.batch_size, T);
    OMNI_CHECK(static_cast<int64_t>(mask_v.size()) == opt.batch_size * T, "tune_block: the loss mask of \"", name,
               "\" has ", mask_v.size(), " rows, expected ", opt.batch_size * T);
    Tensor m = Tensor::empty({opt.batch_size * T}, DType::U8);
    std::memcpy(m.raw(), mask_v.data(), mask_v.size());
    masks.set(name, be.upload(m));
  }
  BatchSampler sampler(first.dim(0), opt.batch_size, seed);
  const double lr = opt.effective_lr(), minmax_lr = opt.effective_minmax_lr();

  BlockTuningResult r;
  r.best_loss = std::numeric_limits<double>::infinity();
  Snapshot best(ctx);
  NamedTensors dy;
  for (const std::string& name : names) {
    Shape s = inputs.at(name).shape();
    s[0] = opt.batch_size;
    dy.set(name, be.alloc(s, DType::F32));
  }
  for (int64_t t = 0; t < opt.iters; ++t) {
    ctx.refresh_weights(TuningContext::WeightMode::FakeQuant);  // clamps alpha/beta, Ŵ from V/alpha/beta
    ctx.zero_grads();
    double loss = 0;
    for (int64_t a = 0; a < opt.grad_accum; ++a) {
      const std::vector<int64_t> idx = sampler.next();
      const NamedTensors x = gather_samples(inputs, idx), ref = gather_samples(targets, idx);
      const NamedTensors y = ctx.forward(x, /*save_activations=*/true);
      // Each micro-batch contributes 1/grad_accum of the mean, so accumulated gradients are the batch mean's.
      for (const std::string& name : names)
        loss += be.masked_mse_loss(y.at(name), be.upload(ref.at(name)), masks.at(name), &dy.at(name),
                                   1.0 / static_cast<double>(opt.grad_accum));
      ctx.backward(dy);
    }
    loss /= static_cast<double>(opt.grad_accum);
    OMNI_CHECK(std::isfinite(loss), "the block loss is ", loss, " at iteration ", t,
               ": the block's weights or its inputs hold NaN or Inf");
    if (t == 0) r.initial_loss = loss;
    if (loss < r.best_loss) {  // snapshot before the update: these parameters produced this loss
      r.best_loss = loss;
      r.best_iter = t;
      best.take(ctx);
    }
    const double decay = 1.0 - static_cast<double>(t) / static_cast<double>(opt.iters);
    const auto lr_t = static_cast<float>(lr * decay), mm_t = static_cast<float>(minmax_lr * decay);
    for (TunableLinear& l : ctx.linears()) {
      if (!l.spec.quantize) continue;
      be.sign_step(l.v, l.grad_v, lr_t);
      if (opt.enable_minmax_tuning) {
        be.sign_step(l.alpha, l.grad_alpha, mm_t);
        be.sign_step(l.beta, l.grad_beta, mm_t);
      }
    }
    if (on_iter) on_iter(t, loss, r.best_loss);
  }
  if (opt.iters > 0) best.restore(ctx);
  return r;
}

std::vector<std::vector<float>> collect_linear_importance(TuningContext& ctx, const NamedTensors& inputs,
                                                          int64_t batch_size) {
  ctx.refresh_weights(TuningContext::WeightMode::Original);
  std::vector<std::vector<double>> sums;
  for (const TunableLinear& l : ctx.linears()) sums.emplace_back(static_cast<size_t>(l.in_features), 0.0);
  const std::vector<std::string> names = ctx.block().io_names();
  const int64_t n = inputs.at(names.at(0)).dim(0);
  // Rows per Linear: a decoder's Linears all read the B·T tokens, a FLUX block's adaLN Linears one row per sample.
  std::vector<int64_t> tokens(sums.size(), 0);
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    const int64_t b1 = std::min(n, b0 + batch_size);
    ctx.forward(sample_range(ctx.block(), inputs, b0, b1), /*save_activations=*/true);
    for (size_t i = 0; i < sums.size(); ++i) {
      const Tensor xt = ctx.linear_input(ctx.linears()[i].name);
      const float* xp = xt.data<float>();
      const auto K = static_cast<int64_t>(sums[i].size());
      const int64_t rows = xt.numel() / K;
      tokens[i] += rows;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t k = 0; k < K; ++k) {
          const double v = xp[r * K + k];
          sums[i][static_cast<size_t>(k)] += v * v;
        }
    }
  }
  std::vector<std::vector<float>> imp;
  for (size_t i = 0; i < sums.size(); ++i) {
    const std::vector<double>& s = sums[i];
    std::vector<float> m(s.size());
    for (size_t k = 0; k < s.size(); ++k) m[k] = static_cast<float>(s[k] / static_cast<double>(tokens[i]));
    imp.push_back(std::move(m));
  }
  return imp;
}

}  // namespace omni
