// The shipped models/tiny-flux (tools/train_tiny_flux.py) through our C++ against diffusers, with the fixture
// tests/data/flux/tiny-flux-model/golden.safetensors (phase "fixture" of the same script): the text encoders on
// the tokenizers' ids give diffusers' embeddings; FluxPipeline::open on the folder, given those embeddings and
// the packed noise, makes diffusers' image (32 x 32, 12 steps, true CFG 4 with the empty negative prompt); the
// classifier/ folder scores images as the PyTorch classifier does, and sees a sneaker in the sneaker prompt's image;
// the Fréchet distance on its features is the script's (torch, float64).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "models/text_encoders/text_encoders.h"
#include "nn/flux_transformer.h"
#include "nn/vae_decoder.h"
#include "pipelines/diffusion/flux_pipeline.h"
#include "pipelines/diffusion/frechet_distance.h"
#include "pipelines/diffusion/image_classifier.h"
#include "support/error_of.h"
#include "support/rel_error.h"

namespace omni {
namespace {

namespace fs = std::filesystem;
const std::string kModel = std::string(OMNI_SOURCE_DIR) + "/models/tiny-flux";
const std::string kGolden = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/tiny-flux-model/golden.safetensors";
const std::string kTmp = std::string(OMNI_BINARY_DIR) + "/tiny_flux_model_test.tmp";
// Measured on the AMD EPYC, 2026-12-02 (f32 on the same BF16 weights as diffusers): embeddings within 4e-7
// relative, final latents 1.0e-6, the image identical, the classifier's outputs within 3e-7. Bounds about 20x
// those; the image MAE <= 1 and max <= 2 (a rounding step or two where CFG 4 amplifies f32 differences).
constexpr double kLatentBound = 2e-5, kEmbedBound = 1e-5, kClassifierBound = 1e-5;

double rel(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.numel(), want.numel());
  const Tensor g = got.to(DType::F32), w = want.to(DType::F32);
  return testing_support::rel_error(g.data<float>(), w.data<float>(), w.numel());
}

RgbImage image_of(const Tensor& u8, int64_t index) {  // U8 [N, H, W, 3] -> image `index`
  const int64_t h = u8.dim(1), w = u8.dim(2), n = h * w * 3;
  const uint8_t* p = u8.data<uint8_t>() + index * n;
  return RgbImage{w, h, std::vector<uint8_t>(p, p + n)};
}

class TinyFluxModel : public ::testing::Test {
 protected:
  void SetUp() override { golden_ = SafetensorsFile::open(kGolden); }
  std::shared_ptr<SafetensorsFile> golden_;
};

TEST_F(TinyFluxModel, TextEncodersOnTheTokenIdsGiveDiffusersEmbeddings) {
  auto clip = open_clip_text_encoder(kModel + "/text_encoder", cpu_backend());
  auto t5 = open_t5_encoder(kModel + "/text_encoder_2", cpu_backend());
  for (const std::string prefix : {"", "negative_"}) {
    const Tensor clip_ids = golden_->tensor(prefix + "clip_input_ids"), t5_ids = golden_->tensor(prefix + "t5_input_ids");
    const ClipTextOutput c = clip->forward(clip_ids.view({1, clip_ids.dim(0)}));
    const Tensor seq = t5->forward(t5_ids.view({1, t5_ids.dim(0)}));
    const double ep = rel(c.pooler_output, golden_->tensor(prefix + "pooled"));
    const double es = rel(seq, golden_->tensor(prefix + "prompt_embeds"));
    std::cout << (prefix.empty() ? "prompt" : "negative") << ": CLIP pooled rel. error " << ep
              << ", T5 sequence rel. error " << es << "\n";
    EXPECT_LE(ep, kEmbedBound);
    EXPECT_LE(es, kEmbedBound);
  }
}

TEST_F(TinyFluxModel, PipelineMakesDiffusersImage) {
  auto pipe = FluxPipeline::open(kModel, cpu_backend());
  EXPECT_EQ(pipe->transformer().spec().in_channels, 64);
  EXPECT_FALSE(pipe->transformer().spec().guidance_embeds);
  EXPECT_EQ(pipe->vae().spec().scale_factor(), 4);
  FluxSampling s;
  s.width = s.height = 32;
  s.steps = 12;
  s.true_cfg_scale = 4.0f;
  const FluxPromptEmbeds prompt{golden_->tensor("prompt_embeds"), golden_->tensor("pooled")};
  const FluxPromptEmbeds negative{golden_->tensor("negative_prompt_embeds"), golden_->tensor("negative_pooled")};
  const Tensor final_latents = pipe->denoise(s, prompt, &negative, golden_->tensor("latents"));
  const double e = rel(final_latents, golden_->tensor("final_latents"));
  std::cout << "final latents rel. error " << e << "\n";
  EXPECT_LE(e, kLatentBound);

  const RgbImage img = pipe->decode(s, final_latents);
  const Tensor want = golden_->tensor("image");
  ASSERT_EQ(img.width, 32);
  ASSERT_EQ(img.height, 32);
  ASSERT_EQ(static_cast<int64_t>(img.pixels.size()), want.numel());
  double abs_sum = 0;
  int max_abs = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const int d = std::abs(int{img.pixels[static_cast<size_t>(i)]} - int{want.data<uint8_t>()[i]});
    abs_sum += d;
    max_abs = std::max(max_abs, d);
  }
  const double mae = abs_sum / static_cast<double>(want.numel());
  std::cout << "image: MAE " << mae << ", max " << max_abs << "\n";
  EXPECT_LE(mae, 1.0);
  EXPECT_LE(max_abs, 2);

  // What our pipeline made, the classifier reads as the class the prompt asked for.
  auto clf = ImageClassifier::open(kModel + "/classifier", cpu_backend());
  const ImageClassification c = clf->classify(img);
  std::cout << "classifier: " << clf->label_name(c.label) << " (p " << c.probabilities[c.label] << ")\n";
  EXPECT_EQ(clf->label_name(c.label), "sneaker");
}

TEST_F(TinyFluxModel, ClassifierMatchesPyTorch) {
  auto clf = ImageClassifier::open(kModel + "/classifier", cpu_backend());
  EXPECT_EQ(clf->image_size(), 32);
  EXPECT_EQ(clf->hidden_size(), 256);
  ASSERT_EQ(clf->labels().size(), 10u);
  EXPECT_EQ(clf->labels()[9], "ankle boot");
  const Tensor images = golden_->tensor("classifier_images");
  const Tensor probs = golden_->tensor("classifier_probs"), feats = golden_->tensor("classifier_features");
  std::vector<RgbImage> imgs;
  for (int64_t i = 0; i < images.dim(0); ++i) imgs.push_back(image_of(images, i));
  std::vector<const RgbImage*> ptrs;
  for (const RgbImage& im : imgs) ptrs.push_back(&im);
  const std::vector<ImageClassification> got = clf->classify(ptrs);
  ASSERT_EQ(static_cast<int64_t>(got.size()), images.dim(0));
  for (int64_t i = 0; i < images.dim(0); ++i) {
    const ImageClassification& c = got[static_cast<size_t>(i)];
    const double ep = testing_support::rel_error(c.probabilities.data(), probs.data<float>() + i * 10, 10);
    const double ef = testing_support::rel_error(c.features.data(), feats.data<float>() + i * 256, 256);
    int64_t want_label = 0;
    for (int64_t k = 1; k < 10; ++k)
      if (probs.data<float>()[i * 10 + k] > probs.data<float>()[i * 10 + want_label]) want_label = k;
    std::cout << "image " << i << ": " << clf->label_name(c.label) << ", probabilities rel. error " << ep
              << ", features " << ef << "\n";
    EXPECT_LE(ep, kClassifierBound) << i;
    EXPECT_LE(ef, kClassifierBound) << i;
    EXPECT_EQ(c.label, want_label) << i;
  }
  // The same image alone gives the same answer as in the batch.
  const ImageClassification one = clf->classify(imgs[2]);
  EXPECT_EQ(one.features, got[2].features);
}

std::vector<std::vector<float>> rows_of(const Tensor& t) {
  std::vector<std::vector<float>> rows;
  for (int64_t i = 0; i < t.dim(0); ++i) rows.emplace_back(t.data<float>() + i * t.dim(1), t.data<float>() + (i + 1) * t.dim(1));
  return rows;
}

TEST_F(TinyFluxModel, FrechetDistanceMatchesTheScript) {
  // 64 and 48 feature vectors of 256 values: singular covariances, as small evaluation sets give.
  const auto a = rows_of(golden_->tensor("frechet_a")), b = rows_of(golden_->tensor("frechet_b"));
  const double want = golden_->tensor("frechet").data<double>()[0];
  const double got = frechet_distance(a, b);
  const double self = frechet_distance(a, a);
  auto shifted = a;  // moving every vector by δ adds |δ|² (0.25), up to the same rounding
  for (auto& row : shifted) row[3] += 0.5f;
  const double moved = frechet_distance(a, shifted);
  std::cout << "Fréchet distance " << got << " (script " << want << ", difference " << got - want << "); a vs a "
            << self << ", a vs a moved by 0.5 " << moved << "\n";
  // The square roots of the rounding-level eigenvalues of a singular covariance (rank 63 of 256 here) leave
  // ~1e-4 in any float64 evaluation of the formula, torch's included; 1e-3 bounds it.
  EXPECT_NEAR(got, want, 1e-3);
  EXPECT_NEAR(frechet_distance(b, a), want, 1e-3);  // symmetric
  EXPECT_NEAR(self, 0.0, 1e-3);
  EXPECT_NEAR(moved, 0.25, 1e-3);
  EXPECT_NE(testing_support::error_of([&] { frechet_distance({a[0]}, b); }).find("at least 2 vectors"), std::string::npos);
  auto ragged = b;
  ragged[5].pop_back();
  EXPECT_NE(testing_support::error_of([&] { frechet_distance(a, ragged); }).find("vector 5 of set b has 255"),
            std::string::npos);
}

TEST_F(TinyFluxModel, ClassifierRefusesBadInputNamingIt) {
  auto clf = ImageClassifier::open(kModel + "/classifier", cpu_backend());
  RgbImage small{16, 16, std::vector<uint8_t>(16 * 16 * 3, 7)};
  std::string e = testing_support::error_of([&] { clf->classify(small); });
  EXPECT_NE(e.find("image 0 is 16x16"), std::string::npos) << e;

  fs::remove_all(kTmp);
  fs::create_directories(kTmp);
  fs::copy(kModel + "/classifier/model.safetensors", kTmp + "/model.safetensors");
  const nlohmann::json config = read_json_file(kModel + "/classifier/config.json");
  auto with = [&](const char* key, const nlohmann::json& value) {
    nlohmann::json j = config;
    j[key] = value;
    std::ofstream(kTmp + "/config.json") << j.dump();
    return testing_support::error_of([&] { ImageClassifier::open(kTmp, cpu_backend()); });
  };
  e = with("model_type", "resnet");
  EXPECT_NE(e.find("\"model_type\" is \"resnet\""), std::string::npos) << e;
  e = with("hidden_size", 128);
  EXPECT_NE(e.find("fc1.weight\" has shape [256, 1024]"), std::string::npos) << e;
  e = with("in_features", 1000);
  EXPECT_NE(e.find("\"in_features\" (1000)"), std::string::npos) << e;
  e = with("labels", nlohmann::json::array({"a", "b"}));
  EXPECT_NE(e.find("\"labels\" must list num_classes (10)"), std::string::npos) << e;
  e = with("layers", nlohmann::json::array({"fc1", "relu", "fc2"}));
  EXPECT_NE(e.find("\"layers\""), std::string::npos) << e;
  fs::remove(kTmp + "/model.safetensors");
  e = with("model_type", "omniround_mlp_classifier");
  EXPECT_NE(e.find("no model.safetensors"), std::string::npos) << e;
}

}  // namespace
}  // namespace omni
