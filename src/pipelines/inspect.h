// A summary of a checkpoint directory, computed from its files only (no weights are loaded).
#pragma once

#include <cstdint>
#include <map>
#include <string>


namespace omni {

struct DTypeUsage {
  int64_t tensors = 0;
  int64_t elements = 0;
  uint64_t bytes = 0;
};

struct CheckpointInspection {
  std::string dir;
  std::string architecture;
  std::string shape;                    // one line from the registry: layers, hidden, heads, vocab, ...
  std::string quantization;             // one-line summary, "" if none
  int64_t tensor_count = 0;
  int64_t parameters = 0;               // logical weights: a packed int32 word counts as 32/bits weights
  int64_t quantized_parameters = 0;     // of which stored as packed integers
  int64_t quantized_linears = 0;
  int64_t quant_metadata_elements = 0;  // scales, zero points, g_idx
  std::map<std::string, DTypeUsage> by_dtype;
  uint64_t tensor_bytes = 0;            // bytes of tensor data in the safetensors files
  uint64_t safetensors_file_bytes = 0;  // those files' sizes, headers included
  uint64_t directory_bytes = 0;         // every regular file under dir
};

CheckpointInspection inspect_checkpoint(const std::string& dir);
std::string format_inspection(const CheckpointInspection& c);

}  // namespace omni
