// A dense, row-major tensor: shape, dtype, device, and a shared storage that is either owned (aligned heap or
// device memory) or borrowed (e.g. a slice of an mmap'ed safetensors file kept alive by a shared handle).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"

namespace omni {

enum class DeviceKind : uint8_t { CPU, CUDA };

// Where a tensor's bytes live: the host, or one accelerator of a kind, by index (cuda:0, cuda:1).
struct Device {
  DeviceKind kind = DeviceKind::CPU;
  int index = 0;

  static const Device CPU;
  static Device cuda(int i) { return Device{DeviceKind::CUDA, i}; }
  bool is_cpu() const { return kind == DeviceKind::CPU; }
  bool operator==(const Device& o) const { return kind == o.kind && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};
inline const Device Device::CPU{};
std::string device_name(Device d);  // "cpu", "cuda:1"

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);

// Raw memory. `keepalive` holds whatever owns the bytes (a heap block, an mmap, a cudaMalloc'ed block).
struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device = Device::CPU;
  std::shared_ptr<void> keepalive;
};

class Tensor {
 public:
  Tensor() = default;

  // Uninitialised CPU tensor, 64-byte aligned.
  static Tensor empty(const Shape& shape, DType dtype);
  static Tensor zeros(const Shape& shape, DType dtype);
  // Wraps memory owned elsewhere; `keepalive` must keep it valid for the tensor's lifetime.
  static Tensor borrow(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keepalive,
                       Device device = Device::CPU);
  // Copies a vector into a new f32/i32 tensor (tests and small tables).
  static Tensor from_f32(std::span<const float> values, const Shape& shape);
  static Tensor from_i32(std::span<const int32_t> values, const Shape& shape);

  bool defined() const { return storage_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return storage_ ? storage_->device : Device::CPU; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  // Size of dimension i; negative i counts from the end.
  int64_t dim(int i) const;
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw() { return static_cast<char*>(storage_->data) + offset_; }
  const void* raw() const { return static_cast<const char*>(storage_->data) + offset_; }
  // Typed access; throws if T does not match the dtype's element size class (see tensor.cpp).
  template <class T>
  T* data();
  template <class T>
  const T* data() const;

  // Same bytes, new shape (numel must match).
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) of the first dimension, sharing storage.
  Tensor slice_rows(int64_t begin, int64_t end) const;
  // A CPU copy converted to `dtype` (f32/f16/bf16 among themselves; same-dtype copies for all types).
  Tensor to(DType dtype) const;
  Tensor clone() const { return to(dtype_); }

 private:
  std::shared_ptr<Storage> storage_;
  size_t offset_ = 0;
  DType dtype_ = DType::F32;
  Shape shape_;
};

// n values of a CPU array of dtype (F32, F16 or BF16) as f32 into dst: the element conversion Tensor::to uses,
// for callers that convert part of a tensor.
void convert_to_f32(float* dst, const void* src, DType dtype, int64_t n);

}  // namespace omni
