// The FLUX blocks' backward through the tuning context against PyTorch autograd on diffusers' blocks
// (tools/make_flux_block_grad_fixtures.py, tests/data/flux/block-grads): the training forward's outputs, ∂L/∂img,
// ∂L/∂txt and ∂L/∂W of every Linear for L = Σ R ⊙ out, and finite differences of the whole block in F32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "nn/flux_blocks.h"
#include "pipelines/autoround/tuning_context.h"
#include "support/rel_error.h"

namespace omni {
namespace {

using testing_support::rel_error;

const std::string kFile = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/block-grads/grads.safetensors";

// Measured on the AMD EPYC (AVX2), 2026-12-02: outputs within 1.4e-7 of diffusers, ∂L/∂in within 3.1e-7 and ∂L/∂W
// within 8.8e-7 of autograd (worst: the single block's). Bound 1e-5 (11x); a wrong modulation chunk, a missing
// residual term or a RoPE rotated the wrong way gives errors of 1e-2 and more.
constexpr double kBound = 1e-5;

FluxSpec tiny_spec() {
  FluxSpec s;
  s.num_heads = 2;
  s.head_dim = 8;
  s.axes_dims_rope = {2, 2, 4};
  return s;
}

// The real tuning context, also recording ∂L/∂W of every Linear (the tuner folds it into ∂L/∂V, ∂L/∂alpha,
// ∂L/∂beta and keeps no copy) and how many times each Linear's backward ran.
class RecordingContext : public TuningContext {
 public:
  using TuningContext::TuningContext;
  void linear_backward(std::string_view name, Tensor* dx, const Tensor& dy, const Tensor& x,
                       bool accumulate_dx) override {
    TuningContext::linear_backward(name, dx, dy, x, accumulate_dx);
    const TunableLinear& L = linear(name);
    Tensor dw = Tensor::zeros({L.out_features, L.in_features}, DType::F32);
    backend().linear_backward(nullptr, &dw, dy, x, L.weight_used, false, false);
    grads[std::string(name)] = dw;
    ++calls[std::string(name)];
  }
  std::map<std::string, Tensor> grads;
  std::map<std::string, int> calls;
};

struct Fixture {
  std::shared_ptr<SafetensorsFile> file = SafetensorsFile::open(kFile);
  Tensor get(const std::string& name) const { return file->tensor(name); }
  // The block's inputs as the tuning context takes them: rotary tables per sample [B, L, hd].
  NamedTensors inputs() const {
    NamedTensors in;
    const Tensor img = get("img");
    const int64_t B = img.dim(0);
    in.set("img", img.clone());
    in.set("txt", get("txt").clone());
    in.set("temb", get("temb").clone());
    for (const char* r : {"rope_cos", "rope_sin"}) {
      const Tensor t = get(r).clone();
      in.set(r, t.view({B, t.dim(0) / B, t.dim(1)}));
    }
    return in;
  }
};

std::unique_ptr<RecordingContext> make_context(const Block& block, const std::string& prefix, const Fixture& f) {
  return std::make_unique<RecordingContext>(
      block, prefix, [&](const std::string& n) { return f.get(n); },
      [](const LinearDesc&) { return LinearQuantSpec{false, QuantScheme{}}; }, cpu_backend());
}

double err(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.numel(), want.numel());
  if (got.numel() != want.numel()) return 1e9;
  return rel_error(got.data<float>(), want.data<float>(), want.numel());
}

void check_block(const Block& block, const std::string& prefix) {
  const Fixture f;
  auto ctx = make_context(block, prefix, f);
  const NamedTensors y = ctx->forward(f.inputs(), /*save_activations=*/true);
  for (const char* s : {"img", "txt"}) {
    const double e = err(cpu_backend().download(y.at(s)), f.get(prefix + ".out." + s));
    std::cout << prefix << " out." << s << " " << e << "\n";
    EXPECT_LE(e, kBound) << prefix << " output " << s;
  }
  NamedTensors d_out, d_in;
  d_out.set("img", f.get("dy.img").clone());
  d_out.set("txt", f.get("dy.txt").clone());
  ctx->backward(d_out, &d_in);
  for (const char* s : {"img", "txt"}) {
    const double e = err(cpu_backend().download(d_in.at(s)), f.get(prefix + ".grad." + s));
    std::cout << prefix << " grad." << s << " " << e << "\n";
    EXPECT_LE(e, kBound) << prefix << " dL/d" << s;
  }
  double worst = 0;
  for (const LinearDesc& l : block.linears()) {
    ASSERT_EQ(ctx->calls[l.name], 1) << l.name << ": its backward must run once";
    const double e = err(ctx->grads.at(l.name), f.get(prefix + ".grad." + l.name + ".weight"));
    worst = std::max(worst, e);
    EXPECT_LE(e, kBound) << prefix << " dL/dW of " << l.name;
  }
  std::cout << prefix << " dL/dW of " << block.linears().size() << " Linears: worst " << worst << "\n";
  EXPECT_EQ(ctx->calls.size(), block.linears().size());
}

TEST(FluxBlockGrad, DoubleBlockMatchesAutograd) { check_block(FluxDoubleBlock(tiny_spec()), "double"); }
TEST(FluxBlockGrad, SingleBlockMatchesAutograd) { check_block(FluxSingleBlock(tiny_spec()), "single"); }

// L = Σ R ⊙ out in double over the block's outputs.
double objective(TuningContext& ctx, const NamedTensors& in, const Fixture& f) {
  const NamedTensors y = ctx.forward(in, false);
  double s = 0;
  for (const char* n : {"img", "txt"}) {
    const Tensor o = cpu_backend().download(y.at(n)), r = f.get(std::string("dy.") + n);
    for (int64_t i = 0; i < o.numel(); ++i) s += static_cast<double>(o.data<float>()[i]) * r.data<float>()[i];
  }
  return s;
}

// Central differences in F32 along random unit directions u: (L(p + h u) − L(p − h u)) / 2h against ⟨∂L/∂p, u⟩,
// three directions for each input and each Linear weight. Measured worst |numeric − analytic| = 1.8e-5 ‖∂L/∂p‖ (the
// F32 forwards and the O(h²) term); the bound is 2e-3 ‖∂L/∂p‖ + 2e-4. Returns the worst ratio.
double finite_differences(const Block& block, const std::string& prefix) {
  const Fixture f;
  auto ctx = make_context(block, prefix, f);
  NamedTensors in = f.inputs();
  ctx->forward(in, true);
  NamedTensors d_out, d_in;
  d_out.set("img", f.get("dy.img").clone());
  d_out.set("txt", f.get("dy.txt").clone());
  ctx->backward(d_out, &d_in);
  std::mt19937 rng(5);
  std::normal_distribution<double> normal;
  const double h = 1e-2;
  double worst = 0;
  auto check = [&](Tensor& p, const Tensor& grad, const std::string& what) {
    const std::vector<float> saved(p.data<float>(), p.data<float>() + p.numel());
    double gnorm = 0;
    for (int64_t i = 0; i < p.numel(); ++i) gnorm += static_cast<double>(grad.data<float>()[i]) * grad.data<float>()[i];
    gnorm = std::sqrt(gnorm);
    for (int dir = 0; dir < 3; ++dir) {
      std::vector<double> u(saved.size());
      double un = 0;
      for (double& v : u) {
        v = normal(rng);
        un += v * v;
      }
      for (double& v : u) v /= std::sqrt(un);
      // The step as the F32 parameters hold it (rounded), so the analytic side uses the same direction.
      std::vector<float> plus(u.size()), minus(u.size());
      double analytic = 0;
      for (size_t i = 0; i < u.size(); ++i) {
        plus[i] = static_cast<float>(saved[i] + h * u[i]);
        minus[i] = static_cast<float>(saved[i] - h * u[i]);
        analytic += grad.data<float>()[i] * ((static_cast<double>(plus[i]) - minus[i]) / (2 * h));
      }
      auto at = [&](const std::vector<float>& v) {
        std::memcpy(p.data<float>(), v.data(), v.size() * sizeof(float));
        return objective(*ctx, in, f);
      };
      const double numeric = (at(plus) - at(minus)) / (2 * h);
      std::memcpy(p.data<float>(), saved.data(), saved.size() * sizeof(float));
      EXPECT_NEAR(numeric, analytic, 2e-3 * gnorm + 2e-4) << prefix << " " << what << " direction " << dir;
      worst = std::max(worst, std::abs(numeric - analytic) / std::max(gnorm, 1e-30));
    }
  };
  for (const char* n : {"img", "txt"}) check(in.at(n), cpu_backend().download(d_in.at(n)), std::string("d") + n);
  for (const LinearDesc& l : block.linears()) check(ctx->linear(l.name).weight, ctx->grads.at(l.name), l.name);
  std::cout << prefix << " finite differences: worst |numeric - analytic| / |grad| " << worst << "\n";
  return worst;
}

TEST(FluxBlockGrad, DoubleBlockFiniteDifferences) { finite_differences(FluxDoubleBlock(tiny_spec()), "double"); }
TEST(FluxBlockGrad, SingleBlockFiniteDifferences) { finite_differences(FluxSingleBlock(tiny_spec()), "single"); }

// The FLUX block's saved activations are the tuning context's: a backward without a saving forward is refused,
// and the io shapes must be the forward's.
TEST(FluxBlockGrad, BackwardChecksItsInputs) {
  const Fixture f;
  const FluxDoubleBlock block(tiny_spec());
  auto ctx = make_context(block, "double", f);
  NamedTensors d_out;
  d_out.set("img", f.get("dy.img").clone());
  d_out.set("txt", f.get("dy.txt").clone());
  EXPECT_THROW(ctx->backward(d_out), Error);
  ctx->forward(f.inputs(), true);
  d_out.set("txt", f.get("dy.img").clone());  // the image's shape for the text
  try {
    ctx->backward(d_out);
    FAIL() << "a txt gradient of the image's shape was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"txt\" must be F32"), std::string::npos) << e.what();
  }
  NamedTensors in = f.inputs();
  NamedTensors no_temb;
  for (const auto& [n, t] : in.items())
    if (n != "temb") no_temb.set(n, t);
  try {
    ctx->forward(no_temb, true);
    FAIL() << "a forward without temb was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("conditioning \"temb\" is missing"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni
