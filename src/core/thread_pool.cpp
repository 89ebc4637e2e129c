#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace omni {
namespace {

thread_local bool t_inside_worker = false;

// Workers sleep until a job is posted, then claim chunks through an atomic counter. The caller works too.
class ThreadPool {
 public:
  explicit ThreadPool(int n) : size_(std::max(1, n)) {
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return size_; }

  void run(int64_t chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one job at a time
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &chunk_fn;
      job_chunks_ = chunks;
      next_chunk_.store(0);
      pending_ = static_cast<int>(workers_.size());
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    const bool was_inside = t_inside_worker;
    t_inside_worker = true;
    for (;;) {
      const int64_t c = next_chunk_.fetch_add(1);
      if (c >= job_chunks_) break;
      try {
        (*job_)(c);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    t_inside_worker = was_inside;
  }

  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
      }
      work();
      {
        std::lock_guard<std::mutex> lock(mu_);
        --pending_;
      }
      done_cv_.notify_one();
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  int pending_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

std::mutex g_pool_mu;
std::unique_ptr<ThreadPool> g_pool;
int g_requested = 0;

ThreadPool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mu);
  if (!g_pool) {
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    g_pool = std::make_unique<ThreadPool>(g_requested > 0 ? g_requested : std::max(1, hw));
  }
  return *g_pool;
}

}  // namespace

int num_threads() { return pool().size(); }

int set_num_threads(int n) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int used = n <= 0 ? cores : std::min(n, kMaxThreadsPerCore * cores);
  std::lock_guard<std::mutex> lock(g_pool_mu);
  g_requested = used;
  g_pool.reset();
  return used;
}

void parallel_for(int64_t begin, int64_t end, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (end <= begin) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t n = end - begin;
  ThreadPool& p = pool();
  if (t_inside_worker || p.size() == 1 || n <= grain) {
    fn(begin, end);
    return;
  }
  // A few chunks per thread balance uneven work without much overhead.
  const int64_t max_chunks = static_cast<int64_t>(p.size()) * 4;
  const int64_t chunks = std::min(max_chunks, (n + grain - 1) / grain);
  const int64_t step = (n + chunks - 1) / chunks;
  p.run(chunks, [&](int64_t c) {
    const int64_t lo = begin + c * step;
    const int64_t hi = std::min(end, lo + step);
    if (lo < hi) fn(lo, hi);
  });
}

}  // namespace omni
