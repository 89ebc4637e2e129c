// What the CUDA backend can see of the machine. Safe to call where there is no GPU or no driver.
#pragma once

#include <cstdint>
#include <string>

namespace omni::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device; throws omni::Error naming the CUDA error
// for any other failure (a broken driver must not look like "no GPU").
int device_count();
std::string device_name(int device);

// Converts bf16 values to f32 on the GPU (upload, kernel, download): the first kernel, a canary that checks
// the toolchain, the driver and the launch path end to end against the CPU conversion.
void bf16_to_f32_on_device(const uint16_t* host_in, float* host_out, int64_t n);

}  // namespace omni::cuda
