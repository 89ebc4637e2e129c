#include "models/flux/flux_config.h"

#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "io/json_fields.h"

namespace omni {
namespace {

// As for the decoders: sizes stay below 2^31 so that products of two of them cannot overflow.
constexpr int64_t kMaxSize = INT32_MAX;

int64_t size_or(const FieldReader& r, const char* key, int64_t fallback) {
  if (!r.has(key)) return fallback;
  const int64_t x = r.positive_int(key);
  OMNI_CHECK(x <= kMaxSize, r.file(), ": field \"", key, "\" must be at most ", kMaxSize, ", found ", x);
  return x;
}

}  // namespace

FluxSpec read_flux_transformer_config(const std::string& transformer_dir) {
  const std::string file = (std::filesystem::path(transformer_dir) / "config.json").string();
  const nlohmann::json j = read_json_file(file);
  OMNI_CHECK(j.is_object(), file, ": expected a JSON object");
  const FieldReader r(j, file);
  const std::string cls = r.string_or("_class_name", "FluxTransformer2DModel");
  OMNI_CHECK(cls == "FluxTransformer2DModel", file, ": field \"_class_name\" is \"", cls,
             "\"; only FluxTransformer2DModel is supported");
  FluxSpec s;
  const int64_t patch = size_or(r, "patch_size", 1);
  OMNI_CHECK(patch == 1, file, ": field \"patch_size\" must be 1 (FLUX packs 2x2 latent patches in the pipeline), "
             "found ", patch);
  s.num_heads = size_or(r, "num_attention_heads", s.num_heads);
  s.head_dim = size_or(r, "attention_head_dim", s.head_dim);
  OMNI_CHECK(s.head_dim % 2 == 0, file, ": field \"attention_head_dim\" must be even (rotary pairs), found ",
             s.head_dim);
  OMNI_CHECK(s.num_heads * s.head_dim <= kMaxSize, file, ": num_attention_heads x attention_head_dim = ",
             s.num_heads * s.head_dim, " is too large");
  // num_layers / num_single_layers may be 0 in a test model; negative or non-integers are refused.
  for (auto [key, dst] : {std::pair{"num_layers", &s.num_layers}, std::pair{"num_single_layers", &s.num_single_layers}}) {
    if (!r.has(key)) continue;
    const nlohmann::json& v = r.required(key);
    OMNI_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= 4096, file, ": field \"", key,
               "\" must be an integer in [0, 4096], found ", v.dump());
    *dst = v.get<int64_t>();
  }
  s.in_channels = size_or(r, "in_channels", s.in_channels);
  s.out_channels = r.has("out_channels") ? size_or(r, "out_channels", 0) : s.in_channels;
  s.joint_attention_dim = size_or(r, "joint_attention_dim", s.joint_attention_dim);
  s.pooled_projection_dim = size_or(r, "pooled_projection_dim", s.pooled_projection_dim);
  s.guidance_embeds = r.boolean("guidance_embeds", false);
  if (r.has("axes_dims_rope")) {
    const nlohmann::json& a = r.required("axes_dims_rope");
    OMNI_CHECK(a.is_array() && a.size() == 3, file, ": field \"axes_dims_rope\" must be a list of 3 integers, found ",
               a.dump());
    for (size_t i = 0; i < 3; ++i) {
      OMNI_CHECK(a[i].is_number_integer() && a[i].get<int64_t>() > 0 && a[i].get<int64_t>() % 2 == 0 &&
                     a[i].get<int64_t>() <= kMaxSize,
                 file, ": field \"axes_dims_rope\" must hold positive even integers, found ", a.dump());
      s.axes_dims_rope[i] = a[i].get<int64_t>();
    }
  }
  const int64_t rope_sum = s.axes_dims_rope[0] + s.axes_dims_rope[1] + s.axes_dims_rope[2];
  OMNI_CHECK(rope_sum == s.head_dim, file, ": field \"axes_dims_rope\" sums to ", rope_sum,
             ", but attention_head_dim is ", s.head_dim, " (the rotary dims must cover the head)");
  return s;
}

}  // namespace omni
