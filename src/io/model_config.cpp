#include "io/model_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file_util.h"

namespace omni {

const std::vector<std::string>& supported_architectures() {
  static const std::vector<std::string> kArchs = {"Qwen3ForCausalLM"};
  return kArchs;
}

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    OMNI_FAIL(path, ": invalid JSON: ", e.what());
  }
}

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Field readers: a missing field or a wrong type names the file and the field.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& j, const std::string& file) : j_(j), file_(file) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }

  int64_t positive_int(const char* key) const {
    const auto& v = required(key);
    OMNI_CHECK(v.is_number_integer(), file_, ": field \"", key, "\" must be an integer, found ", v.dump());
    const int64_t x = v.get<int64_t>();
    OMNI_CHECK(x > 0, file_, ": field \"", key, "\" must be positive, found ", x);
    return x;
  }
  double positive_number(const nlohmann::json& v, const char* key) const {
    OMNI_CHECK(v.is_number(), file_, ": field \"", key, "\" must be a number, found ", v.dump());
    const double x = v.get<double>();
    OMNI_CHECK(x > 0, file_, ": field \"", key, "\" must be positive, found ", x);
    return x;
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    const auto& v = j_.at(key);
    OMNI_CHECK(v.is_boolean(), file_, ": field \"", key, "\" must be true or false, found ", v.dump());
    return v.get<bool>();
  }
  const nlohmann::json& required(const char* key) const {
    OMNI_CHECK(has(key), file_, ": missing required field \"", key, "\"");
    return j_.at(key);
  }

 private:
  const nlohmann::json& j_;
  const std::string& file_;
};

std::vector<int32_t> token_ids(const nlohmann::json& v, const std::string& file, const char* key) {
  std::vector<int32_t> ids;
  auto add = [&](const nlohmann::json& x) {
    OMNI_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0, file, ": field \"", key,
               "\" must hold non-negative token ids, found ", x.dump());
    ids.push_back(x.get<int32_t>());
  };
  if (v.is_array()) {
    for (const auto& x : v) add(x);
  } else {
    add(v);
  }
  return ids;
}

}  // namespace

Qwen3Config parse_qwen3_config(const nlohmann::json& j, const std::string& file) {
  OMNI_CHECK(j.is_object(), file, ": config must be a JSON object");
  FieldReader r(j, file);
  Qwen3Config c;

  const auto& archs = r.required("architectures");
  OMNI_CHECK(archs.is_array() && archs.size() == 1 && archs[0].is_string(), file,
             ": field \"architectures\" must be a list with one name, found ", archs.dump());
  c.architecture = archs[0].get<std::string>();
  const auto& known = supported_architectures();
  OMNI_CHECK(std::find(known.begin(), known.end(), c.architecture) != known.end(), file, ": unsupported architecture \"",
             c.architecture, "\"; this build supports: ", join(known));

  c.vocab_size = r.positive_int("vocab_size");
  c.hidden_size = r.positive_int("hidden_size");
  c.intermediate_size = r.positive_int("intermediate_size");
  c.num_hidden_layers = r.positive_int("num_hidden_layers");
  c.num_attention_heads = r.positive_int("num_attention_heads");
  c.num_key_value_heads = r.has("num_key_value_heads") ? r.positive_int("num_key_value_heads") : c.num_attention_heads;
  c.head_dim = r.has("head_dim") ? r.positive_int("head_dim") : c.hidden_size / c.num_attention_heads;
  c.max_position_embeddings = r.positive_int("max_position_embeddings");
  c.rms_norm_eps = r.positive_number(r.required("rms_norm_eps"), "rms_norm_eps");
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.attention_bias = r.boolean("attention_bias", false);

  // transformers >= 5 nests the rotary settings in "rope_parameters"; older files have top-level rope_theta and
  // rope_scaling. Only plain (unscaled) RoPE is implemented.
  if (r.has("rope_parameters")) {
    const auto& rp = j.at("rope_parameters");
    OMNI_CHECK(rp.is_object(), file, ": field \"rope_parameters\" must be an object");
    OMNI_CHECK(rp.contains("rope_theta"), file, ": missing required field \"rope_parameters.rope_theta\"");
    c.rope_theta = r.positive_number(rp.at("rope_theta"), "rope_parameters.rope_theta");
    const std::string type = rp.value("rope_type", "default");
    OMNI_CHECK(type == "default", file, ": rope_parameters.rope_type \"", type,
               "\" is not supported (only \"default\")");
  } else {
    c.rope_theta = r.positive_number(r.required("rope_theta"), "rope_theta");
    OMNI_CHECK(!r.has("rope_scaling"), file, ": field \"rope_scaling\" is not supported yet, found ",
               j.at("rope_scaling").dump());
  }
  OMNI_CHECK(!r.boolean("use_sliding_window", false), file,
             ": \"use_sliding_window\": true is not supported (full attention only)");

  OMNI_CHECK(c.num_attention_heads % c.num_key_value_heads == 0, file, ": num_attention_heads (",
             c.num_attention_heads, ") must be a multiple of num_key_value_heads (", c.num_key_value_heads, ")");
  OMNI_CHECK(c.head_dim % 2 == 0, file, ": head_dim must be even for RoPE, found ", c.head_dim);

  if (r.has("torch_dtype") && j.at("torch_dtype").is_string()) c.torch_dtype = j.at("torch_dtype").get<std::string>();
  if (r.has("dtype") && j.at("dtype").is_string()) c.torch_dtype = j.at("dtype").get<std::string>();
  if (r.has("eos_token_id")) c.eos_token_ids = token_ids(j.at("eos_token_id"), file, "eos_token_id");
  if (r.has("bos_token_id")) c.bos_token_id = token_ids(j.at("bos_token_id"), file, "bos_token_id").at(0);
  for (int32_t id : c.eos_token_ids)
    OMNI_CHECK(id < c.vocab_size, file, ": eos_token_id ", id, " is outside the vocabulary (", c.vocab_size, ")");
  return c;
}

Qwen3Config load_qwen3_config(const std::string& dir) {
  const std::string path = dir + "/config.json";
  OMNI_CHECK(file_exists(path), dir, ": no config.json found (is this a Hugging Face model directory?)");
  return parse_qwen3_config(read_json_file(path), path);
}

}  // namespace omni
