// The "quantization_config" section of a checkpoint's config.json (AUTOROUND.md §5): parsed from auto-round
// ("auto-round") and GPTQ ("gptq" / "auto_gptq") checkpoints and written back for the ones we export, with
// default values omitted. Which layers it quantises is decided in layer_selection.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace omni {

// How a checkpoint stores zero points in qzeros: GPTQ v1 / auto_round:auto_gptq store zero − 1, GPTQ v2 /
// auto_round native / auto_round:gptqmodel store the real zero.
enum class ZeroPointConvention { Unknown, MinusOne, Real };
const char* zero_point_convention_name(ZeroPointConvention c);

// Per-layer override, one value of "extra_config" (or a GPTQModel "dynamic" entry). Missing keys take the
// global values; bits >= 16 means "left 16-bit".
struct LayerOverride {
  std::optional<int> bits;
  std::optional<int64_t> group_size;
  std::optional<bool> sym;
  std::optional<std::string> data_type;
  nlohmann::ordered_json other = nlohmann::ordered_json::object();  // other keys, kept for writing back
};

struct ExtraConfigEntry {
  std::string key;  // a full layer name, or a regex when it holds one of *+?^$()[]{}|\ (see layer_selection.h)
  LayerOverride value;
  bool from_gptq_dynamic = false;  // came from "dynamic": regex matched at the start of the name (re.match)
};

struct QuantizationConfig {
  std::string quant_method = "auto-round";                 // "auto-round", or "gptq" (also read: "auto_gptq")
  std::string packing_format = "auto_round:auto_gptq";     // auto-round only
  bool packing_format_given = false;                       // present in the parsed file
  int bits = 4;
  int64_t group_size = 128;  // -1 = per output channel
  bool sym = true;
  std::string data_type = "int";
  std::vector<std::string> block_name_to_quantize;  // comma list in the file ("to_quant_block_names" also read)
  std::vector<ExtraConfigEntry> extra_config;        // in file order (the first matching regex wins)
  // GPTQ keys.
  bool desc_act = false;
  std::optional<bool> true_sequential;
  std::optional<double> damp_percent;
  bool lm_head = false;            // lm_head quantised (gptq key)
  std::string checkpoint_format;   // "gptq" (zero − 1) or "gptq_v2" (real zero); empty when absent
  std::string provider;
  std::string autoround_version;
  // Recorded tuning values (iters, lr, minmax_lr, nsamples, seqlen, batch_size, gradient_accumulate_steps, seed,
  // enable_*, ...); to_json drops the ones equal to the auto-round defaults.
  nlohmann::ordered_json tuning = nlohmann::ordered_json::object();
  // Keys we do not interpret, kept so that writing back loses nothing.
  nlohmann::ordered_json other = nlohmann::ordered_json::object();

  bool is_gptq() const { return quant_method == "gptq" || quant_method == "auto_gptq"; }
  // The zero-point convention the config declares through a key that is actually present (packing_format,
  // checkpoint_format); Unknown when no present key settles it.
  ZeroPointConvention declared_zero_point_convention() const;
};

// Parses the "quantization_config" object. `source` (a file path) is named in every error together with the
// field: missing bits/group_size, wrong types, unsupported quant_method or values.
QuantizationConfig parse_quantization_config(const nlohmann::ordered_json& j, const std::string& source);

// Reads dir/config.json's "quantization_config", else dir/quantization_config.json (vLLM's fallback);
// std::nullopt when neither exists (an unquantised model).
std::optional<QuantizationConfig> read_quantization_config(const std::string& model_dir);
// The "quantization_config" of a config.json given as text (`file` names it in errors); std::nullopt when the
// config has none. read_quantization_config reads config.json through this.
std::optional<QuantizationConfig> read_quantization_config_text(std::string_view config_text,
                                                               const std::string& file);

// Serialises for config.json / quantization_config.json, omitting default values (AUTOROUND.md §5). GPTQ
// configs get desc_act / true_sequential / damp_percent / lm_head and express 16-bit layers as "dynamic"
// "-:" entries (GPTQModel), auto-round configs use "extra_config".
nlohmann::ordered_json to_json(const QuantizationConfig& cfg);

}  // namespace omni
