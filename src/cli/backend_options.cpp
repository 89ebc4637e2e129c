#include "cli/backend_options.h"

#include <CLI/CLI.hpp>

#include "pipelines/backend_choice.h"

namespace omni::cli {

void add_backend_options(CLI::App* sub, BackendArgs* a, bool with_dtype) {
  sub->add_option("--device", a->device, "cpu, cuda, cuda:N or auto (a GPU when one is present)")
      ->capture_default_str();
  if (with_dtype)
    sub->add_option("--dtype", a->dtype, "activation dtype: f32, bf16, f16 or auto (bf16 on a GPU, f32 on the CPU)")
        ->capture_default_str();
}

std::unique_ptr<Backend> make_backend(const BackendArgs& a, const char* forced_dtype) {
  return create_backend(choose_backend(a.device, forced_dtype ? forced_dtype : a.dtype));
}

}  // namespace omni::cli
