#include "backends/cuda/device_allocator.h"

#include <algorithm>
#include <utility>

#include "backends/cuda/cuda_check.h"

namespace omni::cuda {
namespace {

size_t round_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t{2} << 20, kLargeFrom = size_t{1} << 20;
  if (bytes == 0) bytes = 1;
  const size_t unit = bytes < kLargeFrom ? kSmall : kLarge;
  return (bytes + unit - 1) / unit * unit;
}

constexpr double kMiB = 1024.0 * 1024.0;

}  // namespace

std::shared_ptr<DeviceAllocator> DeviceAllocator::create(int device) {
  return std::shared_ptr<DeviceAllocator>(new DeviceAllocator(device));
}

DeviceAllocator::~DeviceAllocator() { release_cached(); }

std::shared_ptr<void> DeviceAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (capture_) {
      // Inside a capture: a block freed earlier in it, else a cached one (now owned by the capture), never
      // cudaMalloc.
      std::shared_ptr<void> owner;
      size_t got = 0;
      auto c = capture_->free.lower_bound(size);
      if (c != capture_->free.end() && c->first <= 2 * size) {
        got = c->first;
        owner = std::move(c->second);
        capture_->free.erase(c);
      } else {
        auto it = free_.lower_bound(size);
        OMNI_CHECK(it != free_.end() && it->first <= 2 * size, "allocation of ", size,
                   " bytes inside a capture: no cached block fits (a capture may not call cudaMalloc; run the "
                   "same work once eagerly first)");
        got = it->first;
        void* p = it->second;
        free_.erase(it);
        stats_.cached -= got;
        owner = hand_out(p, got);
        capture_->owned.push_back(owner);
      }
      void* p = owner.get();
      auto self = shared_from_this();
      std::weak_ptr<CapturePool> pool = capture_;
      return std::shared_ptr<void>(p, [self, pool, owner, got](void*) {
        const std::shared_ptr<CapturePool> cp = pool.lock();  // released after the lock (it may free blocks)
        if (!cp) return;
        std::lock_guard<std::mutex> l(self->mu_);
        cp->free.emplace(got, owner);
      });
    }
    // Best fit, but never a block more than twice the request (a small tensor must not pin a huge block).
    auto it = free_.lower_bound(size);
    if (it != free_.end() && it->first <= 2 * size) {
      const auto [got, p] = *it;
      free_.erase(it);
      stats_.cached -= got;
      return hand_out(p, got);
    }
  }
  OMNI_CUDA(cudaSetDevice(device_));
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    release_cached();  // fragmentation: give the pool back and try once more
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    OMNI_FAIL("out of device memory on cuda:", device_, ": asked for ", size / kMiB, " MiB; omniround holds ",
              stats().in_use / kMiB, " MiB, the device has ", free_b / kMiB, " of ", total_b / kMiB,
              " MiB free (", cudaGetErrorString(e), ")");
  }
  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.device_mallocs;
  return hand_out(p, size);
}

std::shared_ptr<void> DeviceAllocator::hand_out(void* p, size_t size) {
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  auto self = shared_from_this();
  return std::shared_ptr<void>(p, [self, size](void* q) { self->give_back(q, size); });
}

void DeviceAllocator::give_back(void* p, size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  stats_.in_use -= size;
  stats_.cached += size;
  free_.emplace(size, p);
}

void DeviceAllocator::release_cached() {
  std::lock_guard<std::mutex> lock(mu_);
  cudaSetDevice(device_);
  cudaDeviceSynchronize();  // a pooled block may still be read by queued work
  for (auto& [size, p] : free_) cudaFree(p);
  free_.clear();
  stats_.cached = 0;
}

void DeviceAllocator::begin_capture() {
  std::lock_guard<std::mutex> lock(mu_);
  OMNI_CHECK(!capture_, "begin_capture: a capture is already being recorded");
  capture_ = std::make_shared<CapturePool>();
}

std::shared_ptr<CapturePool> DeviceAllocator::end_capture() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(capture_, nullptr);
}

DeviceMemoryStats DeviceAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace omni::cuda
