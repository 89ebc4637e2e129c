// FLUX's decode path against diffusers (tools/make_flux_pipeline_fixtures.py): the 2x2 latent packing and img_ids
// against FluxPipeline's _pack_latents / _unpack_latents / _prepare_latent_image_ids, and the AutoencoderKL decoder
// (a small random VAE with FLUX's structure: 4 up blocks 24 -> 24 -> 16 -> 8 with conv_shortcuts and upsamplers,
// mid-block attention, BF16 weights) on float32 against vae.decode, then the uint8 post-processing against
// image_processor.postprocess. Also: the legacy attention names, and the errors for bad checkpoints and configs.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "models/flux/flux_latents.h"
#include "models/vae/autoencoder_kl.h"

namespace omni {
namespace {

namespace fs = std::filesystem;

const std::string kDir = std::string(OMNI_SOURCE_DIR) + "/tests/data/flux/pipeline";
const std::string kVae = kDir + "/vae";

// Measured on this fixture (f32 both sides, same BF16 weights; printed below): 2.3e-7 after conv_in, 3.0e-7 after
// the mid block, 4.9e-7 after up_blocks.0, 1.1e-6 for the image. The bound leaves a 9x margin over the largest;
// a wrong group split, a transposed token layout, a missing shortcut or an off-by-one padding each give errors of
// order 1e-1 or more.
constexpr double kF32Bound = 1e-5;
// BF16 activations (every op's output rounded, some 60 ops deep) against the f32 reference: measured 1.1e-2.
constexpr double kBf16Bound = 3e-2;

double rel_error(const Tensor& got, const Tensor& want) {
  EXPECT_EQ(got.shape(), want.shape());
  if (got.shape() != want.shape()) return 1e9;
  const Tensor g = got.to(DType::F32), w = want.to(DType::F32);
  double num = 0, den = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double d = static_cast<double>(g.data<float>()[i]) - w.data<float>()[i];
    num += d * d;
    den += static_cast<double>(w.data<float>()[i]) * w.data<float>()[i];
  }
  return std::sqrt(num / den);
}

bool identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class FluxDecodeGolden : public ::testing::Test {
 protected:
  void SetUp() override { golden_ = SafetensorsFile::open(kDir + "/golden.safetensors"); }
  Tensor g(const char* name) const { return golden_->tensor(name); }
  std::shared_ptr<SafetensorsFile> golden_;
};

TEST_F(FluxDecodeGolden, PackingMatchesThePipeline) {
  const Tensor unpacked = g("pack_unpacked");  // [1, 16, 8, 10]
  EXPECT_TRUE(identical(pack_flux_latents(unpacked), g("pack_packed")));
  EXPECT_TRUE(identical(unpack_flux_latents(g("pack_packed"), 8, 10), unpacked));
  EXPECT_TRUE(identical(flux_latent_image_ids(8, 10), g("pack_img_ids")));
  // The decode input: final latents of a 48 x 32 image (6 x 4 latents, vae_scale_factor 8).
  EXPECT_EQ(flux_latent_size(48, 8), 6);
  EXPECT_EQ(flux_latent_size(32, 8), 4);
  EXPECT_EQ(flux_latent_size(1000, 8), 124);  // floored to whole 2x2 patches, as the pipeline does
  EXPECT_TRUE(identical(unpack_flux_latents(g("vae_packed"), 6, 4), g("vae_unpacked")));
}

TEST_F(FluxDecodeGolden, OddOrMismatchedLatentSizesAreRefused) {
  const Tensor odd = Tensor::empty({1, 16, 5, 4}, DType::F32);
  EXPECT_NE(error_of([&] { pack_flux_latents(odd); }).find("must be positive and even (2x2 patches), found 5 x 4"),
            std::string::npos);
  EXPECT_NE(error_of([&] { unpack_flux_latents(g("vae_packed"), 6, 3); }).find("found 6 x 3"), std::string::npos);
  EXPECT_NE(error_of([&] { unpack_flux_latents(g("vae_packed"), 4, 4); }).find("expected host latents [B, 4 tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { flux_latent_size(8, 8); }).find("smaller than one 2x2 patch"), std::string::npos);
}

TEST_F(FluxDecodeGolden, ConfigIsReadAsDiffusersReadsIt) {
  const VaeDecoderSpec s = read_autoencoder_kl_config(kVae);
  EXPECT_EQ(s.block_out_channels, (std::vector<int64_t>{8, 16, 24, 24}));
  EXPECT_EQ(s.layers_per_block, 2);
  EXPECT_EQ(s.latent_channels, 16);
  EXPECT_EQ(s.out_channels, 3);
  EXPECT_EQ(s.norm_num_groups, 4);
  EXPECT_TRUE(s.mid_block_add_attention);
  EXPECT_EQ(s.scaling_factor, 0.3611);
  EXPECT_EQ(s.shift_factor, 0.1159);
  EXPECT_EQ(s.scale_factor(), 8);
}

TEST_F(FluxDecodeGolden, DecoderMatchesDiffusers) {
  auto vae = open_vae_decoder(kVae, cpu_backend());
  const Tensor z = vae->scale_latents(g("vae_unpacked"));
  const double ez = rel_error(z, g("vae_z"));
  EXPECT_TRUE(identical(z, g("vae_z"))) << "latent scaling differs from torch's f32 division: " << ez;
  VaeTrace trace;
  const Tensor image = vae->decode(g("vae_z"), &trace);
  const double e_in = rel_error(trace.conv_in, g("vae_conv_in")), e_mid = rel_error(trace.mid_block, g("vae_mid"));
  ASSERT_EQ(trace.up_blocks.size(), 4u);
  const double e_up0 = rel_error(trace.up_blocks[0], g("vae_up0")), e_img = rel_error(image, g("vae_image"));
  std::cout << "conv_in " << e_in << ", mid_block " << e_mid << ", up_blocks.0 " << e_up0 << ", image " << e_img
            << "\n";
  EXPECT_LE(e_in, kF32Bound);
  EXPECT_LE(e_mid, kF32Bound);
  EXPECT_LE(e_up0, kF32Bound);
  EXPECT_LE(e_img, kF32Bound);

  // uint8 post-processing of our image against diffusers' of its own: an f32 difference of ~1e-7 can move a
  // value across a rounding boundary, so single-step differences are possible, nothing more.
  const Tensor u8 = image_to_uint8(image), want = g("vae_uint8");
  ASSERT_EQ(u8.shape(), want.shape());
  ASSERT_EQ(u8.dtype(), DType::U8);
  int64_t max_diff = 0, differing = 0;
  double sum = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const int64_t d = std::abs(int64_t{u8.data<uint8_t>()[i]} - int64_t{want.data<uint8_t>()[i]});
    max_diff = std::max(max_diff, d);
    differing += d != 0;
    sum += static_cast<double>(d);
  }
  const double mae = sum / static_cast<double>(want.numel());
  std::cout << "uint8: MAE " << mae << ", max abs diff " << max_diff << ", " << differing << " of " << want.numel()
            << " values differ\n";
  EXPECT_LE(mae, 1.0);
  EXPECT_LE(max_diff, 1);
  // On diffusers' own float image the post-processing is exact.
  EXPECT_TRUE(identical(image_to_uint8(g("vae_image")), want));
}

TEST_F(FluxDecodeGolden, DecoderWithBf16Activations) {
  CpuBackend be(DType::BF16);
  auto vae = open_vae_decoder(kVae, be);
  const double e = rel_error(vae->decode(g("vae_z")), g("vae_image"));
  std::cout << "image with BF16 activations: " << e << "\n";
  EXPECT_LE(e, kBf16Bound);
}

// A copy of the fixture's vae/ folder to edit.
class VaeVariant : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("omni_vae_variant_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    fs::copy_file(kVae + "/config.json", dir_ / "config.json");
    const auto src = SafetensorsCheckpoint::open_dir(kVae, "diffusion_pytorch_model");
    for (const std::string& n : src.names()) tensors_.push_back({n, src.tensor(n).clone()});
  }
  void TearDown() override { fs::remove_all(dir_); }

  void write(const std::function<bool(NamedTensor&)>& keep = {}) {
    std::vector<NamedTensor> out;
    for (NamedTensor t : tensors_)
      if (!keep || keep(t)) out.push_back(t);
    write_safetensors((dir_ / "diffusion_pytorch_model.safetensors").string(), out);
  }
  void edit_config(const std::function<void(nlohmann::json&)>& f) {
    nlohmann::json j = read_json_file((dir_ / "config.json").string());
    f(j);
    std::ofstream((dir_ / "config.json").string()) << j.dump(2);
  }
  std::string open_error() {
    return error_of([&] { open_vae_decoder(dir_.string(), cpu_backend()); });
  }

  fs::path dir_;
  std::vector<NamedTensor> tensors_;
};

TEST_F(VaeVariant, LegacyAttentionNamesGiveTheSameImage) {
  // query/key/value/proj_attn as 1x1 convs [C, C, 1, 1], as in checkpoints converted from the original VAE.
  const std::string p = "decoder.mid_block.attentions.0.";
  write([&](NamedTensor& t) {
    for (auto [now, old] : {std::pair{"to_q", "query"}, std::pair{"to_k", "key"}, std::pair{"to_v", "value"},
                            std::pair{"to_out.0", "proj_attn"}}) {
      const std::string prefix = p + now + ".";
      if (t.name.rfind(prefix, 0) != 0) continue;
      const std::string part = t.name.substr(prefix.size());
      t.name = p + old + "." + part;
      if (part == "weight") t.tensor = t.tensor.view({t.tensor.dim(0), t.tensor.dim(1), 1, 1});
    }
    return true;
  });
  const Tensor z = SafetensorsFile::open(kDir + "/golden.safetensors")->tensor("vae_z");
  const Tensor want = open_vae_decoder(kVae, cpu_backend())->decode(z);
  EXPECT_TRUE(identical(open_vae_decoder(dir_.string(), cpu_backend())->decode(z), want));
}

TEST_F(VaeVariant, MissingOrMisshapenTensorsAreNamed) {
  write([](NamedTensor& t) { return t.name != "decoder.up_blocks.2.resnets.0.conv_shortcut.weight"; });
  EXPECT_NE(open_error().find("tensor \"decoder.up_blocks.2.resnets.0.conv_shortcut.weight\" is missing"),
            std::string::npos)
      << open_error();
  write([](NamedTensor& t) {
    if (t.name == "decoder.conv_in.weight") t.tensor = t.tensor.view({24, 16, 9, 1});
    return true;
  });
  EXPECT_NE(open_error().find("tensor \"decoder.conv_in.weight\" has shape [24, 16, 9, 1], expected [24, 16, 3, 3]"),
            std::string::npos)
      << open_error();
}

TEST_F(VaeVariant, ConfigMismatchesAreNamed) {
  write();
  edit_config([](nlohmann::json& j) { j["layers_per_block"] = 1; });  // the checkpoint has a third resnet per block
  EXPECT_NE(open_error().find("decoder tensor(s) this decoder does not use (\"decoder.up_blocks.0.resnets.2."),
            std::string::npos)
      << open_error();
  edit_config([](nlohmann::json& j) {
    j["layers_per_block"] = 2;
    j["norm_num_groups"] = 5;
  });
  EXPECT_NE(open_error().find("field \"norm_num_groups\" (5) must divide every width of block_out_channels, but not 8"),
            std::string::npos)
      << open_error();
  edit_config([](nlohmann::json& j) {
    j["norm_num_groups"] = 4;
    j["use_post_quant_conv"] = true;
  });
  EXPECT_NE(open_error().find("field \"use_post_quant_conv\" is true"), std::string::npos) << open_error();
  edit_config([](nlohmann::json& j) {
    j["use_post_quant_conv"] = false;
    j["up_block_types"][1] = "AttnUpDecoderBlock2D";
  });
  EXPECT_NE(open_error().find("field \"up_block_types\" holds \"AttnUpDecoderBlock2D\""), std::string::npos)
      << open_error();
  edit_config([](nlohmann::json& j) {
    j["up_block_types"][1] = "UpDecoderBlock2D";
    j["act_fn"] = "gelu";
  });
  EXPECT_NE(open_error().find("config.json: field \"act_fn\" is \"gelu\""), std::string::npos) << open_error();
  edit_config([](nlohmann::json& j) {
    j["act_fn"] = "silu";
    j["mid_block_add_attention"] = false;  // the checkpoint has the attention
  });
  EXPECT_NE(open_error().find("(\"decoder.mid_block.attentions.0.group_norm.bias\""), std::string::npos)
      << open_error();
}

TEST_F(FluxDecodeGolden, DecodeRefusesLatentsOfTheWrongWidth) {
  auto vae = open_vae_decoder(kVae, cpu_backend());
  const Tensor z = Tensor::empty({1, 4, 6, 4}, DType::F32);
  EXPECT_NE(error_of([&] { vae->decode(z); }).find("latents expected a host tensor [B, 16, h, w], found [1, 4, 6, 4]"),
            std::string::npos);
}

}  // namespace
}  // namespace omni
