// libFuzzer target for config.json: the bytes go through what the loader does with a model's config (the
// registry's architecture check and parser, the quantizer's view of the model, the decoder spec parsers and
// quantization_config). Any input must either give a config that keeps the parsers' promises or throw
// omni::Error; a crash, a sanitizer report, another exception type escaping or a broken promise is a finding.
// Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#include "core/error.h"
#include "io/json_fields.h"
#include "models/qwen2/qwen2.h"
#include "models/qwen3/qwen3.h"
#include "models/registry.h"
#include "nn/decoder_spec.h"
#include "quant/quant_config.h"

namespace {

constexpr const char* kName = "fuzz-input/config.json";

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "parser accepted a config that breaks its promise: %s\n", what);
    __builtin_trap();
  }
}

void check_spec(const omni::DecoderSpec& s) {
  for (int64_t size : {s.vocab_size, s.hidden_size, s.intermediate_size, s.num_hidden_layers, s.num_attention_heads,
                       s.num_key_value_heads, s.head_dim, s.max_position_embeddings})
    require(size > 0, "positive sizes");
  require(s.num_attention_heads % s.num_key_value_heads == 0, "kv heads divide the query heads");
  require(s.head_dim % 2 == 0, "even head_dim (RoPE rotates pairs)");
  require(s.rope_theta > 0 && s.rms_norm_eps > 0, "positive rope_theta and rms_norm_eps");
  for (int32_t id : s.eos_token_ids) require(id >= 0 && id < s.vocab_size, "eos ids inside the vocabulary");
}

// Every model the registry opens describes blocks with positive dimensions.
void check_model(const omni::QuantizableModel& m) {
  require(m.num_blocks() > 0 && m.max_positions() > 0, "positive block count and context");
  const omni::Block& b = m.block(0);
  for (const omni::LinearDesc& d : b.linears()) require(d.in_features > 0 && d.out_features > 0, "linear sizes");
  for (const omni::ParamDesc& p : b.params())
    for (int64_t dim : p.shape) require(dim > 0, "parameter sizes");
}

// A number in the file, compared exactly with what the parser kept (a narrowing would change it).
bool same_number(const nlohmann::ordered_json& v, int64_t kept) {
  return v.is_number() && v.get<double>() == static_cast<double>(kept);
}

void check_quantization(std::string_view text, const omni::QuantizationConfig& q) {
  const nlohmann::ordered_json section = omni::parse_ordered_json_text(text, kName).at("quantization_config");
  require(same_number(section.at("bits"), q.bits), "bits as written in the file");
  for (const omni::ExtraConfigEntry& e : q.extra_config) {
    if (e.from_gptq_dynamic || !e.value.bits) continue;
    require(same_number(section.at("extra_config").at(e.key).at("bits"), *e.value.bits),
            "override bits as written in the file");
  }
  require(q.quant_method == "auto-round" || q.quant_method == "gptq", "a known quant_method");
  require(q.bits == 2 || q.bits == 3 || q.bits == 4 || q.bits == 8, "supported bits");
  require(q.group_size == -1 || q.group_size > 0, "group_size -1 or positive");
  for (const omni::ExtraConfigEntry& e : q.extra_config) {
    if (e.value.bits) {
      const int b = *e.value.bits;
      require(b == 2 || b == 3 || b == 4 || b == 8 || b >= 16, "supported override bits");
    }
    if (e.value.group_size) require(*e.value.group_size == -1 || *e.value.group_size > 0, "override group_size");
  }
  // What we accept we can write back, and reading that back gives the same settings (a key that appears twice
  // is written once: only its first entry ever applies).
  omni::QuantizationConfig again;
  try {
    again = omni::parse_quantization_config(omni::to_json(q), "fuzz-rewritten");
  } catch (const omni::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    require(false, "the quantization_config we write back is readable");
  }
  require(again.quant_method == q.quant_method && again.bits == q.bits && again.group_size == q.group_size &&
              again.sym == q.sym && again.extra_config.size() <= q.extra_config.size(),
          "quantization_config survives to_json and back");
}

// Runs one stage; omni::Error is the expected outcome for a malformed config and ends only that stage.
template <typename F>
void stage(F&& f) {
  try {
    f();
  } catch (const omni::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  stage([&] { check_model(*omni::open_quantizable_model_config(text, kName)); });
  stage([&] { (void)omni::describe_model_config(text, kName); });
  // The spec parsers directly, whatever "architectures" says, so mutations of that field do not hide them.
  stage([&] {
    const nlohmann::json j = omni::parse_json_text(text, kName);
    stage([&] { check_spec(omni::parse_qwen3_config(j, kName)); });
    stage([&] { check_spec(omni::parse_qwen2_config(j, kName)); });
  });
  stage([&] {
    if (const auto q = omni::read_quantization_config_text(text, kName)) check_quantization(text, *q);
  });
  return 0;
}
