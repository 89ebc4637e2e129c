// A caching allocator for one device: blocks freed by tensors go back to a pool and are handed out again, so ops
// never call cudaMalloc in steady state (a forward allocates the same shapes every step).
//
// Reuse is safe because the backend queues all work on one stream: a block freed on the host while a kernel may
// still read it is only handed to work queued after that kernel. Sizes are rounded (512 B below 1 MiB, 2 MiB
// above) so that slightly different shapes share blocks.
//
// While a capture (CUDA graph) is being recorded, allocate() hands out only cached blocks, never cudaMalloc, and
// every block it hands out then belongs to the capture's CapturePool until the pool (kept by the graph) is gone:
// a replay writes those addresses again, so they must not go to other tensors meanwhile. Blocks freed inside the
// capture are reused inside it, as stream order allows.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <vector>


namespace omni::cuda {

struct DeviceMemoryStats {
  size_t in_use = 0;       // bytes held by live tensors
  size_t peak_in_use = 0;
  size_t cached = 0;       // bytes in the pool, free for reuse
  size_t device_mallocs = 0;
};

// The blocks one capture used (each returns to the allocator's pool when the last of the pool and the tensor
// holding it is gone).
struct CapturePool {
  std::vector<std::shared_ptr<void>> owned;
  std::multimap<size_t, std::shared_ptr<void>> free;  // freed inside the capture, for reuse inside it
};

class DeviceAllocator : public std::enable_shared_from_this<DeviceAllocator> {
 public:
  static std::shared_ptr<DeviceAllocator> create(int device);
  ~DeviceAllocator();

  // `bytes` of device memory; releasing the last reference returns the block to the pool. Out of memory (after
  // releasing the pool once) is an error that says how much was asked for and how much is in use.
  std::shared_ptr<void> allocate(size_t bytes);
  // Returns every pooled block to the driver.
  void release_cached();
  DeviceMemoryStats stats() const;
  // Starts routing allocations to a new CapturePool (one capture at a time); end_capture() returns it.
  void begin_capture();
  std::shared_ptr<CapturePool> end_capture();

 private:
  explicit DeviceAllocator(int device) : device_(device) {}
  // The block `p` of `size` rounded bytes, counted as in use, with a deleter that pools it again.
  std::shared_ptr<void> hand_out(void* p, size_t size);  // under mu_
  void give_back(void* p, size_t size);

  int device_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;  // rounded size -> block
  std::shared_ptr<CapturePool> capture_;  // non-null while a capture is recorded
  DeviceMemoryStats stats_;
};

}  // namespace omni::cuda
