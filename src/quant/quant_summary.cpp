#include "quant/quant_summary.h"

#include <sstream>

namespace omni {

std::string describe_quantization(const QuantizationConfig& cfg) {
  std::ostringstream os;
  os << cfg.quant_method << " W" << cfg.bits << " group " << cfg.group_size << (cfg.sym ? " sym" : " asym");
  if (!cfg.is_gptq()) os << ", packing " << cfg.packing_format;
  if (cfg.is_gptq()) os << ", desc_act " << (cfg.desc_act ? "true" : "false");
  if (!cfg.block_name_to_quantize.empty()) {
    os << ", blocks ";
    for (size_t i = 0; i < cfg.block_name_to_quantize.size(); ++i)
      os << (i ? "," : "") << cfg.block_name_to_quantize[i];
  }
  if (!cfg.extra_config.empty())
    os << ", " << cfg.extra_config.size() << " extra_config entr" << (cfg.extra_config.size() == 1 ? "y" : "ies");
  return os.str();
}

}  // namespace omni
