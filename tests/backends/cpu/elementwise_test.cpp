#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backends/cpu/cpu_test_util.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/embedding.h"
#include "backends/cpu/softmax.h"
#include "core/error.h"
#include "core/half.h"

namespace omni {
namespace {

TEST(ElementwiseTest, SiluMulAndAdd) {
  const int64_t n = 100003;  // past the parallel grain, odd
  const auto g = test::random_floats(static_cast<size_t>(n), 61, 8.0f), u = test::random_floats(static_cast<size_t>(n), 62);
  std::vector<float> y(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
  silu_mul_forward(y.data(), g.data(), u.data(), n);
  std::vector<double> ref(static_cast<size_t>(n));
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = g[i] / (1.0 + std::exp(-static_cast<double>(g[i]))) * u[i];
  EXPECT_LT(test::relative_error(y.data(), ref), 1e-6);

  std::vector<float> a = g;
  add_forward(a.data(), a.data(), u.data(), n);  // y aliases a
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = static_cast<double>(g[i]) + u[i];
  EXPECT_LT(test::relative_error(a.data(), ref), 1e-7);
}

TEST(SoftmaxTest, RowsSumToOneAndMatchReference) {
  for (int64_t dim : {1, 5, 1000}) {
    const int64_t rows = 7;
    auto x = test::random_floats(static_cast<size_t>(rows * dim), 71, 30.0f);  // large logits: needs the max shift
    std::vector<double> ref(x.size());
    for (int64_t r = 0; r < rows; ++r) {
      double mx = -INFINITY, sum = 0.0;
      for (int64_t i = 0; i < dim; ++i) mx = std::max(mx, static_cast<double>(x[static_cast<size_t>(r * dim + i)]));
      for (int64_t i = 0; i < dim; ++i) sum += std::exp(x[static_cast<size_t>(r * dim + i)] - mx);
      for (int64_t i = 0; i < dim; ++i) ref[static_cast<size_t>(r * dim + i)] = std::exp(x[static_cast<size_t>(r * dim + i)] - mx) / sum;
    }
    softmax_forward(x.data(), rows, dim);
    EXPECT_LT(test::relative_error(x.data(), ref), 1e-6) << "dim " << dim;
  }
}

TEST(EmbeddingTest, AllTableDtypes) {
  const int64_t V = 37, D = 19;
  const auto table = test::random_floats(static_cast<size_t>(V * D), 81);
  std::vector<uint16_t> tb(table.size()), th(table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    tb[i] = f32_to_bf16(table[i]);
    th[i] = f32_to_f16(table[i]);
  }
  const std::vector<int32_t> ids = {3, 0, 36, 3, 17};
  const int64_t T = static_cast<int64_t>(ids.size());
  std::vector<float> y(static_cast<size_t>(T * D));
  for (DType dt : {DType::F32, DType::BF16, DType::F16}) {
    const void* src = dt == DType::F32 ? static_cast<const void*>(table.data())
                                       : (dt == DType::BF16 ? static_cast<const void*>(tb.data()) : th.data());
    embedding_forward(y.data(), ids.data(), T, src, dt, V, D);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t i = 0; i < D; ++i) {
        const size_t s = static_cast<size_t>(ids[static_cast<size_t>(t)] * D + i);
        const float expect = dt == DType::F32 ? table[s] : (dt == DType::BF16 ? bf16_to_f32(tb[s]) : f16_to_f32(th[s]));
        ASSERT_EQ(y[static_cast<size_t>(t * D + i)], expect) << dtype_name(dt) << " t=" << t << " i=" << i;
      }
  }
  const std::vector<int32_t> bad = {1, 37};
  try {
    embedding_forward(y.data(), bad.data(), 2, table.data(), DType::F32, V, D);
    FAIL() << "out-of-range id accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("token id 37 at position 1"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace omni
