// The training ops of CpuBackend against the f32 kernels they wrap (the same numbers, bit for bit, on random
// non-zero data of odd shapes), and their shape / dtype errors, which must name the op, the argument and what was
// expected and found.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "backends/cpu/attention_backward.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/linear_backward.h"
#include "backends/cpu/masked_mse_loss_backward.h"
#include "backends/cpu/rmsnorm_backward.h"
#include "backends/cpu/rope_backward.h"
#include "backends/cpu/silu_mul_backward.h"

namespace omni {
namespace {

Tensor random_tensor(const Shape& shape, uint32_t seed, float scale = 1.0f) {
  return Tensor::from_f32(test::random_floats(static_cast<size_t>(shape_numel(shape)), seed, scale), shape);
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

// Expects `f` to throw an omni::Error whose message contains every one of `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "\"" << p << "\" not in: " << msg;
  }
}

Backend& be() { return cpu_backend(); }

TEST(CpuBackendTrain, LinearForwardAndBackwardMatchKernels) {
  const int64_t B = 3, T = 5, K = 37, N = 19, M = B * T;
  const Tensor x = random_tensor({B, T, K}, 1), w = random_tensor({N, K}, 2), dy = random_tensor({B, T, N}, 3);
  Tensor y = be().alloc({B, T, N}, DType::F32);
  be().linear_forward_train(y, x, w);
  std::vector<float> y_ref(static_cast<size_t>(M * N));
  linear_forward_train(y_ref.data(), x.data<float>(), w.data<float>(), M, K, N);
  EXPECT_EQ(values(y), y_ref);

  // Accumulating into non-zero buffers, both outputs.
  Tensor dx = random_tensor({B, T, K}, 4), dw = random_tensor({N, K}, 5);
  std::vector<float> dx_ref = values(dx), dw_ref = values(dw);
  be().linear_backward(&dx, &dw, dy, x, w, true, true);
  linear_backward(dx_ref.data(), dw_ref.data(), dy.data<float>(), x.data<float>(), w.data<float>(), M, K, N, true,
                  true);
  EXPECT_EQ(values(dx), dx_ref);
  EXPECT_EQ(values(dw), dw_ref);

  // Overwriting, one output at a time.
  be().linear_backward(&dx, nullptr, dy, x, w, false, false);
  linear_backward(dx_ref.data(), static_cast<float*>(nullptr), dy.data<float>(), x.data<float>(), w.data<float>(),
                  M, K, N, false, false);
  EXPECT_EQ(values(dx), dx_ref);
  be().linear_backward(nullptr, &dw, dy, x, w, false, false);
  linear_backward(static_cast<float*>(nullptr), dw_ref.data(), dy.data<float>(), x.data<float>(), w.data<float>(),
                  M, K, N, false, false);
  EXPECT_EQ(values(dw), dw_ref);
  EXPECT_TRUE(test::all_finite(dw.data<float>(), static_cast<size_t>(dw.numel())));
}

TEST(CpuBackendTrain, LinearShapeErrorsNameExpectedAndFound) {
  const Tensor x = random_tensor({4, 7}, 1), w = random_tensor({3, 7}, 2), dy = random_tensor({4, 3}, 3);
  Tensor y_bad = be().alloc({4, 5}, DType::F32);
  expect_error([&] { be().linear_forward_train(y_bad, x, w); }, {"linear_forward_train", "y expected 4 rows of 3",
                                                                 "[4, 5]"});
  const Tensor x_bad = random_tensor({4, 6}, 4);
  Tensor y = be().alloc({4, 3}, DType::F32);
  expect_error([&] { be().linear_forward_train(y, x_bad, w); }, {"linear_forward_train", "x expected last dim 7",
                                                                 "[4, 6]"});
  const Tensor w_bf16 = w.to(DType::BF16);
  expect_error([&] { be().linear_forward_train(y, x, w_bf16); }, {"w expected dtype F32", "BF16"});
  Tensor dw_bad = be().alloc({7, 3}, DType::F32);
  expect_error([&] { be().linear_backward(nullptr, &dw_bad, dy, x, w, false, false); },
               {"linear_backward", "dw expected shape [3, 7]", "[7, 3]"});
  const Tensor dy_bad = random_tensor({5, 3}, 5);
  expect_error([&] { be().linear_backward(nullptr, nullptr, dy_bad, x, w, false, false); },
               {"linear_backward", "dy expected 4 rows of 3", "[5, 3]"});
}

TEST(CpuBackendTrain, RmsnormForwardAndBackwardMatchKernels) {
  // Per-head layout: rows = B·T·H, dim = hd.
  const int64_t B = 2, T = 3, H = 5, hd = 22, rows = B * T * H;
  const Tensor x = random_tensor({B, T, H, hd}, 11, 2.f), w = random_tensor({hd}, 12);
  const Tensor dy = random_tensor({B, T, H, hd}, 13);
  Tensor y = be().alloc({B, T, H, hd}, DType::F32), rstd = be().alloc({B, T, H}, DType::F32);
  be().rmsnorm_forward_train(y, rstd, x, w, 1e-6f);
  std::vector<float> y_ref(static_cast<size_t>(rows * hd)), rstd_ref(static_cast<size_t>(rows));
  rmsnorm_forward_train(y_ref.data(), rstd_ref.data(), x.data<float>(), w.data<float>(), rows, hd, 1e-6f);
  EXPECT_EQ(values(y), y_ref);
  EXPECT_EQ(values(rstd), rstd_ref);

  Tensor dx = random_tensor({B, T, H, hd}, 14), dwt = random_tensor({hd}, 15);
  std::vector<float> dx_ref = values(dx), dw_ref = values(dwt);
  be().rmsnorm_backward(dx, &dwt, dy, x, w, rstd, true);
  rmsnorm_backward(dx_ref.data(), dw_ref.data(), dy.data<float>(), x.data<float>(), w.data<float>(),
                   rstd_ref.data(), rows, hd, true);
  EXPECT_EQ(values(dx), dx_ref);
  EXPECT_EQ(values(dwt), dw_ref);

  // In place on the gradient (dx aliases dy), no weight gradient.
  Tensor g = dy.clone();
  std::vector<float> g_ref = values(dy);
  be().rmsnorm_backward(g, nullptr, g, x, w, rstd, false);
  rmsnorm_backward(g_ref.data(), static_cast<float*>(nullptr), g_ref.data(), x.data<float>(), w.data<float>(),
                   rstd_ref.data(), rows, hd, false);
  EXPECT_EQ(values(g), g_ref);
}

TEST(CpuBackendTrain, RmsnormShapeErrors) {
  const Tensor x = random_tensor({6, 10}, 1), w = random_tensor({10}, 2);
  Tensor y = be().alloc({6, 10}, DType::F32), rstd = be().alloc({6}, DType::F32);
  Tensor rstd_bad = be().alloc({5}, DType::F32);
  expect_error([&] { be().rmsnorm_forward_train(y, rstd_bad, x, w, 1e-6f); },
               {"rmsnorm_forward_train", "rstd expected 6 entries", "[5]"});
  const Tensor w_bad = random_tensor({9}, 3);
  expect_error([&] { be().rmsnorm_forward_train(y, rstd, x, w_bad, 1e-6f); },
               {"rmsnorm_forward_train", "weight expected shape [10]", "[9]"});
  be().rmsnorm_forward_train(y, rstd, x, w, 1e-6f);
  Tensor dx = be().alloc({6, 10}, DType::F32);
  const Tensor dy_bad = random_tensor({6, 11}, 4);
  expect_error([&] { be().rmsnorm_backward(dx, nullptr, dy_bad, x, w, rstd, false); },
               {"rmsnorm_backward", "dy expected shape [6, 10]", "[6, 11]"});
  Tensor g = random_tensor({6, 10}, 5);
  expect_error([&] { be().rmsnorm_backward(g, nullptr, g, x, w, rstd, true); }, {"may not alias"});
}

TEST(CpuBackendTrain, RopeForwardAndBackwardMatchKernels) {
  const int64_t B = 2, T = 7, H = 3, hd = 18;
  const float theta = 10000.f;
  const RopeTable table = make_rope_table(T, hd, theta);
  Tensor x = random_tensor({B, T, H, hd}, 21);
  std::vector<float> ref = values(x);
  be().rope_forward_train(x, theta);
  rope_forward_train(ref.data(), table, B, T, H, hd);
  EXPECT_EQ(values(x), ref);
  EXPECT_NE(values(x), values(random_tensor({B, T, H, hd}, 21)));  // it did rotate
  be().rope_backward(x, theta);
  rope_backward(ref.data(), table, B, T, H, hd);
  EXPECT_EQ(values(x), ref);

  Tensor x3 = random_tensor({T, H, hd}, 22);
  expect_error([&] { be().rope_forward_train(x3, theta); }, {"rope_forward_train", "4 dims", "[7, 3, 18]"});
  Tensor odd = random_tensor({B, T, H, 9}, 23);
  expect_error([&] { be().rope_backward(odd, theta); }, {"rope_backward", "even", "9"});
}

TEST(CpuBackendTrain, AttentionForwardAndBackwardMatchKernels) {
  const int64_t B = 2, T = 13, Hq = 6, Hkv = 2, hd = 20;
  const Tensor q = random_tensor({B, T, Hq, hd}, 31), k = random_tensor({B, T, Hkv, hd}, 32),
               v = random_tensor({B, T, Hkv, hd}, 33), dout = random_tensor({B, T, Hq, hd}, 34);
  Tensor out = be().alloc({B, T, Hq, hd}, DType::F32), lse = be().alloc({B, T, Hq}, DType::F32);
  be().attention_forward_train(out, lse, q, k, v);
  std::vector<float> out_ref(static_cast<size_t>(out.numel())), lse_ref(static_cast<size_t>(lse.numel()));
  attention_forward_train(out_ref.data(), lse_ref.data(), q.data<float>(), k.data<float>(), v.data<float>(), B, T, Hq,
                          Hkv, hd);
  EXPECT_EQ(values(out), out_ref);
  EXPECT_EQ(values(lse), lse_ref);

  Tensor dq = be().alloc(q.shape(), DType::F32), dk = be().alloc(k.shape(), DType::F32),
         dv = be().alloc(v.shape(), DType::F32);
  be().attention_backward(dq, dk, dv, dout, q, k, v, out, lse);
  std::vector<float> dq_ref(static_cast<size_t>(q.numel())), dk_ref(static_cast<size_t>(k.numel())),
      dv_ref(static_cast<size_t>(v.numel()));
  attention_backward(dq_ref.data(), dk_ref.data(), dv_ref.data(), dout.data<float>(), q.data<float>(),
                     k.data<float>(), v.data<float>(), out_ref.data(), lse_ref.data(), B, T, Hq, Hkv, hd);
  EXPECT_EQ(values(dq), dq_ref);
  EXPECT_EQ(values(dk), dk_ref);
  EXPECT_EQ(values(dv), dv_ref);
  EXPECT_TRUE(test::all_finite(dk.data<float>(), static_cast<size_t>(dk.numel())));
}

TEST(CpuBackendTrain, AttentionShapeErrors) {
  const int64_t B = 1, T = 4, hd = 8;
  const Tensor q = random_tensor({B, T, 3, hd}, 1), k = random_tensor({B, T, 2, hd}, 2);
  const Tensor v = random_tensor({B, T, 2, hd}, 3);
  Tensor out = be().alloc({B, T, 3, hd}, DType::F32), lse = be().alloc({B, T, 3}, DType::F32);
  expect_error([&] { be().attention_forward_train(out, lse, q, k, v); },
               {"attention_forward_train", "query heads (3)", "kv heads (2)"});
  const Tensor q4 = random_tensor({B, T, 4, hd}, 4), k_short = random_tensor({B, T - 1, 2, hd}, 5);
  Tensor out4 = be().alloc({B, T, 4, hd}, DType::F32), lse4 = be().alloc({B, T, 4}, DType::F32);
  expect_error([&] { be().attention_forward_train(out4, lse4, q4, k_short, k_short); },
               {"attention_forward_train", "k expected [1, 4, Hkv, 8]", "[1, 3, 2, 8]"});
  Tensor lse_bad = be().alloc({B, T}, DType::F32);
  expect_error([&] { be().attention_forward_train(out4, lse_bad, q4, k, v); },
               {"lse expected shape [1, 4, 4]", "[1, 4]"});
  be().attention_forward_train(out4, lse4, q4, k, v);
  Tensor dq = be().alloc(q4.shape(), DType::F32), dk = be().alloc(k.shape(), DType::F32),
         dv_bad = be().alloc({B, T, 4, hd}, DType::F32);
  expect_error([&] { be().attention_backward(dq, dk, dv_bad, out4, q4, k, v, out4, lse4); },
               {"attention_backward", "dv expected shape [1, 4, 2, 8]", "[1, 4, 4, 8]"});
}

TEST(CpuBackendTrain, SiluMulBackwardMatchesKernel) {
  const int64_t n = 1001;
  const Tensor gate = random_tensor({7, 143}, 41, 4.f), up = random_tensor({7, 143}, 42);
  const Tensor dy = random_tensor({7, 143}, 43);
  Tensor dg = be().alloc({7, 143}, DType::F32), du = be().alloc({7, 143}, DType::F32);
  be().silu_mul_backward(dg, du, dy, gate, up);
  std::vector<float> dg_ref(static_cast<size_t>(n)), du_ref(static_cast<size_t>(n));
  silu_mul_backward(dg_ref.data(), du_ref.data(), dy.data<float>(), gate.data<float>(), up.data<float>(), n);
  EXPECT_EQ(values(dg), dg_ref);
  EXPECT_EQ(values(du), du_ref);
  // dgate aliasing dy, as the block trainer does.
  Tensor g = dy.clone();
  be().silu_mul_backward(g, du, g, gate, up);
  EXPECT_EQ(values(g), dg_ref);

  Tensor du_bad = be().alloc({143, 7}, DType::F32);
  expect_error([&] { be().silu_mul_backward(dg, du_bad, dy, gate, up); },
               {"silu_mul_backward", "dup expected shape [7, 143]", "[143, 7]"});
}

TEST(CpuBackendTrain, MaskedMseLossMatchesKernels) {
  const int64_t B = 3, T = 9, D = 17, rows = B * T;
  const Tensor y = random_tensor({B, T, D}, 51), ref = random_tensor({B, T, D}, 52);
  const std::vector<uint8_t> mask_v = last_token_mask(B, T);
  Tensor mask = Tensor::empty({rows}, DType::U8);
  std::memcpy(mask.raw(), mask_v.data(), mask_v.size());
  Tensor dy = be().alloc({B, T, D}, DType::F32);
  const double loss = be().masked_mse_loss(y, ref, mask, &dy, 0.5);
  EXPECT_EQ(loss, masked_mse_loss_forward(y.data<float>(), ref.data<float>(), mask_v.data(), rows, D));
  EXPECT_GT(loss, 0.0);
  std::vector<float> dy_ref(static_cast<size_t>(y.numel()));
  masked_mse_loss_backward(dy_ref.data(), y.data<float>(), ref.data<float>(), mask_v.data(), rows, D, 0.5);
  EXPECT_EQ(values(dy), dy_ref);
  EXPECT_EQ(be().masked_mse_loss(y, ref, mask, nullptr, 1.0), loss);  // value only

  const Tensor mask_f32 = Tensor::zeros({rows}, DType::F32);
  expect_error([&] { be().masked_mse_loss(y, ref, mask_f32, nullptr, 1.0); },
               {"masked_mse_loss", "mask expected dtype U8", "F32"});
  const Tensor mask_short = Tensor::zeros({rows - 1}, DType::U8);
  expect_error([&] { be().masked_mse_loss(y, ref, mask_short, nullptr, 1.0); },
               {"mask expected 27 entries", "[26]"});
  const Tensor ref_bad = random_tensor({B, T, D + 1}, 53);
  expect_error([&] { be().masked_mse_loss(y, ref_bad, mask, nullptr, 1.0); },
               {"ref expected shape [3, 9, 17]", "[3, 9, 18]"});
  const Tensor all_masked = Tensor::zeros({rows}, DType::U8);
  EXPECT_THROW(be().masked_mse_loss(y, ref, all_masked, nullptr, 1.0), Error);
}

TEST(CpuBackendTrain, CopyFromCpuCopiesAndChecksSize) {
  const Tensor src = random_tensor({5, 3}, 61);
  Tensor dst = be().alloc({15}, DType::F32);
  be().copy_from_cpu(dst, src);
  EXPECT_EQ(values(dst), values(src));
  Tensor small = be().alloc({14}, DType::F32);
  expect_error([&] { be().copy_from_cpu(small, src); }, {"copy", "same dtype and element count"});
}

}  // namespace
}  // namespace omni
