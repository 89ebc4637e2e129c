#include "models/text_encoders/text_encoders.h"

#include <cstdint>
#include <filesystem>

#include "core/error.h"
#include "io/json_fields.h"

namespace omni {
namespace {

// As for the decoders: sizes stay below 2^31 so that products of two of them cannot overflow.
constexpr int64_t kMaxSize = INT32_MAX;

int64_t size_field(const FieldReader& r, const char* key) {
  const int64_t x = r.positive_int(key);
  OMNI_CHECK(x <= kMaxSize, r.file(), ": field \"", key, "\" must be at most ", kMaxSize, ", found ", x);
  return x;
}

int64_t size_or(const FieldReader& r, const char* key, int64_t fallback) {
  return r.has(key) ? size_field(r, key) : fallback;
}

float eps_or(const FieldReader& r, const char* key, float fallback) {
  if (!r.has(key)) return fallback;
  const double x = r.positive_number(r.required(key), key);
  OMNI_CHECK(x < 1, r.file(), ": field \"", key, "\" must be below 1, found ", x);
  return static_cast<float>(x);
}

// A string field that, when present, must be one of `allowed`; returns it (or `fallback` when absent).
std::string string_field(const FieldReader& r, const char* key, const std::string& fallback) {
  if (!r.has(key)) return fallback;
  const nlohmann::json& v = r.required(key);
  OMNI_CHECK(v.is_string(), r.file(), ": field \"", key, "\" must be a string, found ", v.dump());
  return v.get<std::string>();
}

// architectures, when present, must name `arch` first.
void check_architecture(const FieldReader& r, const char* arch, const char* hint) {
  if (!r.has("architectures")) return;
  const nlohmann::json& a = r.required("architectures");
  OMNI_CHECK(a.is_array() && !a.empty() && a[0].is_string(), r.file(),
             ": field \"architectures\" must be a list of names, found ", a.dump());
  OMNI_CHECK(a[0].get<std::string>() == arch, r.file(), ": field \"architectures\" is ", a.dump(), "; only ", arch,
             " is supported here", hint);
}

FieldReader open_config(const std::string& dir, nlohmann::json& holder, std::string& file) {
  file = (std::filesystem::path(dir) / "config.json").string();
  holder = read_json_file(file);
  return FieldReader(holder, file);
}

}  // namespace

ClipTextSpec read_clip_text_config(const std::string& dir) {
  nlohmann::json j;
  std::string file;
  const FieldReader r = open_config(dir, j, file);
  check_architecture(r, "CLIPTextModel", " (the text tower without projection, FLUX's text_encoder)");
  const std::string type = string_field(r, "model_type", "clip_text_model");
  OMNI_CHECK(type == "clip_text_model", file, ": field \"model_type\" is \"", type,
             "\"; expected \"clip_text_model\" (a CLIPTextModel's own config, not a whole CLIP model's)");
  const std::string act = string_field(r, "hidden_act", "quick_gelu");
  OMNI_CHECK(act == "quick_gelu", file, ": field \"hidden_act\" is \"", act, "\"; only quick_gelu is supported");
  ClipTextSpec s;
  s.vocab_size = size_field(r, "vocab_size");
  s.hidden_size = size_field(r, "hidden_size");
  s.intermediate_size = size_field(r, "intermediate_size");
  s.num_heads = size_field(r, "num_attention_heads");
  s.num_layers = size_field(r, "num_hidden_layers");
  s.max_position_embeddings = size_field(r, "max_position_embeddings");
  OMNI_CHECK(s.hidden_size % s.num_heads == 0, file, ": field \"hidden_size\" (", s.hidden_size,
             ") must be a multiple of \"num_attention_heads\" (", s.num_heads, ")");
  s.layer_norm_eps = eps_or(r, "layer_norm_eps", 1e-5f);
  if (r.has("eos_token_id")) {
    OMNI_CHECK(!r.required("eos_token_id").is_array(), file,
               ": field \"eos_token_id\" must be one token id (the pooled output takes the row of the first EOS), "
               "found ", r.required("eos_token_id").dump());
    s.eos_token_id = r.token_ids("eos_token_id")[0];
  } else {
    s.eos_token_id = 49407;  // CLIPTextConfig's default
  }
  return s;
}

T5EncoderSpec read_t5_encoder_config(const std::string& dir) {
  nlohmann::json j;
  std::string file;
  const FieldReader r = open_config(dir, j, file);
  check_architecture(r, "T5EncoderModel", " (the encoder alone, FLUX's text_encoder_2)");
  const std::string type = string_field(r, "model_type", "t5");
  OMNI_CHECK(type == "t5", file, ": field \"model_type\" is \"", type, "\"; only \"t5\" is supported");
  const std::string ff = string_field(r, "feed_forward_proj", "relu");
  OMNI_CHECK(ff == "gated-gelu" || ff == "gated-gelu_new", file, ": field \"feed_forward_proj\" is \"", ff,
             "\"", r.has("feed_forward_proj") ? "" : " (absent: T5Config's default)",
             "; only \"gated-gelu\" (t5 v1.1: wo(gelu_new(wi_0 x) * wi_1 x)) is supported");
  T5EncoderSpec s;
  s.vocab_size = size_field(r, "vocab_size");
  s.d_model = size_field(r, "d_model");
  s.d_kv = size_field(r, "d_kv");
  s.num_heads = size_field(r, "num_heads");
  s.d_ff = size_field(r, "d_ff");
  s.num_layers = size_field(r, "num_layers");
  OMNI_CHECK(s.num_heads * s.d_kv <= kMaxSize, file, ": num_heads x d_kv = ", s.num_heads * s.d_kv, " is too large");
  s.relative_attention_num_buckets = size_or(r, "relative_attention_num_buckets", 32);
  OMNI_CHECK(s.relative_attention_num_buckets >= 4, file,
             ": field \"relative_attention_num_buckets\" must be at least 4, found ", s.relative_attention_num_buckets);
  s.relative_attention_max_distance = size_or(r, "relative_attention_max_distance", 128);
  const int64_t max_exact = s.relative_attention_num_buckets / 4;
  OMNI_CHECK(s.relative_attention_max_distance > max_exact, file,
             ": field \"relative_attention_max_distance\" must exceed the exact range (", max_exact,
             " = relative_attention_num_buckets / 4), found ", s.relative_attention_max_distance);
  s.layer_norm_epsilon = eps_or(r, "layer_norm_epsilon", 1e-6f);
  return s;
}

std::unique_ptr<ClipTextEncoder> open_clip_text_encoder(const std::string& dir, Backend& backend) {
  return ClipTextEncoder::open(dir, read_clip_text_config(dir), backend);
}

std::unique_ptr<T5Encoder> open_t5_encoder(const std::string& dir, Backend& backend) {
  return T5Encoder::open(dir, read_t5_encoder_config(dir), backend);
}

}  // namespace omni
