// Register-blocked CPU GEMM micro-kernels whose A rows and C rows are reached through row
// pointers, so a sparse convolution multiplies feature rows in place: no gathered copy of the
// inputs and no product buffer to scatter from (the "implicit GEMM" of the CPU path).
//
// Vectors come from the GCC/Clang vector extension, so one source serves every instruction set:
// a caller instantiates the kernels with an Isa (vector bytes and rows per register tile) inside
// a function compiled for that target (PPT_TARGET with Isa::target, exactly the features
// cpu_isa() checks) and picks one at run time. The
// sources using them are compiled with -ffp-contract=fast so that acc += a * b is one FMA.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define PPT_X86_DISPATCH 1
#define PPT_TARGET(arch) __attribute__((target(arch)))
#else
#define PPT_X86_DISPATCH 0
#define PPT_TARGET(arch)
#endif
#define PPT_ALWAYS_INLINE inline __attribute__((always_inline))

namespace ppt {
namespace simd {

// Register tiles: ROWS x 2 vector accumulators, 2 B vectors and 1 broadcast. AVX-512's 32
// registers hold 12 x 2, AVX2's 16 hold 6 x 2 (in a Zen 4 micro-benchmark of both tiles, 12 x 2
// zmm gave 1.5-2x the GFLOP/s of 6 x 2 ymm for 128-512 channels). Every variant sums each output
// element over the depth in order, so AVX-512 and AVX2 (both with FMA) give identical bits.
struct Avx512 {
  static constexpr int bytes = 64, rows = 12;
};
#define PPT_AVX512_TARGET "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"
struct Avx2 {
  static constexpr int bytes = 32, rows = 6;
};
#define PPT_AVX2_TARGET "avx2,fma"
// No vector target: 16-byte vectors, native to SSE2 and NEON.
struct Baseline {
  static constexpr int bytes = 16, rows = 6;
};
constexpr int kTileVectors = 2;
// Column counts must be a multiple of the widest vector: callers pad to this many bytes.
constexpr int kColumnBytes = 64;

enum class CpuIsa { kBaseline, kAvx2, kAvx512 };

// The best instruction set of this CPU, capped by the environment variable PPT_CPU_ISA
// (baseline, avx2 or avx512) so tests can run every variant on one machine. Decided on first
// use; throws c10::Error for any other PPT_CPU_ISA value.
CpuIsa cpu_isa();

// Per (scalar, vector bytes): the vector type, its unaligned alias and, for GCC < 12's
// __builtin_shuffle, the integer mask vector of the same shape.
template <typename S, int BYTES>
struct Vec {
  typedef S V __attribute__((vector_size(BYTES)));
  typedef S Unaligned __attribute__((vector_size(BYTES), aligned(sizeof(S)), may_alias));
  typedef std::conditional_t<sizeof(S) == 4, int32_t, int64_t> MaskLane;
  typedef MaskLane Mask __attribute__((vector_size(BYTES)));
};

template <typename S, int BYTES>
PPT_ALWAYS_INLINE typename Vec<S, BYTES>::V load(const S* p) {
  return *reinterpret_cast<const typename Vec<S, BYTES>::Unaligned*>(p);
}

template <typename S, int BYTES>
PPT_ALWAYS_INLINE void store(S* p, typename Vec<S, BYTES>::V v) {
  *reinterpret_cast<typename Vec<S, BYTES>::Unaligned*>(p) = v;
}

// All lanes = x; a shuffle becomes one broadcast, where a brace list or V{} + x would not.
template <typename S, int BYTES>
PPT_ALWAYS_INLINE typename Vec<S, BYTES>::V splat(S x) {
  const typename Vec<S, BYTES>::V first = {x};
#if !defined(__clang__) && __GNUC__ < 12  // no __builtin_shufflevector before GCC 12
  return __builtin_shuffle(first, typename Vec<S, BYTES>::Mask{});
#else
  constexpr int lanes = BYTES / static_cast<int>(sizeof(S));
  if constexpr (lanes == 2)
    return __builtin_shufflevector(first, first, 0, 0);
  else if constexpr (lanes == 4)
    return __builtin_shufflevector(first, first, 0, 0, 0, 0);
  else if constexpr (lanes == 8)
    return __builtin_shufflevector(first, first, 0, 0, 0, 0, 0, 0, 0, 0);
  else
    return __builtin_shufflevector(first, first, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
#endif
}

// C (ROWS, VECTORS vectors) += A (ROWS, depth) B (depth, VECTORS vectors), where A(r, p) is
// a_rows[r][p * a_step], B row p starts at b + p * ldb and C row r at c_rows[r].
template <typename S, int BYTES, int ROWS, int VECTORS>
PPT_ALWAYS_INLINE void tile(int64_t depth, const S* const* a_rows, int64_t a_step, const S* b, int64_t ldb,
                            S* const* c_rows) {
  using V = typename Vec<S, BYTES>::V;
  constexpr int width = BYTES / static_cast<int>(sizeof(S));
  V acc[ROWS][VECTORS];
  const S* a[ROWS];
#pragma GCC unroll 16
  for (int r = 0; r < ROWS; ++r) {
    a[r] = a_rows[r];
#pragma GCC unroll 4
    for (int v = 0; v < VECTORS; ++v) acc[r][v] = V{};
  }
  for (int64_t p = 0, at = 0; p < depth; ++p, at += a_step, b += ldb) {
    V b_row[VECTORS];
#pragma GCC unroll 4
    for (int v = 0; v < VECTORS; ++v) b_row[v] = load<S, BYTES>(b + v * width);
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) {
      const V a_r = splat<S, BYTES>(a[r][at]);
#pragma GCC unroll 4
      for (int v = 0; v < VECTORS; ++v) acc[r][v] += a_r * b_row[v];
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < VECTORS; ++v)
      store<S, BYTES>(c_rows[r] + v * width, load<S, BYTES>(c_rows[r] + v * width) + acc[r][v]);
}

// `tile` for rows <= ROWS rows.
template <typename S, int BYTES, int ROWS, int VECTORS>
PPT_ALWAYS_INLINE void tile_rows(int rows, int64_t depth, const S* const* a_rows, int64_t a_step, const S* b,
                                 int64_t ldb, S* const* c_rows) {
  if constexpr (ROWS > 1) {
    if (rows < ROWS) return tile_rows<S, BYTES, ROWS - 1, VECTORS>(rows, depth, a_rows, a_step, b, ldb, c_rows);
  }
  tile<S, BYTES, ROWS, VECTORS>(depth, a_rows, a_step, b, ldb, c_rows);
}

// C (rows, columns) += A (rows, depth) B (depth, columns) for any row count and a multiple of
// kColumnBytes of columns, in the layout of `tile`. Column blocks run outside, so one B panel
// (depth x 2 vectors) stays in L1 while the row tiles stream past it.
template <typename S, typename Isa>
PPT_ALWAYS_INLINE void gemm_rows(int64_t rows, int64_t columns, int64_t depth, const S* const* a_rows, int64_t a_step,
                                 const S* b, int64_t ldb, S* const* c_rows) {
  constexpr int width = Isa::bytes / static_cast<int>(sizeof(S));
  S* shifted[Isa::rows];
  for (int64_t n = 0; n < columns;) {
    const bool wide = columns - n >= kTileVectors * width;
    for (int64_t r = 0; r < rows; r += Isa::rows) {
      const int count = static_cast<int>(std::min<int64_t>(Isa::rows, rows - r));
      for (int i = 0; i < count; ++i) shifted[i] = c_rows[r + i] + n;
      if (wide)
        tile_rows<S, Isa::bytes, Isa::rows, kTileVectors>(count, depth, a_rows + r, a_step, b + n, ldb, shifted);
      else
        tile_rows<S, Isa::bytes, Isa::rows, 1>(count, depth, a_rows + r, a_step, b + n, ldb, shifted);
    }
    n += wide ? kTileVectors * width : width;
  }
}

}  // namespace simd
}  // namespace ppt
