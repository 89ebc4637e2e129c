// Where tile t of a packed W4A16 weight keeps its codes, scales and zero points (layout in w4a16_pack.cpp):
// shared by the f32 kernels, the integer kernels and the prefill packer.
#pragma once

#include <cstdint>

#include "backends/cpu/w4a16_matmul.h"

namespace omni {

struct W4TileData {
  const uint32_t* codes;   // [rows][kW4TileOutputs] words
  const uint16_t* scales;  // [S][kW4TileOutputs] f16
  const uint8_t* zeros;    // [S][kW4TileOutputs]
};

inline W4TileData w4_tile_data(const W4A16CpuWeights& w, int64_t t) {
  const int64_t rows = w.padded_inputs / 8, S = w.num_segments();
  return {w.codes.data<uint32_t>() + t * rows * kW4TileOutputs, w.scales.data<uint16_t>() + t * S * kW4TileOutputs,
          w.zeros.data<uint8_t>() + t * S * kW4TileOutputs};
}

}  // namespace omni
