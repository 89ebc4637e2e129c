// safetensors: a validating reader over mmap (single files and sharded checkpoints with
// model.safetensors.index.json) and an atomic writer. Every malformed input gives an omni::Error naming the
// file and, where there is one, the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "io/file_util.h"

namespace omni {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t data_begin = 0;  // byte offsets relative to the start of the data section
  uint64_t data_end = 0;
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;  // absolute offset of the data section (8 + header length)
  std::vector<TensorInfo> tensors;  // in file order (by data offset)
  std::map<std::string, std::string> metadata;  // the "__metadata__" entry
};

// Parses and validates the header of a safetensors file held in `bytes` (the whole file). `file_name` is used
// in error messages only. Checks: header length vs file size, JSON syntax, object shapes, dtype names, shape
// values, data_offsets vs dtype*shape, offsets beyond the file, overlaps, duplicate names.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size, const std::string& file_name);

class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint64_t file_bytes() const { return file_->size(); }
  const SafetensorsHeader& header() const { return header_; }
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;  // error naming the tensor and file when absent
  // A tensor borrowing the mapped bytes (keeps the mapping alive). The mapping is read-only: writing through
  // the tensor faults, so clone() before modifying. A tensor whose bytes are misaligned for its dtype (the
  // format allows it) comes back as an aligned copy instead.
  Tensor tensor(std::string_view name) const;

 private:
  std::shared_ptr<MappedFile> file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t, std::less<>> index_;
};

// All tensors of a model directory: model.safetensors, or the shards listed in model.safetensors.index.json
// (every shard is opened and validated; a name mapped to a shard that lacks it is an error).
class SafetensorsCheckpoint {
 public:
  // STEM.safetensors, else the shards of STEM.safetensors.index.json, else the one .safetensors file in dir.
  // Transformers names them "model", diffusers "diffusion_pytorch_model".
  static SafetensorsCheckpoint open_dir(const std::string& dir, const std::string& stem = "model");

  std::vector<std::string> names() const;  // sorted
  bool contains(std::string_view name) const;
  const TensorInfo& info(std::string_view name) const;
  Tensor tensor(std::string_view name) const;  // error naming the tensor and directory when absent
  // tensor(name) for use as a model weight: a float tensor holding NaN or Inf is an error naming it (tensor()
  // itself does not look, so an unused buffer is still copied through unchanged).
  Tensor weight(std::string_view name) const;
  const std::vector<std::shared_ptr<SafetensorsFile>>& files() const { return files_; }
  uint64_t total_file_bytes() const;

 private:
  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t, std::less<>> where_;  // tensor name -> index into files_
};

struct NamedTensor {
  std::string name;
  Tensor tensor;  // CPU, contiguous
};

// Writes one safetensors file atomically. Names must be unique; tensors are laid out contiguously in the given
// order (the reference reader rejects gaps, so offsets are aligned only as far as the sizes allow); the header
// is padded with spaces so that the data section starts at a multiple of 8. Empty metadata is omitted.
void write_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Writes `tensors` into `dir` as STEM.safetensors, or, when they exceed `max_shard_bytes`, as
// STEM-0000i-of-0000n.safetensors shards plus STEM.safetensors.index.json (written last; STEM is "model" for
// transformers, "diffusion_pytorch_model" for diffusers). Each file is atomic;
// `metadata` goes into every file's header. Creates `dir` if needed, and removes a stale model.safetensors (which
// would shadow the new index) or a stale index (which would describe other files). Returns the file names
// written.
std::vector<std::string> write_safetensors_sharded(const std::string& dir, const std::vector<NamedTensor>& tensors,
                                                   uint64_t max_shard_bytes = 5'000'000'000ull,
                                                   const std::map<std::string, std::string>& metadata = {},
                                                   const std::string& stem = "model");

}  // namespace omni
