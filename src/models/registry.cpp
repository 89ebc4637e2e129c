#include "models/registry.h"

#include <algorithm>
#include <functional>
#include <sstream>

#include "core/error.h"
#include "io/file_util.h"
#include "io/json_fields.h"
#include "models/qwen2/qwen2.h"
#include "models/qwen3/qwen3.h"
#include "nn/decoder_lm.h"
#include "nn/decoder_quantizable.h"

namespace omni {
namespace {

struct Architecture {
  std::string name;
  std::function<std::unique_ptr<CausalLM>(const std::string& dir, const nlohmann::json&, const std::string& file,
                                          Backend&)>
      open_causal_lm;
  std::function<std::unique_ptr<QuantizableModel>(const nlohmann::json&, const std::string& file)> open_quantizable;
  std::function<std::string(const nlohmann::json&, const std::string& file)> describe;
};

std::string describe_decoder(const DecoderSpec& k) {
  std::ostringstream os;
  os << k.num_hidden_layers << " layers, hidden " << k.hidden_size << ", intermediate " << k.intermediate_size
     << ", heads " << k.num_attention_heads << "/" << k.num_key_value_heads << " kv x " << k.head_dim << ", vocab "
     << k.vocab_size << ", rope_theta " << k.rope_theta
     << (k.tie_word_embeddings ? ", tied embeddings" : ", untied embeddings");
  return os.str();
}

// A Llama-family decoder: everything follows from its config parser.
Architecture decoder(std::string name, DecoderSpec (*parse)(const nlohmann::json&, const std::string&)) {
  Architecture a;
  a.name = std::move(name);
  a.open_causal_lm = [parse](const std::string& dir, const nlohmann::json& j, const std::string& file,
                             Backend& be) { return load_decoder_lm(dir, parse(j, file), be); };
  a.open_quantizable = [parse](const nlohmann::json& j, const std::string& file) {
    return make_decoder_quantizable(parse(j, file));
  };
  a.describe = [parse](const nlohmann::json& j, const std::string& file) { return describe_decoder(parse(j, file)); };
  return a;
}

const std::vector<Architecture>& registry() {
  static const std::vector<Architecture> kArchitectures = {
      decoder("Qwen2ForCausalLM", parse_qwen2_config),
      decoder("Qwen3ForCausalLM", parse_qwen3_config),
  };
  return kArchitectures;
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

struct Opened {
  const Architecture* arch;
  nlohmann::json config;
  std::string file;
};

Opened open_config_text(std::string_view text, const std::string& file) {
  Opened o;
  o.file = file;
  o.config = parse_json_text(text, o.file);
  const FieldReader r(o.config, o.file);
  const auto& archs = r.required("architectures");
  OMNI_CHECK(archs.is_array() && archs.size() == 1 && archs[0].is_string(), o.file,
             ": field \"architectures\" must be a list with one name, found ", archs.dump());
  const std::string name = archs[0].get<std::string>();
  for (const Architecture& a : registry())
    if (a.name == name) {
      o.arch = &a;
      return o;
    }
  OMNI_FAIL(o.file, ": unsupported architecture \"", name, "\"; this build supports: ",
            join(supported_architectures()));
}

Opened open_config(const std::string& dir) {
  const std::string file = dir + "/config.json";
  OMNI_CHECK(file_exists(file), dir, ": no config.json found (is this a Hugging Face model directory?)");
  return open_config_text(read_text_file(file), file);
}

}  // namespace

std::vector<std::string> supported_architectures() {
  std::vector<std::string> names;
  for (const Architecture& a : registry()) names.push_back(a.name);
  std::sort(names.begin(), names.end());
  return names;
}

std::string model_architecture(const std::string& dir) {
  const Opened o = open_config(dir);
  o.arch->describe(o.config, o.file);  // validates the whole config
  return o.arch->name;
}

std::unique_ptr<CausalLM> open_causal_lm(const std::string& dir, Backend& backend) {
  const Opened o = open_config(dir);
  return o.arch->open_causal_lm(dir, o.config, o.file, backend);
}

std::unique_ptr<QuantizableModel> open_quantizable_model(const std::string& dir) {
  const Opened o = open_config(dir);
  return o.arch->open_quantizable(o.config, o.file);
}

std::string describe_model(const std::string& dir) {
  const Opened o = open_config(dir);
  return o.arch->describe(o.config, o.file);
}

std::unique_ptr<QuantizableModel> open_quantizable_model_config(std::string_view config_text,
                                                                const std::string& file) {
  const Opened o = open_config_text(config_text, file);
  return o.arch->open_quantizable(o.config, o.file);
}

std::string describe_model_config(std::string_view config_text, const std::string& file) {
  const Opened o = open_config_text(config_text, file);
  return o.arch->describe(o.config, o.file);
}

}  // namespace omni
