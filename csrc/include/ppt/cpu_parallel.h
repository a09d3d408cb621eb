// Work sharing of ppt's CPU kernels: ppt::parallel_for, in place of at::parallel_for.
//
// Why not at::parallel_for: torch's CPU wheels run it on libgomp, whose threads busy-wait
// (OMP_WAIT_POLICY unset: ~300k spins, milliseconds) at the end of every parallel region and
// between regions, and each region hands every thread a fixed share. On a machine with another
// busy process, one of the team's threads is often descheduled: the region then ends only when
// the scheduler runs it again (a time slice later) while the other threads spin on the cores it
// could use. A kernel of a few short regions then runs 2-5x slower with 2 threads than with 1
// (measured on 2 cores: bench/results/cpu-contention).
//
// ppt::parallel_for instead splits the range into chunks that the calling thread and helper
// threads claim one at a time: the caller works through the chunks itself and waits only for
// chunks a helper has already claimed, never for a helper that has not started, so a descheduled
// helper costs at most its current chunk. Helpers wait for work asleep (a condition variable, after
// a spin of a few microseconds), so an idle helper takes no CPU from anyone, and a caller waiting
// for a helper's chunk sleeps too, freeing its core for that helper.
//
// Contract (as at::parallel_for's): f(chunk_begin, chunk_end) is called on disjoint contiguous
// ranges that cover [begin, end), each at least `grain` long except the last; which thread runs
// a chunk and how the range is cut are unspecified (the cut depends on the thread count), so a
// result that must not depend on them has to be computed per fixed unit inside f. Up to
// at::get_num_threads() threads take part (torch.set_num_threads applies); inside a chunk, or in
// an OpenMP parallel region, the loop runs inline. The first exception thrown by f is rethrown to
// the caller once every claimed chunk has finished; chunks not yet started are then skipped.
// f must not run torch operators that need the GIL or a device.
//
// ppt::cpu_op<&kernel> registers a CPU kernel so that it runs in a CpuOpScope: the torch operators
// the kernel calls for its bookkeeping (argument checks, allocation, small copies, the kernel-map
// compaction) then run on the calling thread alone instead of forking an OpenMP team (whose
// regions stall the same way), while ppt::parallel_for keeps the caller's thread count.
#pragma once

#include <ATen/Parallel.h>
#include <c10/util/ParallelGuard.h>
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace ppt {
namespace cpu_parallel {

// Chunks per participating thread: enough that the others absorb a descheduled thread's share.
constexpr int64_t kChunksPerThread = 8;
// How long a waiting thread polls before it sleeps: long enough to catch the next of a kernel's
// back-to-back loops, far shorter than a scheduler time slice.
constexpr std::chrono::microseconds kSpin{50};

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Polls `done` for up to kSpin; true when it became true.
template <typename Done>
bool spin_until(const Done& done) {
  const auto stop = std::chrono::steady_clock::now() + kSpin;
  do {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
  } while (std::chrono::steady_clock::now() < stop);
  return done();
}

// True on a thread that is running a chunk: nested loops run inline.
inline bool& in_chunk() {
  thread_local bool value = false;
  return value;
}

// One parallel loop: its chunks, the claim and completion counters, the first error.
class Loop {
 public:
  using Body = void (*)(const void* f, int64_t begin, int64_t end);

  Loop(int64_t begin, int64_t end, int64_t chunk, int helpers, Body body, const void* f)
      : begin_(begin), end_(end), chunk_(chunk), chunks_((end - begin + chunk - 1) / chunk),
        body_(body), f_(f), helper_slots_(helpers) {}

  // A helper's admission: at most `helpers` of the pool's threads take part.
  bool admit_helper() { return helper_slots_.fetch_sub(1, std::memory_order_relaxed) > 0; }

  // Claims and runs chunks until none is left unclaimed; returns how many this thread ran.
  int64_t work() {
    int64_t ran = 0;
    const bool outer = in_chunk();
    in_chunk() = true;
    c10::ParallelGuard guard(true);  // at::parallel_for inside f runs inline
    for (int64_t c; (c = next_.fetch_add(1, std::memory_order_relaxed)) < chunks_; ++ran) {
      if (!failed_.load(std::memory_order_relaxed)) {
        try {
          const int64_t first = begin_ + c * chunk_;
          body_(f_, first, std::min(end_, first + chunk_));
        } catch (...) {
          std::lock_guard<std::mutex> lock(mutex_);
          if (!error_) error_ = std::current_exception();
          failed_.store(true, std::memory_order_relaxed);
        }
      }
      if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks_) {
        std::lock_guard<std::mutex> lock(mutex_);  // no lost wake-up between the caller's check and its wait
        all_finished_.notify_all();
      }
    }
    in_chunk() = outer;
    return ran;
  }

  int64_t chunks() const { return chunks_; }

  // The caller: after its own work(), waits for the chunks helpers still run, then rethrows.
  void wait_and_rethrow() {
    const auto done = [this] { return finished_.load(std::memory_order_acquire) == chunks_; };
    if (!spin_until(done)) {
      std::unique_lock<std::mutex> lock(mutex_);
      all_finished_.wait(lock, done);
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  const int64_t begin_, end_, chunk_, chunks_;
  const Body body_;
  const void* const f_;  // valid while the caller waits, i.e. while any claimed chunk runs
  std::atomic<int> helper_slots_;
  std::atomic<int64_t> next_{0}, finished_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::condition_variable all_finished_;
  std::exception_ptr error_;
};

// Helper threads, started on first use and grown to the largest number asked for. The newest loop
// is published with a generation number; a helper that wakes joins it if a slot is left. A helper
// that joins after its loop has finished only finds no chunk (it holds its own reference).
class HelperPool {
 public:
  void post(std::shared_ptr<Loop> loop, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (threads_ < helpers) {
        std::thread([this] { serve(); }).detach();
        ++threads_;
      }
      loop_ = std::move(loop);
      generation_.fetch_add(1, std::memory_order_release);
    }
    if (helpers == threads_) {
      wake_.notify_all();
    } else {
      for (int i = 0; i < helpers; ++i) wake_.notify_one();
    }
  }

 private:
  void serve() {
    uint64_t seen = 0;
    for (;;) {
      const auto posted = [&] { return generation_.load(std::memory_order_acquire) != seen; };
      std::shared_ptr<Loop> loop;
      spin_until(posted);
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, posted);
        seen = generation_.load(std::memory_order_relaxed);
        loop = loop_;
      }
      if (loop->admit_helper()) loop->work();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<Loop> loop_;
  std::atomic<uint64_t> generation_{0};
  int threads_ = 0;
};

// How many threads pay off. A helper that is descheduled while it holds a chunk makes the caller
// wait for it, up to a scheduler time slice, while the caller alone would long have finished: on a
// machine whose cores are all taken, more threads make a loop slower. After each parallel loop the
// caller compares the loop's time with its own pace times the number of chunks (what it would
// have taken alone); a loop that lost by more than kLossSlack caps later loops at one thread fewer
// for a window that doubles with each consecutive loss (kFirstWindow to kLongestWindow). When the
// window ends, the next loop probes the full count again; a full-count loop that wins resets the
// window. On an idle machine loops win and the cap never applies.
class ThreadBudget {
 public:
  static constexpr std::chrono::microseconds kLossSlack{100};
  static constexpr std::chrono::milliseconds kFirstWindow{20};
  static constexpr int kMaxDoublings = 6;  // kLongestWindow = 64 x kFirstWindow

  // The threads a loop may use now, out of `wanted`.
  int threads(int wanted, int64_t now_ns) const {
    if (now_ns >= cap_until_ns_.load(std::memory_order_relaxed)) return wanted;
    return std::max(1, std::min(wanted, cap_.load(std::memory_order_relaxed)));
  }

  // After a loop allowed `used` threads out of `wanted`: it took `elapsed_ns`; the caller ran
  // `own_chunks` of its `chunks` chunks in `own_ns`.
  void judge(int used, int wanted, int64_t elapsed_ns, int64_t own_ns, int64_t own_chunks, int64_t chunks,
             int64_t now_ns) {
    if (own_chunks == 0) return;
    const double alone_ns = static_cast<double>(own_ns) * chunks / own_chunks;
    if (elapsed_ns > alone_ns + std::chrono::nanoseconds(kLossSlack).count()) {
      const int doublings = std::min(kMaxDoublings, losses_.fetch_add(1, std::memory_order_relaxed));
      cap_.store(used - 1, std::memory_order_relaxed);
      cap_until_ns_.store(now_ns + (std::chrono::nanoseconds(kFirstWindow).count() << doublings),
                          std::memory_order_relaxed);
    } else if (used == wanted) {
      losses_.store(0, std::memory_order_relaxed);
    }
  }

 private:
  std::atomic<int> cap_{0}, losses_{0};
  std::atomic<int64_t> cap_until_ns_{0};
};

inline ThreadBudget& budget() {
  static ThreadBudget value;
  return value;
}

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The process's pool. A forked child has none of the parent's threads (and maybe a locked mutex of
// the parent's pool): it starts a pool of its own, leaving the parent's object untouched.
inline std::atomic<HelperPool*>& pool_slot() {
  static std::atomic<HelperPool*> slot{nullptr};
  return slot;
}

inline HelperPool& pool() {
  static const bool fork_handler = [] {
    pthread_atfork(nullptr, nullptr, [] { pool_slot().store(nullptr); });
    return true;
  }();
  (void)fork_handler;
  HelperPool* current = pool_slot().load(std::memory_order_acquire);
  if (current == nullptr) {
    static std::mutex create;
    std::lock_guard<std::mutex> lock(create);
    current = pool_slot().load(std::memory_order_acquire);
    if (current == nullptr) {
      current = new HelperPool();  // never deleted: detached helpers use it until the process ends
      pool_slot().store(current, std::memory_order_release);
    }
  }
  return *current;
}

// The scope of one ppt CPU op on this thread: torch's OpenMP regions are limited to this thread
// (omp_set_num_threads(1), restored on exit; the setting is per thread, so other threads are
// untouched), and ppt::parallel_for uses the thread count torch had when the op started.
class CpuOpScope {
 public:
  CpuOpScope() : outer_(active()), threads_(outer_ != nullptr ? outer_->threads_ : at::get_num_threads()) {
#ifdef _OPENMP
    omp_threads_ = omp_get_max_threads();
    omp_set_num_threads(1);
#endif
    active() = this;
  }
  ~CpuOpScope() {
#ifdef _OPENMP
    omp_set_num_threads(omp_threads_);
#endif
    active() = outer_;
  }
  CpuOpScope(const CpuOpScope&) = delete;
  CpuOpScope& operator=(const CpuOpScope&) = delete;

  // The threads ppt's loops may use on this thread.
  static int threads() {
    const CpuOpScope* scope = active();
    return scope != nullptr ? scope->threads_ : at::get_num_threads();
  }

 private:
  static CpuOpScope*& active() {
    thread_local CpuOpScope* value = nullptr;
    return value;
  }
  CpuOpScope* const outer_;
  const int threads_;
  int omp_threads_ = 1;
};

template <auto Kernel>
struct CpuOp;
template <typename R, typename... A, R (*Kernel)(A...)>
struct CpuOp<Kernel> {
  static R call(A... args) {
    const CpuOpScope scope;
    return Kernel(std::forward<A>(args)...);
  }
};

}  // namespace cpu_parallel

// m.impl("name", ppt::cpu_op<&name_cpu>): the kernel runs in a cpu_parallel::CpuOpScope.
template <auto Kernel>
constexpr auto cpu_op = &cpu_parallel::CpuOp<Kernel>::call;

template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (begin >= end) return;
  const int64_t n = end - begin;
  const int wanted =
      cpu_parallel::in_chunk() || at::in_parallel_region() ? 1 : std::max(1, cpu_parallel::CpuOpScope::threads());
  const int64_t start_ns = wanted > 1 ? cpu_parallel::now_ns() : 0;
  const int64_t threads = wanted > 1 ? cpu_parallel::budget().threads(wanted, start_ns) : 1;
  const int64_t chunk = std::max({grain, int64_t{1}, (n + threads * cpu_parallel::kChunksPerThread - 1) /
                                                         (threads * cpu_parallel::kChunksPerThread)});
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (threads == 1 || chunks == 1) {
    f(begin, end);
    return;
  }
  const int helpers = static_cast<int>(std::min(threads, chunks) - 1);
  auto loop = std::make_shared<cpu_parallel::Loop>(
      begin, end, chunk, helpers,
      [](const void* body, int64_t b, int64_t e) { (*static_cast<const F*>(body))(b, e); }, &f);
  cpu_parallel::pool().post(loop, helpers);
  const int64_t own_chunks = loop->work();
  const int64_t own_end_ns = cpu_parallel::now_ns();
  loop->wait_and_rethrow();
  const int64_t end_ns = cpu_parallel::now_ns();
  cpu_parallel::budget().judge(static_cast<int>(threads), wanted, end_ns - start_ns, own_end_ns - start_ns, own_chunks, chunks,
                               end_ns);
}

}  // namespace ppt
