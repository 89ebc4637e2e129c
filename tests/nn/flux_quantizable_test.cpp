// The tuner's view of the FLUX transformer (nn/flux_quantizable.h) on the tiny pipeline's transformer: double
// blocks first, then single ones, with the checkpoint's prefixes; every row in the loss; calibration refused
// (it comes from the denoising loop); and a checkpoint that disagrees with the config refused naming the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "io/safetensors.h"
#include "nn/flux_quantizable.h"
#include "support/error_of.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/tiny-pipeline/transformer";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/flux_quantizable_test.tmp";
constexpr const char* kStem = "diffusion_pytorch_model";

// tiny-pipeline/transformer/config.json (nn tests do not link the config reader of models/).
FluxSpec tiny_spec() {
  FluxSpec s;
  s.num_heads = 2;
  s.head_dim = 16;
  s.num_layers = 2;
  s.num_single_layers = 2;
  s.joint_attention_dim = 24;
  s.pooled_projection_dim = 20;
  s.axes_dims_rope = {4, 6, 6};
  return s;
}

// The tiny checkpoint rewritten without `drop` and with `extra` (a copy of the first tensor) added.
std::string variant(const std::string& name, const std::string& drop, const std::string& extra) {
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(kDir, kStem);
  std::vector<NamedTensor> tensors;
  for (const std::string& n : ck.names())
    if (n != drop) tensors.push_back({n, ck.tensor(n).clone()});
  if (!extra.empty()) tensors.push_back({extra, tensors.front().tensor});
  const std::string dir = kTmp + "/" + name;
  fs::create_directories(dir);
  write_safetensors(dir + "/" + kStem + ".safetensors", tensors);
  return dir;
}

TEST(FluxQuantizable, BlocksInForwardOrderWithCheckpointPrefixes) {
  const auto m = make_flux_quantizable(tiny_spec());
  EXPECT_EQ(m->architecture(), "FluxTransformer2DModel");
  EXPECT_EQ(m->block_lists(), (std::vector<std::string>{"transformer_blocks", "single_transformer_blocks"}));
  ASSERT_EQ(m->num_blocks(), 4);
  EXPECT_EQ(m->block_prefix(0), "transformer_blocks.0");
  EXPECT_EQ(m->block_prefix(1), "transformer_blocks.1");
  EXPECT_EQ(m->block_prefix(2), "single_transformer_blocks.0");
  EXPECT_EQ(m->block_prefix(3), "single_transformer_blocks.1");
  // Double blocks: both streams' adaLN, attention and MLP Linears (14); single blocks 6 (40 in all, as RTN counts).
  EXPECT_EQ(m->block(0).linears().size(), 14u);
  EXPECT_EQ(m->block(1).linears().front().name, "norm1.linear");
  EXPECT_EQ(m->block(3).linears().size(), 6u);
  EXPECT_EQ(m->block(2).linears().back().name, "proj_out");
  EXPECT_NE(testing_support::error_of([&] { m->block(4); }).find("out of range"), std::string::npos);
  EXPECT_EQ(m->loss_mask(2, 3), std::vector<uint8_t>(6, 1));
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(kDir, kStem);
  m->check_checkpoint(ck, kDir);  // the tiny checkpoint matches its config
  EXPECT_NE(testing_support::error_of([&] { m->calibration_inputs(ck, {{1, 2}}, cpu_backend()); })
                .find("denoising loop"),
            std::string::npos);
}

TEST(FluxQuantizable, CheckpointThatDisagreesWithTheConfigIsRefused) {
  fs::remove_all(kTmp);
  const auto m = make_flux_quantizable(tiny_spec());
  const std::string missing = variant("missing", "single_transformer_blocks.1.proj_out.weight", "");
  EXPECT_NE(testing_support::error_of([&] {
              m->check_checkpoint(SafetensorsCheckpoint::open_dir(missing, kStem), missing);
            }).find("tensor \"single_transformer_blocks.1.proj_out.weight\" is missing"),
            std::string::npos);
  const std::string stray = variant("stray", "", "transformer_blocks.2.attn.to_q.weight");
  EXPECT_NE(testing_support::error_of([&] {
              m->check_checkpoint(SafetensorsCheckpoint::open_dir(stray, kStem), stray);
            }).find("\"transformer_blocks.2.attn.to_q.weight\" belongs to no block"),
            std::string::npos);
}

}  // namespace
}  // namespace omni
