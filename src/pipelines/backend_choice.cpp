#include "pipelines/backend_choice.h"

#include <cstdlib>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#ifdef OMNI_HAVE_CUDA
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_runtime_info.h"
#endif

namespace omni {
namespace {

int gpu_count() {
#ifdef OMNI_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

DType parse_dtype(const std::string& s) {
  if (s == "f32" || s == "fp32" || s == "float32") return DType::F32;
  if (s == "bf16" || s == "bfloat16") return DType::BF16;
  if (s == "f16" || s == "fp16" || s == "float16") return DType::F16;
  OMNI_FAIL("--dtype ", s, ": expected f32, bf16 or f16");
}

}  // namespace

bool built_with_cuda() {
#ifdef OMNI_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

BackendChoice choose_backend(const std::string& device, const std::string& dtype) {
  BackendChoice c;
  if (device == "cpu") {
    c.device = Device::CPU;
  } else if (device == "auto" || device.empty()) {
    c.device = gpu_count() > 0 ? Device::cuda(0) : Device::CPU;
  } else if (device.rfind("cuda", 0) == 0) {
    int index = 0;
    if (device.size() > 4) {
      OMNI_CHECK(device[4] == ':' && device.size() > 5, "--device ", device, ": expected cuda or cuda:N");
      char* end = nullptr;
      const long v = std::strtol(device.c_str() + 5, &end, 10);
      OMNI_CHECK(*end == '\0' && v >= 0 && v < 1024, "--device ", device, ": expected cuda or cuda:N");
      index = static_cast<int>(v);
    }
    OMNI_CHECK(built_with_cuda(), "--device ", device, ": this omniround was built without CUDA (configure with -DOMNI_CUDA=ON)");
    const int n = gpu_count();
    OMNI_CHECK(n > 0, "--device ", device, ": no CUDA device on this machine");
    OMNI_CHECK(index < n, "--device ", device, ": only ", n, " CUDA device(s) present");
    c.device = Device::cuda(index);
  } else {
    OMNI_FAIL("--device ", device, ": expected cpu, cuda, cuda:N or auto");
  }
  if (dtype.empty() || dtype == "auto")
    c.activations = c.device.is_cpu() ? DType::F32 : DType::BF16;
  else
    c.activations = parse_dtype(dtype);
  return c;
}

std::unique_ptr<Backend> create_backend(const BackendChoice& choice) {
  if (choice.device.is_cpu()) return std::make_unique<CpuBackend>(choice.activations);
#ifdef OMNI_HAVE_CUDA
  return std::make_unique<cuda::CudaBackend>(choice.device.index, choice.activations);
#else
  OMNI_FAIL("device ", device_name(choice.device), ": this omniround was built without CUDA");
#endif
}

std::optional<uint64_t> device_memory_peak_bytes(const Backend& backend) {
#ifdef OMNI_HAVE_CUDA
  if (const auto* cuda = dynamic_cast<const cuda::CudaBackend*>(&backend)) return cuda->memory_stats().peak_in_use;
#endif
  (void)backend;
  return std::nullopt;
}

}  // namespace omni
