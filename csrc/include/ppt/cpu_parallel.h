// Work sharing of ppt's CPU kernels: ppt::parallel_for, in place of at::parallel_for, and
// ppt::cpu_op, the registration of a CPU kernel.
//
// Why: torch's CPU wheels run at::parallel_for on libgomp. Each parallel region hands every thread
// a fixed share and ends at a barrier that every thread of the team must reach, and libgomp's
// threads busy-wait (OMP_WAIT_POLICY unset: about 5 ms on the 2-core development machine) at
// that barrier and between regions. On a machine where another process keeps a core busy, one of
// the team's threads is often descheduled: its share, and the region, then wait until the
// scheduler runs it again (a time slice later: it is not moved to the core of a thread that
// spins, nor soon to an idle one, since it ran there last), while the other threads spin on the
// cores it could use. Kernels made of a few short regions ran several times slower with 2
// threads than with 1 (bench/results/cpu-contention-before).
//
// What ppt::parallel_for does instead (still on torch's OpenMP threads: the same threads as
// torch's operators, so none of ppt's competes with theirs, and back-to-back loops start as fast
// as torch's):
// - the range is cut into chunks (kChunksPerThread per thread), dealt in one contiguous group per
//   thread; a thread runs its own group (the rows it had in the loop before, still in its
//   caches), then claims the chunks left in the others' one at a time, so threads that run take
//   over the share of one that does not;
// - a loop that took longer than the calling thread alone would have (its own pace times the
//   number of chunks) caps the threads of later loops at one fewer, for a window that doubles
//   with each such loss and shrinks with each clear win at the full count once stalls (waits of
//   a time slice for a late thread) have stopped (ThreadBudget). On an idle machine loops win and
//   the cap never applies; on one whose cores are all taken the kernels run on the threads that
//   pay off, down to one, and rarely probe the full count again;
// - the kernels use few loops, each large enough to pay for the threads' start (grain sizes of
//   tens of thousands of elements; one loop per op where the work allows).
// ppt::cpu_op registers a kernel so that it runs in a CpuOpScope: the torch operators the kernel
// calls (argument checks, allocation, small copies, the kernel-map compaction) use one thread
// fewer for kStallMemory after a stall, since their regions stall the same way.
//
// Contract (as at::parallel_for's): f(chunk_begin, chunk_end) is called on disjoint contiguous
// ranges that cover [begin, end), each at least `grain` long except the last; which thread runs a
// chunk and how the range is cut are unspecified (the cut depends on the thread count), so a
// result that must not depend on them has to be computed per fixed unit inside f. Up to torch's
// thread count take part (torch.set_num_threads applies); inside an OpenMP parallel region (and so
// inside another loop) a loop runs inline. The first exception thrown by f is rethrown to the
// caller after the loop; chunks not yet started are then skipped.
#pragma once

#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <utility>

namespace ppt {
namespace cpu_parallel {

// Chunks per participating thread: enough that the others absorb a descheduled thread's share.
constexpr int64_t kChunksPerThread = 8;

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How many threads pay off (see the top of this file).
class ThreadBudget {
 public:
  // A loop lost when it took longer than the calling thread alone would have by more than this.
  static constexpr std::chrono::microseconds kLossSlack{100};
  // A loop stalled when its calling thread, out of chunks, waited longer than this for the others:
  // the order of a scheduler time slice, which a descheduled thread costs (an idle machine's
  // hiccups stay far below).
  static constexpr std::chrono::microseconds kStallWait{2000};
  // A loop won when it took at most this fraction of the calling thread's time alone: the threads
  // paid off clearly (a busy machine's near-ties are no evidence that they do).
  static constexpr double kWinRatio = 0.8;
  // The cap after a first loss lasts this long; each further loss doubles it, up to 2^kMaxDoublings
  // times, and each clear win at the full thread count halves the next one, once kStallMemory has
  // passed since the last stall (a busy machine's lucky wins do not shorten it).
  static constexpr std::chrono::milliseconds kFirstWindow{20};
  static constexpr int kMaxDoublings = 6;
  // How long after a stall torch operators inside ppt ops use one thread fewer, and wins do not
  // shorten the cap's window.
  static constexpr std::chrono::seconds kStallMemory{2};

  // The threads a loop may use now, out of `wanted`.
  int threads(int wanted, int64_t now) const {
    if (now >= cap_until_ns_.load(std::memory_order_relaxed)) return wanted;
    return std::max(1, std::min(wanted, cap_.load(std::memory_order_relaxed)));
  }

  bool stalled_recently(int64_t now) const {
    return now - last_stall_ns_.load(std::memory_order_relaxed) < std::chrono::nanoseconds(kStallMemory).count();
  }

  // The threads torch operators inside a ppt op may use now. Torch's loops stall on a busy machine
  // the same way but do not report how they fared, so they follow ppt's loops' stalls.
  int operator_threads(int wanted, int64_t now) const {
    const int allowed = threads(wanted, now);
    return stalled_recently(now) ? std::max(1, std::min(allowed, wanted - 1)) : allowed;
  }

  // After a loop allowed `used` of the `wanted` threads: it took `elapsed_ns`, in which the calling
  // thread ran `own_chunks` of the `chunks` chunks in its first `own_ns`.
  void judge(int used, int wanted, int64_t elapsed_ns, int64_t own_ns, int64_t own_chunks, int64_t chunks,
             int64_t now) {
    if (own_chunks == 0) return;
    const int64_t slack = std::chrono::nanoseconds(kLossSlack).count();
    if (elapsed_ns - own_ns > std::chrono::nanoseconds(kStallWait).count()) {
      last_stall_ns_.store(now, std::memory_order_relaxed);
    }
    const double alone_ns = static_cast<double>(own_ns) * chunks / own_chunks;
    if (elapsed_ns > alone_ns + slack) {
      const int doublings = std::min(kMaxDoublings, losses_.load(std::memory_order_relaxed));
      losses_.store(doublings + 1, std::memory_order_relaxed);
      cap_.store(used - 1, std::memory_order_relaxed);
      cap_until_ns_.store(now + (std::chrono::nanoseconds(kFirstWindow).count() << doublings),
                          std::memory_order_relaxed);
    } else if (used == wanted && elapsed_ns <= kWinRatio * alone_ns && !stalled_recently(now)) {
      const int losses = losses_.load(std::memory_order_relaxed);
      if (losses > 0) losses_.store(losses - 1, std::memory_order_relaxed);
    }
  }

 private:
  std::atomic<int> cap_{0}, losses_{0};
  std::atomic<int64_t> cap_until_ns_{0};
  std::atomic<int64_t> last_stall_ns_{std::numeric_limits<int64_t>::min() / 2};
};

inline ThreadBudget& budget() {
  static ThreadBudget value;
  return value;
}

// One parallel loop: its chunks, dealt in one contiguous group per thread of the team, the
// counters of the claims, and the first error. Thread `t` runs its own group first, then claims
// what is left of the others'.
template <typename F>
class Loop {
 public:
  Loop(int64_t begin, int64_t end, int64_t chunk, int team, const F& f)
      : begin_(begin), end_(end), chunk_(chunk), chunks_((end - begin + chunk - 1) / chunk), team_(team),
        next_(new Counter[team]), f_(f) {
    for (int g = 0; g < team_; ++g) next_[g].value.store(group_begin(g), std::memory_order_relaxed);
  }

  int64_t chunks() const { return chunks_; }

  // Runs chunks as thread `thread` of the team until none is left to claim; returns how many it
  // ran. Never throws (an exception must not leave a parallel region).
  int64_t work(int thread) {
    int64_t ran = 0;
    for (int i = 0; i < team_; ++i) {
      const int group = (thread + i) % team_;
      for (int64_t c; (c = next_[group].value.fetch_add(1, std::memory_order_relaxed)) < group_begin(group + 1);) {
        ++ran;
        run(c);
      }
    }
    return ran;
  }

  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  struct alignas(64) Counter {  // one cache line each: the threads' claims do not contend
    std::atomic<int64_t> value;
  };

  int64_t group_begin(int group) const { return chunks_ * group / team_; }

  void run(int64_t c) {
    if (failed_.load(std::memory_order_relaxed)) return;
    try {
      const int64_t first = begin_ + c * chunk_;
      f_(first, std::min(end_, first + chunk_));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }

  const int64_t begin_, end_, chunk_, chunks_;
  const int team_;
  const std::unique_ptr<Counter[]> next_;
  const F& f_;
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

// The scope of one ppt CPU op on this thread. ppt::parallel_for uses the thread count torch had
// when the op started, and the torch operators the op calls get the threads the ThreadBudget
// allows them (operator_threads). The setting is the calling thread's own (omp_set_num_threads),
// restored when the op returns.
class CpuOpScope {
 public:
  CpuOpScope() : outer_(active()), threads_(outer_ != nullptr ? outer_->threads_ : at::get_num_threads()) {
    omp_threads_ = omp_get_max_threads();
    const int allowed = threads_ > 1 ? budget().operator_threads(threads_, now_ns()) : threads_;
    if (allowed != omp_threads_) omp_set_num_threads(allowed);
    active() = this;
  }
  ~CpuOpScope() {
    if (omp_get_max_threads() != omp_threads_) omp_set_num_threads(omp_threads_);
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

// The threads ppt::parallel_for may use on this thread (inside a CPU op, at::get_num_threads()
// reads what the op's torch operators may use: see CpuOpScope).
inline int parallel_threads() { return cpu_parallel::CpuOpScope::threads(); }

// m.impl("name", ppt::cpu_op<&name_cpu>): the kernel runs in a cpu_parallel::CpuOpScope.
template <auto Kernel>
constexpr auto cpu_op = &cpu_parallel::CpuOp<Kernel>::call;

template <typename F>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const F& f) {
  if (begin >= end) return;
  const int64_t n = end - begin;
  const int wanted = at::in_parallel_region() ? 1 : std::max(1, parallel_threads());
  const int64_t start_ns = wanted > 1 ? cpu_parallel::now_ns() : 0;
  auto& budget = cpu_parallel::budget();
  const int64_t threads = wanted > 1 ? budget.threads(wanted, start_ns) : 1;
  const int64_t chunk = std::max({grain, int64_t{1}, (n + threads * cpu_parallel::kChunksPerThread - 1) /
                                                         (threads * cpu_parallel::kChunksPerThread)});
  const int64_t chunks = (n + chunk - 1) / chunk;
  if (threads == 1 || chunks == 1) {
    f(begin, end);
    return;
  }
  const int team = static_cast<int>(std::min(threads, chunks));
  cpu_parallel::Loop<F> loop(begin, end, chunk, team, f);
  int64_t own_chunks = 0, own_end_ns = 0;
#pragma omp parallel num_threads(team)
  {
    const int64_t ran = loop.work(omp_get_thread_num());
    if (omp_get_thread_num() == 0) {
      own_chunks = ran;
      own_end_ns = cpu_parallel::now_ns();
    }
  }
  const int64_t end_ns = cpu_parallel::now_ns();
  loop.rethrow();
  budget.judge(static_cast<int>(threads), wanted, end_ns - start_ns, own_end_ns - start_ns, own_chunks, chunks,
               end_ns);
}

}  // namespace ppt
