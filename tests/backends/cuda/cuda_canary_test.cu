// Runs on a GPU machine; where there is no GPU it reports a skip (CI compiles it, the GPU machine runs it).
#include <gtest/gtest.h>

#include <vector>

#include "backends/cuda/cuda_runtime_info.h"
#include "core/half.h"

namespace omni {
namespace {

TEST(CudaCanary, Bf16ToF32MatchesCpu) {
  if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine";
  std::vector<uint16_t> in(100003);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint16_t>((i * 2654435761u) >> 7);
  std::vector<float> out(in.size(), -7.0f);
  cuda::bf16_to_f32_on_device(in.data(), out.data(), static_cast<int64_t>(in.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    const float want = bf16_to_f32(in[i]);
    if (want != want) {
      EXPECT_NE(out[i], out[i]) << i;  // NaN stays NaN
    } else {
      ASSERT_EQ(out[i], want) << "element " << i;
    }
  }
}

}  // namespace
}  // namespace omni
