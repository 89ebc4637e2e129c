// The CPU backend through the Backend interface: shapes, dtypes, borrowed weights and error messages.
#include "backends/cpu/cpu_backend.h"

#include <gtest/gtest.h>

#include <limits>

#include "backends/cpu/cpu_test_util.h"
#include "core/half.h"

namespace omni {
namespace {

void expect_error_containing(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    FAIL() << "no error; expected one containing: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(CpuBackendTest, LinearWithLeadingDimsAndAllDenseDtypes) {
  Backend& be = cpu_backend();
  EXPECT_EQ(be.name(), "cpu");
  const int64_t K = 40, N = 23;
  const auto wv = test::random_floats(static_cast<size_t>(N * K), 1);
  const auto bv = test::random_floats(static_cast<size_t>(N), 2);
  const auto xv = test::random_floats(static_cast<size_t>(2 * 3 * K), 3);
  const Tensor w32 = Tensor::from_f32(wv, {N, K});
  const Tensor x = Tensor::from_f32(xv, {2, 3, K});
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    LinearWeight lw;
    lw.dense = w32.to(dt);
    lw.bias = Tensor::from_f32(bv, {N}).to(DType::BF16);
    auto prepared = be.prepare_linear(lw);
    EXPECT_EQ(prepared->in_features, K);
    EXPECT_EQ(prepared->out_features, N);
    EXPECT_TRUE(prepared->has_bias);
    if (dt != DType::F16) {  // borrowed, not copied
      EXPECT_EQ(static_cast<const CpuPreparedLinear&>(*prepared).dense.raw(), lw.dense.raw());
    }
    const Tensor wq = lw.dense.to(DType::F32), bq = lw.bias.to(DType::F32);
    std::vector<double> ref(static_cast<size_t>(6 * N));
    for (int64_t m = 0; m < 6; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = bq.data<float>()[n];
        for (int64_t k = 0; k < K; ++k) s += static_cast<double>(xv[static_cast<size_t>(m * K + k)]) * wq.data<float>()[n * K + k];
        ref[static_cast<size_t>(m * N + n)] = s;
      }
    Tensor y = be.alloc({2, 3, N}, DType::F32);
    std::fill(y.data<float>(), y.data<float>() + y.numel(), std::numeric_limits<float>::quiet_NaN());
    be.linear_forward(y, x, *prepared);
    EXPECT_LT(test::relative_error(y.data<float>(), ref), 2e-6);
  }
}

TEST(CpuBackendTest, ErrorsNameExpectedAndFound) {
  Backend& be = cpu_backend();
  LinearWeight lw;
  lw.dense = Tensor::from_f32(test::random_floats(12, 4), {3, 4});
  auto prepared = be.prepare_linear(lw);
  const Tensor x = Tensor::from_f32(test::random_floats(10, 5), {2, 5});
  Tensor y = be.alloc({2, 3}, DType::F32);
  expect_error_containing([&] { be.linear_forward(y, x, *prepared); }, "x expected last dim 4 (in_features), found [2, 5]");
  const Tensor x4 = Tensor::from_f32(test::random_floats(8, 5), {2, 4});
  Tensor y_bad = be.alloc({2, 4}, DType::F32);
  expect_error_containing([&] { be.linear_forward(y_bad, x4, *prepared); }, "y expected 2 rows of 3 (out_features), found [2, 4]");
  LinearWeight li;
  li.dense = Tensor::empty({3, 4}, DType::I32);
  expect_error_containing([&] { be.prepare_linear(li); }, "expected F32, BF16 or F16, found I32");

  Tensor q = be.alloc({1, 3, 6, 8}, DType::F32), k = be.alloc({1, 4, 4, 8}, DType::F32), out = be.alloc({1, 3, 6, 8}, DType::F32);
  expect_error_containing([&] { be.attention_forward(out, q, k, k, 0); }, "must be a multiple of kv heads");
  Tensor k2 = be.alloc({1, 4, 3, 8}, DType::F32);
  expect_error_containing([&] { be.attention_forward(out, q, k2, k2, 2); }, "the cache holds 4 positions, need 5");

  Tensor xn = be.alloc({2, 8}, DType::F32);
  const Tensor wn = be.alloc({7}, DType::F32);
  expect_error_containing([&] { be.rmsnorm_forward(xn, xn, wn, 1e-6f); }, "weight expected [8], found [7]");
  const Tensor ids = Tensor::from_i32(std::vector<int32_t>{1, 2}, {2});
  const Tensor table = be.alloc({5, 8}, DType::BF16);
  Tensor emb = be.alloc({3, 8}, DType::F32);
  expect_error_containing([&] { be.embedding_forward(emb, ids, table); }, "y expected [2, 8], found [3, 8]");
  Tensor a = be.alloc({4}, DType::F32), b16 = be.alloc({4}, DType::BF16);
  expect_error_containing([&] { be.add_forward(a, a, b16); }, "b expected dtype F32, found BF16");
  expect_error_containing([&] { be.copy(a, b16); }, "must have the same dtype and element count");
}

TEST(CpuBackendTest, RopeOnFourDimActivationsAndKvCacheCopy) {
  Backend& be = cpu_backend();
  const int64_t T = 3, H = 2, hd = 8;
  auto xv = test::random_floats(static_cast<size_t>(T * H * hd), 7);
  Tensor x = Tensor::from_f32(xv, {1, T, H, hd});
  const Tensor pos = Tensor::from_i32(std::vector<int32_t>{4, 5, 6}, {T});
  be.rope_forward(x, pos, 10000.0f);
  Tensor x3 = Tensor::from_f32(xv, {T, H, hd});
  be.rope_forward(x3, pos, 10000.0f);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(x.data<float>()[i], x3.data<float>()[i]);
  EXPECT_NE(x.data<float>()[0], xv[0]);

  // Writing new keys into rows [2, 5) of a cache [1, S_max, Hkv, hd] through a view of a row slice.
  Tensor cache = Tensor::zeros({1, 8, H, hd}, DType::F32);
  Tensor rows = cache.view({8, H, hd}).slice_rows(2, 5);
  be.copy(rows, x);
  for (int64_t i = 0; i < x.numel(); ++i) ASSERT_EQ(cache.data<float>()[2 * H * hd + i], x.data<float>()[i]);
  EXPECT_EQ(cache.data<float>()[2 * H * hd - 1], 0.0f);
  EXPECT_EQ(cache.data<float>()[5 * H * hd], 0.0f);

  const Tensor back = be.to_cpu(be.alloc({2}, DType::F32));
  EXPECT_EQ(back.dtype(), DType::F32);
}

}  // namespace
}  // namespace omni
