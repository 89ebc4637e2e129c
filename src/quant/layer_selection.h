// Which Linear layers a quantization_config quantises, and with which scheme, matching what auto-round's
// loader and vLLM do:
//  1. an "extra_config" key equal to the layer name wins;
//  2. otherwise the first regex key (in file order) that re.search-matches the name (GPTQModel "dynamic" keys:
//     matched at the start, like re.match). A key is a regex only when it contains one of *+?^$()[]{}|\ — a
//     plain dotted name is matched exactly, so "mlp.gate" never captures "mlp.gate_proj";
//  3. otherwise the layer is quantised iff its name starts with an entry of block_name_to_quantize (when the
//     list is empty: every layer but an unquantised lm_head — the loader should then also look for <p>.qweight).
// An override with bits >= 16 means "left 16-bit"; missing override keys take the global values.
// Difference from auto-round kept on purpose: auto-round applies a regex to layers outside the blocks only when
// it matches no layer inside them; here a regex applies wherever it matches.
#pragma once

#include <string>

#include "quant/qdq.h"
#include "quant/quant_config.h"

namespace omni {

struct LayerQuantization {
  bool quantized = false;
  QuantScheme scheme;          // meaningful when quantized
  std::string data_type;       // "int" for what we can read
  const ExtraConfigEntry* matched = nullptr;  // the extra_config entry that decided, if any
};

LayerQuantization resolve_layer_quantization(const QuantizationConfig& cfg, const std::string& layer_name);

inline bool is_layer_quantized(const QuantizationConfig& cfg, const std::string& layer_name) {
  return resolve_layer_quantization(cfg, layer_name).quantized;
}

// Python-`re` flavoured matching via PCRE2: search anywhere, or anchored at the start. An invalid pattern
// matches nothing (auto-round skips it silently).
// AUTOROUND.md §4 (auto-round's rule, and Marlin's): a Linear whose features do not divide by 32, or whose input
// does not divide by the group size, stays 16-bit.
bool has_quantizable_shape(int64_t out_features, int64_t in_features, const QuantScheme& scheme);
// The extra_config entry that records such a layer as kept 16-bit.
ExtraConfigEntry sixteen_bit_entry(const std::string& layer_name);

bool regex_search(const std::string& pattern, const std::string& text, bool anchored_at_start = false);

}  // namespace omni
