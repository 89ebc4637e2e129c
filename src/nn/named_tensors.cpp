#include "core/error.h"
#include "nn/block.h"

namespace omni {

void NamedTensors::set(std::string name, Tensor t) {
  for (auto& [n, v] : items_)
    if (n == name) {
      v = std::move(t);
      return;
    }
  items_.emplace_back(std::move(name), std::move(t));
}

Tensor& NamedTensors::at(std::string_view name) {
  for (auto& [n, v] : items_)
    if (n == name) return v;
  OMNI_FAIL("no block tensor named \"", name, "\"");
}

const Tensor& NamedTensors::at(std::string_view name) const { return const_cast<NamedTensors*>(this)->at(name); }

bool NamedTensors::contains(std::string_view name) const {
  for (const auto& [n, v] : items_)
    if (n == name) return true;
  return false;
}

}  // namespace omni
