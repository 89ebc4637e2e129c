// Element types. The compute types are f32/f16/bf16/i32/u8; the others exist so that every tensor of a
// safetensors file can be described and passed through unchanged.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace omni {

enum class DType : uint8_t { F32, F16, BF16, I32, U8, F64, I64, I16, I8, U16, U32, U64, Bool, F8_E4M3, F8_E5M2 };

size_t dtype_size(DType t);
// The name used in safetensors headers ("F32", "BF16", ...).
std::string_view dtype_name(DType t);
std::optional<DType> dtype_from_name(std::string_view name);

}  // namespace omni
