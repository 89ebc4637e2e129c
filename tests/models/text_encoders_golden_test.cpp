// FLUX's two text encoders against transformers 5.17 (tools/make_text_encoder_fixtures.py): small random
// CLIPTextModel and T5EncoderModel with the real structure and tensor names, BF16 weights, float32 on both sides,
// ids padded after the EOS as FluxPipeline pads them, no attention mask. Checked, by relative L2 error: the
// embeddings, every layer's output, last_hidden_state, CLIP's pooled output under both pooling rules, T5's
// relative position buckets and bias (exactly); then the layouts the loaders accept (CLIP names without
// "text_model.", T5 sharded with the tied embedding alias) and what they refuse, each error naming the file,
// tensor or field.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <fstream>
#include <iostream>
#include <string>
#include <unistd.h>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "models/text_encoders/text_encoders.h"
#include "support/error_of.h"
#include "support/rel_error.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
using testing_support::expect_error_containing;

const std::string kClip = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/tiny-clip";
const std::string kT5 = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/tiny-t5";
// f32 against f32 on the same BF16 weights; the measured errors are printed: at most 3.9e-7 (T5 block 1), CLIP
// at most 2.4e-7, the embeddings exact. The bound leaves a margin of about 8x over them, while a wrong scale,
// mask, activation or bucket gives errors of order 1e-2 to 1.
constexpr double kBound = 3e-6;
// BF16 activations (one rounding per op output) against the f32 reference: measured 4.8e-3 (CLIP), 7.2e-3 (T5).
constexpr double kBf16Bound = 3e-2;

double rel(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  if (got.shape() != want.shape()) return 1e9;
  return testing_support::rel_error(got.data<float>(), want.data<float>(), want.numel());
}

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("omni_text_encoders_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// A copy of `src_dir`'s config.json, edited by `edit`, in `dst_dir`.
void write_config(const std::string& src_dir, const std::string& dst_dir,
                  const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json j = read_json_file(src_dir + "/config.json");
  edit(j);
  std::ofstream(dst_dir + "/config.json") << j.dump(2);
}

// The tensors of a checkpoint, renamed by `rename` (an empty name drops the tensor), plus `extra`.
std::vector<NamedTensor> renamed(const SafetensorsCheckpoint& ck,
                                 const std::function<std::string(const std::string&)>& rename,
                                 std::vector<NamedTensor> extra = {}) {
  std::vector<NamedTensor> out;
  for (const std::string& name : ck.names()) {
    const std::string to = rename(name);
    if (!to.empty()) out.push_back({to, ck.tensor(name)});
  }
  for (NamedTensor& t : extra) out.push_back(std::move(t));
  return out;
}

// ---- CLIP ----

class ClipGolden : public ::testing::Test {
 protected:
  void SetUp() override { golden_ = SafetensorsFile::open(kClip + "/golden.safetensors"); }
  std::shared_ptr<SafetensorsFile> golden_;
};

TEST_F(ClipGolden, EveryLayerLastHiddenStateAndPooledOutputMatchTransformers) {
  auto model = open_clip_text_encoder(kClip + "/text_encoder", cpu_backend());
  EXPECT_EQ(model->spec().num_layers, 2);
  EXPECT_TRUE(model->spec().legacy_pooling());  // FLUX's config: eos_token_id 2
  TextEncoderTrace trace;
  const ClipTextOutput out = model->forward(golden_->tensor("input_ids"), &trace);
  const double ee = rel(trace.embeddings, golden_->tensor("embeddings"));
  std::cout << "CLIP embeddings " << ee << "\n";
  EXPECT_LE(ee, kBound);
  ASSERT_EQ(trace.layers.size(), 2u);
  for (size_t i = 0; i < trace.layers.size(); ++i) {
    const double e = rel(trace.layers[i], golden_->tensor("layer" + std::to_string(i)));
    std::cout << "CLIP layer " << i << " " << e << "\n";
    EXPECT_LE(e, kBound) << "layer " << i;
  }
  const double eh = rel(out.last_hidden_state, golden_->tensor("last_hidden_state"));
  const double ep = rel(out.pooler_output, golden_->tensor("pooler_output"));
  std::cout << "CLIP last_hidden_state " << eh << ", pooler_output (argmax rule) " << ep << "\n";
  EXPECT_LE(eh, kBound);
  EXPECT_LE(ep, kBound);
}

// Config eos_token_id 497 (not the largest id; pads of 499 follow it): the first-match rule, where argmax would
// take the first pad.
TEST_F(ClipGolden, FirstEosPoolingMatchesTransformers) {
  ClipTextSpec spec = read_clip_text_config(kClip + "/text_encoder");
  spec.eos_token_id = 497;
  auto model = ClipTextEncoder::open(kClip + "/text_encoder", spec, cpu_backend());
  const ClipTextOutput out = model->forward(golden_->tensor("eos_input_ids"));
  const double e = rel(out.pooler_output, golden_->tensor("eos_pooler_output"));
  std::cout << "CLIP pooler_output (first-eos rule) " << e << "\n";
  EXPECT_LE(e, kBound);
}

TEST_F(ClipGolden, Bf16ActivationsStayClose) {
  CpuBackend bf16(DType::BF16);
  auto model = open_clip_text_encoder(kClip + "/text_encoder", bf16);
  const ClipTextOutput out = model->forward(golden_->tensor("input_ids"));
  const double eh = rel(out.last_hidden_state, golden_->tensor("last_hidden_state"));
  const double ep = rel(out.pooler_output, golden_->tensor("pooler_output"));
  std::cout << "CLIP BF16 activations: last_hidden_state " << eh << ", pooler_output " << ep << "\n";
  EXPECT_LE(eh, kBf16Bound);
  EXPECT_LE(ep, kBf16Bound);
}

TEST(ClipPooling, LegacyRuleTakesTheFirstLargestIdAndTheEosRuleTheFirstEos) {
  ClipTextSpec s;
  s.vocab_size = 500;
  const std::vector<int32_t> ids = {498, 7, 499, 499, 499,  // padded with eos: the first eos
                                    498, 5, 497, 3, 2};     // no 499: the largest id (the bos here)
  const Tensor t = Tensor::from_i32(ids, {2, 5});
  s.eos_token_id = 2;
  EXPECT_EQ(ClipTextEncoder::pooled_positions(s, t), (std::vector<int64_t>{2, 0}));
  s.eos_token_id = 497;
  expect_error_containing([&] { ClipTextEncoder::pooled_positions(s, t); }, {"sample 0", "eos_token_id 497"});
  s.eos_token_id = 7;
  const Tensor u = Tensor::from_i32(std::vector<int32_t>{498, 9, 7, 499, 7}, {1, 5});
  EXPECT_EQ(ClipTextEncoder::pooled_positions(s, u), (std::vector<int64_t>{2}));
}

// transformers 5 writes the names without "text_model."; older checkpoints (FLUX's) have it. Same numbers.
TEST_F(ClipGolden, CheckpointWithoutTheTextModelPrefixLoads) {
  TempDir dir;
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(kClip + "/text_encoder");
  write_safetensors(dir.str() + "/model.safetensors", renamed(ck, [](const std::string& n) {
                      if (n == "text_model.embeddings.position_ids") return std::string();
                      return n.substr(std::string("text_model.").size());
                    }));
  write_config(kClip + "/text_encoder", dir.str(), [](nlohmann::json&) {});
  auto a = open_clip_text_encoder(kClip + "/text_encoder", cpu_backend());
  auto b = open_clip_text_encoder(dir.str(), cpu_backend());
  const Tensor ids = golden_->tensor("input_ids");
  EXPECT_EQ(rel(b->forward(ids).last_hidden_state, a->forward(ids).last_hidden_state), 0.0);
}

TEST_F(ClipGolden, BadInputIsRefusedNamingIt) {
  auto model = open_clip_text_encoder(kClip + "/text_encoder", cpu_backend());
  expect_error_containing([&] { model->forward(Tensor::from_i32(std::vector<int32_t>{498, 500, 499}, {1, 3})); },
                          {"input_ids[0, 1] = 500", "vocabulary of 500"});
  std::vector<int32_t> long_ids(78, 499);
  expect_error_containing([&] { model->forward(Tensor::from_i32(long_ids, {1, 78})); },
                          {"78 tokens", "max_position_embeddings"});
  expect_error_containing([&] { model->forward(Tensor::from_f32(std::vector<float>{1, 2}, {1, 2})); },
                          {"input_ids expected I32 or I64"});
}

TEST(ClipConfig, UnsupportedValuesAreRefusedNamingFileAndField) {
  const std::string src = kClip + "/text_encoder";
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& j) { j["hidden_act"] = "gelu"; }, {"\"hidden_act\"", "gelu", "quick_gelu"}},
      {[](nlohmann::json& j) { j["architectures"] = {"CLIPTextModelWithProjection"}; }, {"\"architectures\""}},
      {[](nlohmann::json& j) { j["model_type"] = "clip"; }, {"\"model_type\"", "clip_text_model"}},
      {[](nlohmann::json& j) { j["num_attention_heads"] = 5; }, {"\"hidden_size\"", "num_attention_heads"}},
      {[](nlohmann::json& j) { j.erase("vocab_size"); }, {"\"vocab_size\""}},
      {[](nlohmann::json& j) { j["eos_token_id"] = {2, 3}; }, {"\"eos_token_id\"", "one token id"}},
  };
  for (const Case& c : cases) {
    TempDir dir;
    write_config(src, dir.str(), c.edit);
    std::vector<std::string> parts = c.expect;
    parts.push_back(dir.str() + "/config.json");
    expect_error_containing([&] { read_clip_text_config(dir.str()); }, parts);
  }
}

TEST(ClipCheckpoint, ExtraOrMisshapenTensorsAreRefusedNamingThem) {
  const std::string src = kClip + "/text_encoder";
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(src);
  {
    TempDir dir;
    write_config(src, dir.str(), [](nlohmann::json&) {});
    write_safetensors(dir.str() + "/model.safetensors",
                      renamed(ck, [](const std::string& n) { return n; },
                              {{"text_projection.weight", Tensor::zeros({32, 32}, DType::BF16)}}));
    expect_error_containing([&] { open_clip_text_encoder(dir.str(), cpu_backend()); },
                            {"text_projection.weight", "does not use"});
  }
  {
    TempDir dir;
    write_config(src, dir.str(), [](nlohmann::json& j) { j["intermediate_size"] = 64; });
    write_safetensors(dir.str() + "/model.safetensors", renamed(ck, [](const std::string& n) { return n; }));
    expect_error_containing([&] { open_clip_text_encoder(dir.str(), cpu_backend()); },
                            {"text_model.encoder.layers.0.mlp.fc1.weight", "[80, 32]", "[64, 32]"});
  }
}

// ---- T5 ----

class T5Golden : public ::testing::Test {
 protected:
  void SetUp() override { golden_ = SafetensorsFile::open(kT5 + "/golden.safetensors"); }
  std::shared_ptr<SafetensorsFile> golden_;
};

TEST_F(T5Golden, RelativePositionBucketsMatchTransformersExactly) {
  const Tensor want = golden_->tensor("buckets");
  ASSERT_EQ(want.numel(), 1201);
  int mismatches = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const int64_t rel_pos = i - 600;
    const int64_t got = t5_relative_position_bucket(rel_pos, 32, 128);
    if (got != want.data<int32_t>()[i] && ++mismatches < 5)
      ADD_FAILURE() << "rel " << rel_pos << ": bucket " << got << ", transformers " << want.data<int32_t>()[i];
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_F(T5Golden, PositionBiasMatchesTransformersExactly) {
  auto model = open_t5_encoder(kT5 + "/text_encoder_2", cpu_backend());
  const Tensor want = golden_->tensor("position_bias");
  const Tensor got = model->position_bias(want.dim(1));
  EXPECT_EQ(rel(got, want), 0.0);
}

TEST_F(T5Golden, EveryBlockAndLastHiddenStateMatchTransformers) {
  auto model = open_t5_encoder(kT5 + "/text_encoder_2", cpu_backend());
  EXPECT_EQ(model->spec().inner_dim(), 48);
  EXPECT_EQ(model->spec().d_model, 32);
  TextEncoderTrace trace;
  const Tensor out = model->forward(golden_->tensor("input_ids"), &trace);
  const double ee = rel(trace.embeddings, golden_->tensor("embeddings"));
  std::cout << "T5 embeddings " << ee << "\n";
  EXPECT_LE(ee, kBound);
  ASSERT_EQ(trace.layers.size(), 2u);
  for (size_t i = 0; i < trace.layers.size(); ++i) {
    const double e = rel(trace.layers[i], golden_->tensor("layer" + std::to_string(i)));
    std::cout << "T5 block " << i << " " << e << "\n";
    EXPECT_LE(e, kBound) << "block " << i;
  }
  const double eh = rel(out, golden_->tensor("last_hidden_state"));
  std::cout << "T5 last_hidden_state " << eh << "\n";
  EXPECT_LE(eh, kBound);
}

TEST_F(T5Golden, Bf16ActivationsStayClose) {
  CpuBackend bf16(DType::BF16);
  auto model = open_t5_encoder(kT5 + "/text_encoder_2", bf16);
  const double e = rel(model->forward(golden_->tensor("input_ids")), golden_->tensor("last_hidden_state"));
  std::cout << "T5 BF16 activations: last_hidden_state " << e << "\n";
  EXPECT_LE(e, kBf16Bound);
}

// Sharded (model.safetensors.index.json), with the embedding under its tied alias only: the same numbers.
TEST_F(T5Golden, ShardedCheckpointWithTheTiedAliasLoads) {
  TempDir dir;
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(kT5 + "/text_encoder_2");
  const auto files = write_safetensors_sharded(
      dir.str(),
      renamed(ck, [](const std::string& n) { return n == "shared.weight" ? "encoder.embed_tokens.weight" : n; }),
      /*max_shard_bytes=*/40'000);
  EXPECT_GT(files.size(), 2u);  // shards and the index
  write_config(kT5 + "/text_encoder_2", dir.str(), [](nlohmann::json&) {});
  auto a = open_t5_encoder(kT5 + "/text_encoder_2", cpu_backend());
  auto b = open_t5_encoder(dir.str(), cpu_backend());
  const Tensor ids = golden_->tensor("input_ids");
  EXPECT_EQ(rel(b->forward(ids), a->forward(ids)), 0.0);
}

TEST(T5Checkpoint, DifferingAliasAndExtraTensorsAreRefusedNamingThem) {
  const std::string src = kT5 + "/text_encoder_2";
  const SafetensorsCheckpoint ck = SafetensorsCheckpoint::open_dir(src);
  {
    TempDir dir;
    write_config(src, dir.str(), [](nlohmann::json&) {});
    write_safetensors(dir.str() + "/model.safetensors",
                      renamed(ck, [](const std::string& n) { return n; },
                              {{"encoder.embed_tokens.weight", Tensor::zeros({300, 32}, DType::BF16)}}));
    expect_error_containing([&] { open_t5_encoder(dir.str(), cpu_backend()); },
                            {"\"shared.weight\" and \"encoder.embed_tokens.weight\" differ"});
  }
  {  // a relative bias in block 1 (UMT5's layout)
    TempDir dir;
    write_config(src, dir.str(), [](nlohmann::json&) {});
    write_safetensors(dir.str() + "/model.safetensors",
                      renamed(ck, [](const std::string& n) { return n; },
                              {{"encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight",
                                Tensor::zeros({32, 4}, DType::BF16)}}));
    expect_error_containing([&] { open_t5_encoder(dir.str(), cpu_backend()); },
                            {"encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight", "does not use"});
  }
  {
    TempDir dir;
    write_config(src, dir.str(), [](nlohmann::json&) {});
    write_safetensors(dir.str() + "/model.safetensors",
                      renamed(ck, [](const std::string& n) { return n == "shared.weight" ? std::string() : n; }));
    expect_error_containing([&] { open_t5_encoder(dir.str(), cpu_backend()); },
                            {"shared.weight", "encoder.embed_tokens.weight", "token embedding"});
  }
}

TEST_F(T5Golden, BadInputIsRefusedNamingIt) {
  auto model = open_t5_encoder(kT5 + "/text_encoder_2", cpu_backend());
  expect_error_containing([&] { model->forward(Tensor::from_i32(std::vector<int32_t>{5, -1, 1}, {1, 3})); },
                          {"T5 encoder", "input_ids[0, 1] = -1"});
  expect_error_containing([&] { model->forward(Tensor::from_i32(std::vector<int32_t>{5, 6}, {2})); },
                          {"input_ids expected [B, L]"});
}

TEST(T5Config, UnsupportedValuesAreRefusedNamingFileAndField) {
  const std::string src = kT5 + "/text_encoder_2";
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::vector<std::string> expect;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& j) { j["feed_forward_proj"] = "relu"; }, {"\"feed_forward_proj\"", "relu", "gated-gelu"}},
      {[](nlohmann::json& j) { j.erase("feed_forward_proj"); }, {"\"feed_forward_proj\"", "absent"}},
      {[](nlohmann::json& j) { j["architectures"] = {"T5ForConditionalGeneration"}; }, {"\"architectures\""}},
      {[](nlohmann::json& j) { j["model_type"] = "umt5"; }, {"\"model_type\"", "umt5"}},
      {[](nlohmann::json& j) { j["relative_attention_num_buckets"] = 2; }, {"\"relative_attention_num_buckets\""}},
      {[](nlohmann::json& j) { j["relative_attention_max_distance"] = 8; }, {"\"relative_attention_max_distance\""}},
      {[](nlohmann::json& j) { j["d_kv"] = 0; }, {"\"d_kv\"", "positive"}},
  };
  for (const Case& c : cases) {
    TempDir dir;
    write_config(src, dir.str(), c.edit);
    std::vector<std::string> parts = c.expect;
    parts.push_back(dir.str() + "/config.json");
    expect_error_containing([&] { read_t5_encoder_config(dir.str()); }, parts);
  }
}

}  // namespace
}  // namespace omni
