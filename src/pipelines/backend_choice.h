// Which backend a command runs on: `--device cpu|cuda[:N]|auto` and the activation dtype `--dtype f32|bf16|f16`,
// turned into a Backend. "auto" is the first GPU when this build has CUDA and the machine a device, else the
// CPU. Activations default to BF16 on a GPU (A16) and F32 on the CPU (the CPU's fastest exact path).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "backends/backend.h"

namespace omni {

struct BackendChoice {
  Device device;
  DType activations = DType::F32;
};

// Throws on an unknown device or dtype, a CUDA device in a build without CUDA, or one that is not present.
BackendChoice choose_backend(const std::string& device, const std::string& dtype);
std::unique_ptr<Backend> create_backend(const BackendChoice& choice);

// Whether this build can run on CUDA devices.
bool built_with_cuda();

// The most device memory the backend's allocator held at once so far, in bytes; nullopt on a host backend
// (report peak_rss_bytes() there).
std::optional<uint64_t> device_memory_peak_bytes(const Backend& backend);

}  // namespace omni
