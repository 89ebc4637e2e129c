#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace omni {
namespace {

thread_local bool t_inside_worker = false;

// How long an idle thread spins (checking an atomic) before it sleeps on a condition variable. A decode step
// posts hundreds of small jobs per token, a few microseconds apart; waking a sleeping thread costs tens of
// microseconds (more in a VM), so workers that just finished a job, and a caller waiting for the last chunk, spin
// for a while first. Past this they sleep, so an idle pool costs nothing.
constexpr auto kSpinFor = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kSpinFor has passed; returns done().
template <class Done>
bool spin_until(const Done& done) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (done()) return true;
    cpu_relax();
    if ((i & 255) == 255 && std::chrono::steady_clock::now() - start > kSpinFor) return done();
  }
}

// Workers wait (spin, then sleep) until a job is posted, then claim chunks through an atomic counter. The caller
// works too.
class ThreadPool {
 public:
  explicit ThreadPool(int n) : size_(std::max(1, n)) {
    for (int i = 1; i < size_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return size_; }

  void run(int64_t chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::lock_guard<std::mutex> serial(run_mu_);  // one job at a time
    job_ = &chunk_fn;
    job_chunks_ = chunks;
    next_chunk_.store(0);
    error_ = nullptr;
    pending_.store(static_cast<int>(workers_.size()));
    {
      // Under mu_ so that a worker checking the generation before it sleeps cannot miss this job.
      std::lock_guard<std::mutex> lock(mu_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();  // no system call when every worker is still spinning
    work();
    if (!spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) {
      std::unique_lock<std::mutex> lock(mu_);
      done_cv_.wait(lock, [this] { return pending_.load(std::memory_order_acquire) == 0; });
    }
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
      auto posted = [&] { return stop_.load() || generation_.load(std::memory_order_acquire) != seen; };
      if (!spin_until(posted)) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, posted);
      }
      if (stop_.load()) return;
      seen = generation_.load(std::memory_order_acquire);
      work();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mu_);  // the caller may be between its check and its sleep
        done_cv_.notify_one();
      }
    }
  }

  int size_;
  std::vector<std::thread> workers_;
  std::mutex run_mu_, mu_;
  std::condition_variable cv_, done_cv_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  std::atomic<int> pending_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
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
