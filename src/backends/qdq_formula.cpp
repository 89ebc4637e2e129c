#include "backends/qdq_formula.h"

#include "core/error.h"

namespace omni {

void QuantScheme::validate() const {
  OMNI_CHECK(bits == 2 || bits == 3 || bits == 4 || bits == 8, "quantization bits must be 2, 3, 4 or 8, found ",
             bits);
  OMNI_CHECK(group_size == -1 || group_size > 0, "quantization group_size must be -1 or positive, found ",
             group_size);
}

}  // namespace omni
