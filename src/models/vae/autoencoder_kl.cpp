#include "models/vae/autoencoder_kl.h"

#include <cmath>
#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "io/json_fields.h"

namespace omni {
namespace {

constexpr int64_t kMaxWidth = 1 << 16;  // channels; products of sizes stay far from overflow
constexpr size_t kMaxBlocks = 8;        // 2^7 pixels per latent

int64_t width_or(const FieldReader& r, const char* key, int64_t fallback) {
  if (!r.has(key)) return fallback;
  const int64_t x = r.positive_int(key);
  OMNI_CHECK(x <= kMaxWidth, r.file(), ": field \"", key, "\" must be at most ", kMaxWidth, ", found ", x);
  return x;
}

double number_or(const FieldReader& r, const char* key, double fallback) {
  if (!r.has(key)) return fallback;
  const nlohmann::json& v = r.required(key);
  OMNI_CHECK(v.is_number() && std::isfinite(v.get<double>()), r.file(), ": field \"", key,
             "\" must be a finite number, found ", v.dump());
  return v.get<double>();
}

std::string string_field(const FieldReader& r, const char* key, const std::string& fallback) {
  if (!r.has(key)) return fallback;
  const nlohmann::json& v = r.required(key);
  OMNI_CHECK(v.is_string(), r.file(), ": field \"", key, "\" must be a string, found ", v.dump());
  return v.get<std::string>();
}

}  // namespace

VaeDecoderSpec read_autoencoder_kl_config(const std::string& vae_dir) {
  const std::string file = (std::filesystem::path(vae_dir) / "config.json").string();
  const nlohmann::json j = read_json_file(file);
  const FieldReader r(j, file);
  const std::string cls = string_field(r, "_class_name", "AutoencoderKL");
  OMNI_CHECK(cls == "AutoencoderKL", file, ": field \"_class_name\" is \"", cls, "\"; only AutoencoderKL is supported");
  VaeDecoderSpec s;
  // diffusers' AutoencoderKL defaults for what the file leaves out.
  s.block_out_channels = {64};
  if (r.has("block_out_channels")) {
    const nlohmann::json& a = r.required("block_out_channels");
    OMNI_CHECK(a.is_array() && !a.empty() && a.size() <= kMaxBlocks, file,
               ": field \"block_out_channels\" must be a list of 1 to ", kMaxBlocks, " widths, found ", a.dump());
    s.block_out_channels.clear();
    for (const nlohmann::json& c : a) {
      OMNI_CHECK(c.is_number_integer() && c.get<int64_t>() > 0 && c.get<int64_t>() <= kMaxWidth, file,
                 ": field \"block_out_channels\" must hold positive integers up to ", kMaxWidth, ", found ", a.dump());
      s.block_out_channels.push_back(c.get<int64_t>());
    }
  }
  const size_t blocks = s.block_out_channels.size();
  if (r.has("up_block_types")) {
    const nlohmann::json& a = r.required("up_block_types");
    OMNI_CHECK(a.is_array() && a.size() == blocks, file, ": field \"up_block_types\" must list ", blocks,
               " block types (one per block_out_channels entry), found ", a.dump());
    for (const nlohmann::json& t : a)
      OMNI_CHECK(t == "UpDecoderBlock2D", file, ": field \"up_block_types\" holds ", t.dump(),
                 "; only UpDecoderBlock2D is supported");
  } else {
    OMNI_CHECK(blocks == 1, file, ": field \"up_block_types\" is missing (diffusers' default is one block), but "
               "block_out_channels has ", blocks);
  }
  s.layers_per_block = width_or(r, "layers_per_block", 1);
  OMNI_CHECK(s.layers_per_block <= 64, file, ": field \"layers_per_block\" must be at most 64, found ",
             s.layers_per_block);
  s.latent_channels = width_or(r, "latent_channels", 4);
  s.out_channels = width_or(r, "out_channels", 3);
  s.norm_num_groups = width_or(r, "norm_num_groups", 32);
  for (int64_t c : s.block_out_channels)
    OMNI_CHECK(c % s.norm_num_groups == 0, file, ": field \"norm_num_groups\" (", s.norm_num_groups,
               ") must divide every width of block_out_channels, but not ", c);
  const std::string act = string_field(r, "act_fn", "silu");
  OMNI_CHECK(act == "silu" || act == "swish", file, ": field \"act_fn\" is \"", act, "\"; only silu is supported");
  OMNI_CHECK(!r.boolean("use_post_quant_conv", true), file,
             ": field \"use_post_quant_conv\" is true (or absent, diffusers' default); only a VAE without "
             "post_quant_conv (FLUX's) is supported");
  s.mid_block_add_attention = r.boolean("mid_block_add_attention", true);
  s.scaling_factor = number_or(r, "scaling_factor", 0.18215);
  OMNI_CHECK(s.scaling_factor != 0.0, file, ": field \"scaling_factor\" must not be 0");
  s.shift_factor = number_or(r, "shift_factor", 0.0);  // null: no shift (the Stable Diffusion VAEs)
  return s;
}

std::unique_ptr<VaeDecoder> open_vae_decoder(const std::string& vae_dir, Backend& backend) {
  return VaeDecoder::open(vae_dir, read_autoencoder_kl_config(vae_dir), backend);
}

}  // namespace omni
