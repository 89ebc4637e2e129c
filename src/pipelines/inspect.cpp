#include "pipelines/inspect.h"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "io/file_util.h"
#include "io/safetensors.h"
#include "models/registry.h"
#include "quant/layer_selection.h"
#include "quant/quant_config.h"
#include "quant/quant_summary.h"

namespace omni {
namespace {

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string human_bytes(uint64_t b) {
  char buf[64];
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  std::snprintf(buf, sizeof buf, "%.2f %s", v, units[u]);
  return buf;
}

std::string human_count(int64_t n) {
  char buf[64];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2fB", static_cast<double>(n) / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  else if (n >= 1'000) std::snprintf(buf, sizeof buf, "%.1fK", static_cast<double>(n) / 1e3);
  else std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(n));
  return buf;
}

}  // namespace

CheckpointInspection inspect_checkpoint(const std::string& dir) {
  CheckpointInspection c;
  c.dir = dir;
  c.architecture = model_architecture(dir);
  c.shape = describe_model(dir);
  const std::optional<QuantizationConfig> q = read_quantization_config(dir);
  if (q) c.quantization = describe_quantization(*q);

  const SafetensorsCheckpoint ckpt = SafetensorsCheckpoint::open_dir(dir);
  for (const std::string& name : ckpt.names()) {
    const TensorInfo& t = ckpt.info(name);
    const int64_t n = shape_numel(t.shape);
    const uint64_t bytes = t.data_end - t.data_begin;
    ++c.tensor_count;
    c.tensor_bytes += bytes;
    DTypeUsage& u = c.by_dtype[std::string(dtype_name(t.dtype))];
    ++u.tensors;
    u.elements += n;
    u.bytes += bytes;
    if (q && ends_with(name, ".qweight")) {
      // Layers may override the global bit width through extra_config.
      const std::string layer = name.substr(0, name.size() - std::string_view(".qweight").size());
      const int bits = resolve_layer_quantization(*q, layer).scheme.bits;
      const int64_t logical = n * (32 / bits);
      c.parameters += logical;
      c.quantized_parameters += logical;
      ++c.quantized_linears;
    } else if (q && (ends_with(name, ".qzeros") || ends_with(name, ".scales") || ends_with(name, ".g_idx"))) {
      c.quant_metadata_elements += n;
    } else {
      c.parameters += n;
    }
  }
  c.safetensors_file_bytes = ckpt.total_file_bytes();
  c.directory_bytes = directory_bytes(dir);
  return c;
}

std::string format_inspection(const CheckpointInspection& c) {
  std::ostringstream os;
  os << "directory:     " << c.dir << "\n"
     << "architecture:  " << c.architecture << " (" << c.shape << ")\n"
     << "parameters:    " << human_count(c.parameters) << " (" << c.parameters << ")";
  if (c.quantized_parameters > 0)
    os << ", of which " << human_count(c.quantized_parameters) << " quantized in " << c.quantized_linears
       << " linear layers (+" << c.quant_metadata_elements << " scale/zero/g_idx elements)";
  os << "\n"
     << "quantization:  " << (c.quantization.empty() ? std::string("none") : c.quantization) << "\n"
     << "tensors:       " << c.tensor_count << "\n";
  for (const auto& [name, u] : c.by_dtype)
    os << "  " << name << ": " << u.tensors << " tensors, " << u.elements << " elements, " << human_bytes(u.bytes)
       << " (" << u.bytes << " bytes)\n";
  os << "size on disk:  " << human_bytes(c.directory_bytes) << " (" << c.directory_bytes << " bytes in all files; "
     << c.safetensors_file_bytes << " bytes in safetensors files, " << c.tensor_bytes << " bytes of tensor data)\n";
  return os.str();
}

}  // namespace omni
