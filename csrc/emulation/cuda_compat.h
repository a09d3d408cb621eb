// Emulation build of ppt's CUDA kernels: force-included (-include) before every csrc/**/*_cuda.cu
// so that the unmodified sources compile with the host compiler and run on CPU through HIP-CPU
// (third_party/hip-cpu): a block's threads are fibers, __syncthreads switches fibers, __shared__
// is thread-local storage (blocks run one after another on the launching thread).
//
// What this header adds on top of HIP-CPU: CUDA's spellings (qualifiers, __nv_bfloat16, *_rn
// intrinsics, min/max), 32-lane warp operations whose barriers involve only the warp's lanes,
// __syncthreads_count, and PPT_LAUNCH / PPT_DYNAMIC_SHARED, which run a kernel synchronously,
// check its launch configuration like the CUDA runtime and count launches per kernel.
#pragma once

#define PPT_CUDA_EMULATION 1

// HIP-CPU would flatten each kernel into its launcher and clone that into SIMD variants (GCC's
// `simd` attribute): several times the compile time and code for no gain here (ppt.patch item 4).
#define __HIP_FLATTENED_FUNCTION__
#define __HIP_TILE_FUNCTION__

#include <hip/hip_runtime.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <vector>

// HIP-CPU marks kernels and device functions with GCC's `simd` attribute, which clones every
// function into vector variants; ppt's kernels are plain functions here.
#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#define __align__(n) alignas(n)
// ppt's headers pick their device code paths on these (PPT_HOST_DEVICE, exact_mul, hash insert).
#define __CUDACC__ 1
#define __CUDA_ARCH__ 800

// ---- bfloat16 (CUDA's cuda_bf16.h conversions: round to nearest even, NaN stays NaN) ----------
struct __nv_bfloat16 {
  unsigned short x;

  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : x(round_to_nearest_even(f)) {}
  operator float() const {
    const uint32_t bits = uint32_t(x) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }

 private:
  static unsigned short round_to_nearest_even(float f) {
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return static_cast<unsigned short>(bits >> 16);
  }
};

inline float __bfloat162float(__nv_bfloat16 v) { return float(v); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16(f); }

// ---- arithmetic intrinsics: the build uses -ffp-contract=off, so plain operators round each
// ---- product and sum separately, as the _rn intrinsics do on the GPU ------------------------------
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline unsigned int __float_as_uint(float f) {
  unsigned int u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// CUDA's overloaded device min/max: integers compare, floating point follows fminf/fmaxf (a NaN
// operand yields the other operand).
template <typename A, typename B>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>) return std::fmin(C(a), C(b));
  else return C(b) < C(a) ? C(b) : C(a);
}
template <typename A, typename B>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  if constexpr (std::is_floating_point_v<C>) return std::fmax(C(a), C(b));
  else return C(a) < C(b) ? C(b) : C(a);
}

namespace ppt::emulation {

constexpr uint32_t kWarpSize = 32;
constexpr uint32_t kMaxBlockThreads = 1024;

// Records the first fault of the running launch (a misuse the GPU would leave undefined, such as
// shuffling from a lane outside the mask); the launch then fails with this message.
void device_fault(const char* message);

inline uint32_t linear_thread() {
  return threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
}
inline uint32_t block_threads() { return blockDim.x * blockDim.y * blockDim.z; }

// Lanes of this thread's warp that exist (the last warp of a block may be partial).
inline uint32_t existing_lanes() {
  const uint32_t base = linear_thread() & ~(kWarpSize - 1);
  const uint32_t lanes = std::min(kWarpSize, block_threads() - base);
  return lanes == 32 ? 0xffffffffu : ((1u << lanes) - 1u);
}

// Lets the other lanes of `mask` in this thread's warp run up to the same point: a fiber switch
// to the next lane of the mask (in the block's thread order), around the warp's lanes only, so
// warps that take different paths never wait for each other.
inline void warp_barrier(uint32_t mask) {
  const uint32_t thread = linear_thread(), lane = thread % kWarpSize, base = thread - lane;
  mask &= existing_lanes();
  if ((mask & ~(1u << lane)) == 0) return;
  const bool reverse = hip::detail::reverse_thread_order;
  uint32_t next = lane;
  do {
    next = reverse ? (next + kWarpSize - 1) % kWarpSize : (next + 1) % kWarpSize;
  } while (!(mask & (1u << next)));
  hip::detail::this_tile::has_barrier = true;
  const auto& fibers = hip::detail::Tile::fibers();
  hip::detail::Fiber::yield(fibers[hip::detail::fiber_of_thread(base + next, block_threads())]);
}

// One 64-bit slot per thread of the block through which warp operations exchange values.
inline uint64_t* exchange_slots() {
  thread_local uint64_t slots[kMaxBlockThreads];
  return slots;
}

template <typename T>
inline T warp_exchange(uint32_t mask, T value, int source_lane, const char* op) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>, "warp shuffle of a wide type");
  const uint32_t thread = linear_thread(), lane = thread % kWarpSize, base = thread - lane;
  if (!(mask & (1u << lane))) device_fault(op);  // the calling lane must be in the mask
  uint64_t* slots = exchange_slots();
  std::memcpy(&slots[thread], &value, sizeof(T));
  warp_barrier(mask);
  T result = value;
  if (source_lane >= 0 && source_lane < int(kWarpSize) && (existing_lanes() & (1u << source_lane))) {
    if (!(mask & (1u << source_lane))) device_fault(op);  // reading a lane that is not in the mask
    std::memcpy(&result, &slots[base + source_lane], sizeof(T));
  }
  warp_barrier(mask);
  return result;
}

inline uint32_t warp_vote(uint32_t mask, bool predicate, const char* op) {
  const uint32_t thread = linear_thread(), lane = thread % kWarpSize, base = thread - lane;
  if (!(mask & (1u << lane))) device_fault(op);
  uint64_t* slots = exchange_slots();
  slots[thread] = predicate;
  warp_barrier(mask);
  uint32_t ballot = 0;
  const uint32_t voters = mask & existing_lanes();
  for (uint32_t source = 0; source < kWarpSize; ++source) {
    if ((voters & (1u << source)) && slots[base + source]) ballot |= 1u << source;
  }
  warp_barrier(mask);
  return ballot;
}

}  // namespace ppt::emulation

// ---- warp operations (32 lanes, CUDA semantics of width and out-of-range lanes) ----------------
template <typename T>
inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
  const int lane = int(ppt::emulation::linear_thread() % 32);
  const int source = (lane / width) * width + (src_lane % width);
  return ppt::emulation::warp_exchange(mask, var, source, "__shfl_sync: a lane outside the mask takes part");
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = int(ppt::emulation::linear_thread() % 32);
  const bool inside = (lane % width) + int(delta) < width;
  return ppt::emulation::warp_exchange(mask, var, inside ? lane + int(delta) : lane,
                                       "__shfl_down_sync: lane outside the mask");
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32) {
  const int lane = int(ppt::emulation::linear_thread() % 32);
  const bool inside = (lane % width) >= int(delta);
  return ppt::emulation::warp_exchange(mask, var, inside ? lane - int(delta) : lane,
                                       "__shfl_up_sync: lane outside the mask");
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  const int lane = int(ppt::emulation::linear_thread() % 32);
  const int source = lane ^ lane_mask;
  const bool inside = source / width == lane / width;
  return ppt::emulation::warp_exchange(mask, var, inside ? source : lane, "__shfl_xor_sync: lane outside the mask");
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return ppt::emulation::warp_vote(mask, predicate != 0, "__ballot_sync: calling lane not in mask");
}
inline int __any_sync(unsigned mask, int predicate) {
  return ppt::emulation::warp_vote(mask, predicate != 0, "__any_sync: calling lane not in mask") != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
  return ppt::emulation::warp_vote(mask, predicate != 0, "__all_sync: calling lane not in mask") ==
         (mask & ppt::emulation::existing_lanes());
}

// ---- block-wide counting barriers -----------------------------------------------------------
inline int ppt_emulated_block_count(int predicate) {
  uint64_t* slots = ppt::emulation::exchange_slots();
  const uint32_t thread = ppt::emulation::linear_thread(), threads = ppt::emulation::block_threads();
  slots[thread] = predicate != 0;
  __syncthreads();
  int count = 0;
  for (uint32_t t = 0; t < threads; ++t) count += int(slots[t]);
  __syncthreads();  // no thread overwrites its slot before every thread has counted
  return count;
}
inline int __syncthreads_count(int predicate) { return ppt_emulated_block_count(predicate); }
inline int __syncthreads_or(int predicate) { return ppt_emulated_block_count(predicate) > 0; }
inline int __syncthreads_and(int predicate) {
  return ppt_emulated_block_count(predicate) == int(ppt::emulation::block_threads());
}

// ---- launches ---------------------------------------------------------------------------------
namespace ppt::emulation {

// Validates a launch configuration as the CUDA runtime does; on failure records the error that
// the glue's C10_CUDA_KERNEL_LAUNCH_CHECK then raises, and returns false.
bool accept_launch(const char* kernel, const dim3& grid, const dim3& block, size_t dynamic_shared_bytes);
// Counts one launch of `kernel` (the launch expression: template arguments are dropped).
void count_launch(const char* kernel);
// Turns a fault recorded by device_fault during the launch into the launch's error.
void finish_launch(const char* kernel);

template <typename Kernel>
struct Launch {
  const char* name;
  dim3 grid;
  dim3 block;
  size_t dynamic_shared_bytes;
  Kernel kernel;

  template <typename... Args>
  void operator()(Args... args) const {
    if (!accept_launch(name, grid, block, dynamic_shared_bytes)) return;
    count_launch(name);
    const std::tuple<Args...> arguments{args...};
    // As in HIP-CPU's own launch: fibers other than the launching one run the kernel through the
    // domain's std::function; the launching fiber runs it through for_each_tile.
    hip::detail::Tiled_domain domain{block, grid, static_cast<std::uint32_t>(dynamic_shared_bytes),
                                     [this, &arguments]() { std::apply(kernel, arguments); }};
    for_each_tile(domain, kernel, arguments);  // a friend of Tiled_domain, found by ADL
    finish_launch(name);
  }
};

template <typename Kernel>
Launch<Kernel> make_launch(const char* name, dim3 grid, dim3 block, size_t dynamic_shared_bytes, cudaStream_t,
                           Kernel kernel) {
  return {name, grid, block, dynamic_shared_bytes, kernel};
}

}  // namespace ppt::emulation

// kernel<<<grid, block, shared, stream>>>(args...) as PPT_LAUNCH(kernel, grid, block, shared, stream)(args...);
// a kernel name holding a comma (two template arguments) is written in parentheses.
#define PPT_LAUNCH(kernel, grid, block, shared_bytes, stream)                            \
  ::ppt::emulation::make_launch(#kernel, grid, block, shared_bytes, stream,              \
                                [](auto... ppt_kernel_args) { kernel(ppt_kernel_args...); })

// extern __shared__ __align__(16) T name[]: the launch's dynamic shared memory, 16-byte aligned.
#define PPT_DYNAMIC_SHARED(type, name)                                                              \
  thread_local static std::vector<std::max_align_t> ppt_dynamic_shared_##name;                    \
  ppt_dynamic_shared_##name.resize(                                                                 \
      (scratchpad_size(domain(::hip::detail::Tile::this_tile())) + sizeof(std::max_align_t) - 1) / \
      sizeof(std::max_align_t));                                                                    \
  type* name = reinterpret_cast<type*>(ppt_dynamic_shared_##name.data())
