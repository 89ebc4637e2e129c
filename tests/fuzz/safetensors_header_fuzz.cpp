// libFuzzer target for the safetensors header parser: any input must either parse into a header that keeps the
// parser's promises or throw omni::Error. Anything else (a crash, a sanitizer report, another exception type
// escaping) is a finding. Built and run by scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "core/error.h"
#include "io/safetensors.h"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "parser accepted a header that breaks its promise: %s\n", what);
    __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const omni::SafetensorsHeader h = omni::parse_safetensors_header(data, size, "fuzz-input");
    require(h.data_offset >= 8 && h.data_offset <= size, "data section starts inside the file");
    const uint64_t data_bytes = size - h.data_offset;
    uint64_t reached = 0;
    for (const omni::TensorInfo& t : h.tensors) {
      require(t.data_begin <= t.data_end && t.data_end <= data_bytes, "offsets within the data section");
      require(t.data_end - t.data_begin ==
                  static_cast<uint64_t>(omni::shape_numel(t.shape)) * omni::dtype_size(t.dtype),
              "byte range matches shape and dtype");
      if (t.data_begin == t.data_end) continue;
      require(t.data_begin >= reached, "tensors in file order and not overlapping");
      reached = t.data_end;
      // Touch the first and last byte, as a loader would; ASan flags any read outside the input.
      volatile uint8_t first = data[h.data_offset + t.data_begin];
      volatile uint8_t last = data[h.data_offset + t.data_end - 1];
      (void)first;
      (void)last;
    }
  } catch (const omni::Error&) {
    // The expected outcome for malformed input.
  }
  return 0;
}
