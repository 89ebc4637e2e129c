// The backends' fake-quant ops against quant/, the reference that freezes the checkpoint (quantize_matrix,
// fake_quantize, fake_quant_backward): bit for bit, so that what AutoRound tunes on a backend is what it writes.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "quant/qdq.h"
#include "quant/qdq_grad.h"

namespace omni {
namespace {

std::vector<float> normal(size_t n, float mean, float std, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(mean, std);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> host(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

TEST(FakeQuantOps, CpuBackendEqualsQuantReferenceBitForBit) {
  Backend& be = cpu_backend();
  const QuantScheme schemes[] = {{4, 128, true}, {4, 32, false}, {3, 64, true}, {2, 32, false}, {8, -1, true}};
  uint32_t seed = 7;
  for (const QuantScheme& sc : schemes) {
    const int64_t N = 48, K = 256, G = sc.num_groups_for(K);
    const std::vector<float> w = normal(N * K, 0.f, 0.03f, seed++), v = normal(N * K, 0.f, 0.3f, seed++);
    const std::vector<float> a = normal(N * G, 0.9f, 0.2f, seed++), b = normal(N * G, 0.9f, 0.2f, seed++);
    const std::vector<float> g = normal(N * K, 0.f, 1.f, seed++);
    const Tensor tw = Tensor::from_f32(w, {N, K}), tv = Tensor::from_f32(v, {N, K});
    const Tensor ta = Tensor::from_f32(a, {N, G}), tb = Tensor::from_f32(b, {N, G}), tg = Tensor::from_f32(g, {N, K});
    const QdqParams p{v.data(), a.data(), b.data()};

    Tensor w_hat = Tensor::empty({N, K}, DType::F32);
    be.fake_quant(w_hat, tw, tv, ta, tb, sc);
    EXPECT_EQ(host(w_hat), fake_quantize(w.data(), N, K, sc, p)) << "bits " << sc.bits << " sym " << sc.sym;

    Tensor gv = Tensor::zeros({N, K}, DType::F32), ga = Tensor::zeros({N, G}, DType::F32);
    Tensor gb = Tensor::zeros({N, G}, DType::F32);
    be.fake_quant_backward(gv, ga, gb, tg, tw, tv, ta, tb, sc);
    std::vector<float> rv(static_cast<size_t>(N * K), 0.f), ra(static_cast<size_t>(N * G), 0.f), rb = ra;
    fake_quant_backward(w.data(), N, K, sc, p, g.data(), rv.data(), ra.data(), rb.data());
    EXPECT_EQ(host(gv), rv) << "grad_v, bits " << sc.bits;
    EXPECT_EQ(host(ga), ra) << "grad_alpha, bits " << sc.bits;
    EXPECT_EQ(host(gb), rb) << "grad_beta, bits " << sc.bits;
    double nonzero = 0;
    for (float x : rv) nonzero += x != 0.f;
    EXPECT_GT(nonzero, 0.5 * static_cast<double>(rv.size()));  // the comparison is not of zeros
  }
}

TEST(FakeQuantOps, ShapesAreCheckedNamingTheOp) {
  Backend& be = cpu_backend();
  const QuantScheme sc{4, 32, true};
  Tensor w = Tensor::zeros({4, 64}, DType::F32), v = Tensor::zeros({4, 64}, DType::F32);
  Tensor a = Tensor::zeros({4, 3}, DType::F32), b = Tensor::zeros({4, 2}, DType::F32);
  Tensor out = Tensor::empty({4, 64}, DType::F32);
  try {
    be.fake_quant(out, w, v, a, b, sc);
    ADD_FAILURE() << "accepted alpha [4, 3] for 2 groups";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fake_quant: alpha expected shape [4, 2]"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni
