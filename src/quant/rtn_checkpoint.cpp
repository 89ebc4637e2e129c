#include "quant/rtn_checkpoint.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "io/safetensors.h"
#include "quant/layer_selection.h"
#include "quant/quant_config.h"
#include "quant/rtn.h"

namespace omni {

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// "<block>.<digits>.<rest>" for one of the block names.
bool inside_a_block(const std::string& name, const std::vector<std::string>& blocks) {
  for (const std::string& b : blocks) {
    if (name.size() <= b.size() + 1 || name.compare(0, b.size(), b) != 0 || name[b.size()] != '.') continue;
    size_t i = b.size() + 1, digits = 0;
    while (i < name.size() && std::isdigit(static_cast<unsigned char>(name[i]))) ++i, ++digits;
    if (digits > 0 && i < name.size() && name[i] == '.') return true;
  }
  return false;
}

bool is_quantizable_linear(const std::string& module, const std::vector<std::string>& suffixes) {
  for (const std::string& s : suffixes)
    if (module == s || ends_with(module, "." + s)) return true;
  return false;
}

}  // namespace

RtnSummary quantize_rtn_checkpoint(const std::string& in_dir, const std::string& out_dir, const RtnOptions& opts) {
  opts.scheme.validate();
  OMNI_CHECK(!opts.block_names.empty() && !opts.linear_names.empty(),
             "RTN needs the model's block lists and Linear names");
  auto log = [&](const std::string& msg) {
    if (opts.progress) opts.progress(msg);
  };
  OMNI_CHECK(!read_quantization_config(in_dir).has_value(), in_dir,
             " is already quantized (its config has a quantization_config)");
  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(in_dir, opts.weights_stem);

  RtnSummary summary;
  QuantizationConfig& cfg = summary.config;
  cfg.bits = opts.scheme.bits;
  cfg.group_size = opts.scheme.group_size;
  cfg.sym = opts.scheme.sym;
  cfg.block_name_to_quantize = opts.block_names;
  cfg.tuning["iters"] = 0;  // RTN: recorded because it differs from the default 200

  std::vector<NamedTensor> unchanged;
  std::vector<QuantizedLinearOutput> quantized;
  const std::vector<std::string> names = ckpt.names();
  // Biases of quantised layers are written (as F16) with the layer, not as unchanged tensors.
  std::vector<std::string> quantized_modules;
  for (const std::string& name : names) {
    if (!ends_with(name, ".weight")) continue;
    const std::string module = name.substr(0, name.size() - 7);
    if (!inside_a_block(name, opts.block_names) || !is_quantizable_linear(module, opts.linear_names)) continue;
    const TensorInfo& info = ckpt.info(name);
    OMNI_CHECK(info.shape.size() == 2, name, ": a Linear weight must be 2-D, found shape ", shape_str(info.shape));
    const int64_t N = info.shape[0], K = info.shape[1];
    if (!has_quantizable_shape(N, K, opts.scheme)) {
      cfg.extra_config.push_back(sixteen_bit_entry(module));
      summary.skipped.push_back(module);
      log("kept 16-bit " + module + " [" + std::to_string(N) + ", " + std::to_string(K) +
          "]: features not divisible by 32 or by the group size");
      continue;
    }
    QuantizedLinearOutput q;
    q.prefix = module;
    q.weight = quantize_rtn(ckpt.weight(name), opts.scheme);
    if (ckpt.contains(module + ".bias")) q.bias = ckpt.weight(module + ".bias");
    quantized.push_back(std::move(q));
    quantized_modules.push_back(module);
    summary.quantized.push_back(module);
    log("quantized " + module);
  }
  std::sort(quantized_modules.begin(), quantized_modules.end());
  for (const std::string& name : names) {
    const bool is_weight = ends_with(name, ".weight"), is_bias = ends_with(name, ".bias");
    if (is_weight || is_bias) {
      const std::string module = name.substr(0, name.size() - (is_weight ? 7 : 5));
      if (std::binary_search(quantized_modules.begin(), quantized_modules.end(), module)) continue;
    }
    unchanged.push_back({name, ckpt.weight(name)});
  }

  ExportOptions eo;
  eo.format = opts.format;
  eo.overwrite = opts.overwrite;
  eo.max_shard_bytes = opts.max_shard_bytes;
  eo.weights_stem = opts.weights_stem;
  eo.progress = opts.progress;
  summary.config = export_quantized_checkpoint(in_dir, out_dir, unchanged, quantized, cfg, eo);
  return summary;
}

}  // namespace omni
