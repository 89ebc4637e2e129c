#include "pipelines/autoround/autoround_options.h"

#include "core/error.h"

namespace omni {

const char* quant_method_name(QuantMethod m) { return m == QuantMethod::AutoRound ? "autoround" : "rtn-opt"; }

void AutoRoundOptions::apply_recipe(const std::string& name) {
  if (name == "default") return;
  if (name == "light") {
    iters = 50;
    lr = 5e-3;
    return;
  }
  if (name == "best") {
    iters = 1000;
    nsamples = 512;
    return;
  }
  OMNI_FAIL("unknown recipe \"", name, "\"; choose light, default or best");
}

}  // namespace omni
