#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "core/half.h"

namespace omni {

std::string device_name(Device d) {
  return d.is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(d.index);
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  for (int64_t d : shape) OMNI_CHECK(d >= 0, "negative dimension in shape ", shape_str(shape));
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) OMNI_FAIL("out of memory allocating ", bytes, " bytes for a tensor of shape ", shape_str(shape));
  Tensor t;
  t.storage_ = std::make_shared<Storage>(Storage{p, bytes, Device::CPU, std::shared_ptr<void>(p, std::free)});
  t.dtype_ = dtype;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::borrow(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keepalive, Device device) {
  Tensor t;
  const size_t bytes = static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype);
  t.storage_ = std::make_shared<Storage>(Storage{data, bytes, device, std::move(keepalive)});
  t.dtype_ = dtype;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::from_f32(std::span<const float> values, const Shape& shape) {
  OMNI_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_f32: ", values.size(),
             " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::F32);
  std::memcpy(t.raw(), values.data(), values.size_bytes());
  return t;
}

Tensor Tensor::from_i32(std::span<const int32_t> values, const Shape& shape) {
  OMNI_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape), "from_i32: ", values.size(),
             " values for shape ", shape_str(shape));
  Tensor t = empty(shape, DType::I32);
  std::memcpy(t.raw(), values.data(), values.size_bytes());
  return t;
}

int64_t Tensor::dim(int i) const {
  const int n = ndim();
  const int j = i < 0 ? i + n : i;
  OMNI_CHECK(j >= 0 && j < n, "dimension ", i, " out of range for shape ", shape_str(shape_));
  return shape_[static_cast<size_t>(j)];
}

namespace {
template <class T>
bool dtype_matches(DType d) {
  if constexpr (std::is_same_v<T, float>) return d == DType::F32;
  else if constexpr (std::is_same_v<T, double>) return d == DType::F64;
  else if constexpr (std::is_same_v<T, int32_t>) return d == DType::I32;
  else if constexpr (std::is_same_v<T, uint32_t>) return d == DType::I32 || d == DType::U32;
  else if constexpr (std::is_same_v<T, int64_t>) return d == DType::I64;
  else if constexpr (std::is_same_v<T, uint16_t>) return d == DType::F16 || d == DType::BF16 || d == DType::U16;
  else if constexpr (std::is_same_v<T, int16_t>) return d == DType::I16;
  else if constexpr (std::is_same_v<T, uint8_t>) return dtype_size(d) == 1;
  else if constexpr (std::is_same_v<T, int8_t>) return d == DType::I8;
  else return false;
}
}  // namespace

template <class T>
T* Tensor::data() {
  OMNI_CHECK(defined(), "access to an undefined tensor");
  OMNI_CHECK(dtype_matches<T>(dtype_), "tensor of dtype ", dtype_name(dtype_), " accessed with the wrong C++ type");
  return static_cast<T*>(raw());
}
template <class T>
const T* Tensor::data() const {
  OMNI_CHECK(defined(), "access to an undefined tensor");
  OMNI_CHECK(dtype_matches<T>(dtype_), "tensor of dtype ", dtype_name(dtype_), " accessed with the wrong C++ type");
  return static_cast<const T*>(raw());
}

#define OMNI_INSTANTIATE(T) template T* Tensor::data<T>(); template const T* Tensor::data<T>() const;
OMNI_INSTANTIATE(float)
OMNI_INSTANTIATE(double)
OMNI_INSTANTIATE(int32_t)
OMNI_INSTANTIATE(uint32_t)
OMNI_INSTANTIATE(int64_t)
OMNI_INSTANTIATE(uint16_t)
OMNI_INSTANTIATE(int16_t)
OMNI_INSTANTIATE(uint8_t)
OMNI_INSTANTIATE(int8_t)
#undef OMNI_INSTANTIATE

Tensor Tensor::view(const Shape& shape) const {
  OMNI_CHECK(shape_numel(shape) == numel(), "cannot view a tensor of shape ", shape_str(shape_), " as ",
             shape_str(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t end) const {
  OMNI_CHECK(ndim() >= 1 && begin >= 0 && begin <= end && end <= shape_[0], "slice_rows [", begin, ", ", end,
             ") out of range for shape ", shape_str(shape_));
  Tensor t = *this;
  const int64_t row = shape_[0] == 0 ? 0 : numel() / shape_[0];
  t.offset_ += static_cast<size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

namespace {
float load_as_f32(const void* p, DType d, int64_t i) {
  switch (d) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    default: OMNI_FAIL("conversion from ", dtype_name(d), " is not supported");
  }
}
void store_from_f32(void* p, DType d, int64_t i, float v) {
  switch (d) {
    case DType::F32: static_cast<float*>(p)[i] = v; break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(v); break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(v); break;
    default: OMNI_FAIL("conversion to ", dtype_name(d), " is not supported");
  }
}
}  // namespace

void convert_to_f32(float* dst, const void* src, DType dtype, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = load_as_f32(src, dtype, i);
}

Tensor Tensor::to(DType dtype) const {
  OMNI_CHECK(defined(), "conversion of an undefined tensor");
  OMNI_CHECK(device() == Device::CPU, "Tensor::to works on CPU tensors only");
  Tensor out = empty(shape_, dtype);
  if (dtype == dtype_) {
    std::memcpy(out.raw(), raw(), nbytes());
    return out;
  }
  const int64_t n = numel();
  const void* src = raw();
  void* dst = out.raw();
  for (int64_t i = 0; i < n; ++i) store_from_f32(dst, dtype, i, load_as_f32(src, dtype_, i));
  return out;
}

}  // namespace omni
