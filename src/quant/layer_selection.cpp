#include "quant/layer_selection.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace omni {

bool regex_search(const std::string& pattern, const std::string& text, bool anchored_at_start) {
  int err = 0;
  PCRE2_SIZE err_offset = 0;
  pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err,
                                 &err_offset, nullptr);
  if (!re) return false;
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(re, nullptr);
  const int rc = pcre2_match(re, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             anchored_at_start ? PCRE2_ANCHORED : 0, md, nullptr);
  pcre2_match_data_free(md);
  pcre2_code_free(re);
  return rc >= 0;
}

namespace {

bool is_regex_key(const std::string& key) { return key.find_first_of("*+?^$()[]{}|\\") != std::string::npos; }

bool is_lm_head(const std::string& name) {
  return name == "lm_head" || (name.size() > 8 && name.compare(name.size() - 8, 8, ".lm_head") == 0);
}

LayerQuantization from_override(const QuantizationConfig& cfg, const ExtraConfigEntry& e) {
  LayerQuantization lq;
  lq.matched = &e;
  const int bits = e.value.bits.value_or(cfg.bits);
  lq.quantized = bits < 16;
  lq.scheme.bits = lq.quantized ? bits : 16;
  lq.scheme.group_size = e.value.group_size.value_or(cfg.group_size);
  lq.scheme.sym = e.value.sym.value_or(cfg.sym);
  lq.data_type = e.value.data_type.value_or(cfg.data_type);
  return lq;
}

}  // namespace

LayerQuantization resolve_layer_quantization(const QuantizationConfig& cfg, const std::string& layer_name) {
  for (const ExtraConfigEntry& e : cfg.extra_config)
    if (!e.from_gptq_dynamic && e.key == layer_name) return from_override(cfg, e);
  for (const ExtraConfigEntry& e : cfg.extra_config) {
    if (e.from_gptq_dynamic) {
      if (regex_search(e.key, layer_name, /*anchored_at_start=*/true)) return from_override(cfg, e);
    } else if (is_regex_key(e.key) && regex_search(e.key, layer_name)) {
      return from_override(cfg, e);
    }
  }
  LayerQuantization lq;
  lq.scheme.bits = cfg.bits;
  lq.scheme.group_size = cfg.group_size;
  lq.scheme.sym = cfg.sym;
  lq.data_type = cfg.data_type;
  if (!cfg.block_name_to_quantize.empty()) {
    for (const std::string& b : cfg.block_name_to_quantize)
      if (layer_name.rfind(b, 0) == 0) lq.quantized = true;
  } else {
    lq.quantized = !(is_lm_head(layer_name) && !cfg.lm_head);
  }
  return lq;
}

bool has_quantizable_shape(int64_t out_features, int64_t in_features, const QuantScheme& scheme) {
  const int64_t g = scheme.group_size_for(in_features);
  return out_features % 32 == 0 && in_features % 32 == 0 && in_features % g == 0;
}

ExtraConfigEntry sixteen_bit_entry(const std::string& layer_name) {
  ExtraConfigEntry e;
  e.key = layer_name;
  e.value.bits = 16;
  e.value.data_type = "fp";
  return e;
}

}  // namespace omni
