// Space-filling-curve codes of 3-D grid coordinates in Pointcept's layout (PTv3's serialization),
// shared by the CPU loop and the CUDA kernels.
//
// A code of depth D holds 3*D coordinate bits: level l (bit l of each axis, l = D-1 most
// significant) occupies bits 3l+2, 3l+1, 3l for the first, second and third axis. The z-order code
// is that interleaving of (x, y, z) itself (OCNN's xyz2key); the Hilbert code is Skilling's
// transpose of (x, y, z), interleaved the same way and Gray-decoded over the whole 3*D-bit word
// (Pointcept's hilbert.py, after numpy-hilbert-curve). The `-trans` orders encode (y, x, z). The
// batch index sits above the coordinate bits: code | batch << 3*D.
#pragma once

#include <cstdint>

#include "ppt/common.h"

namespace ppt {

// 3 * 21 = 63 coordinate bits fill a non-negative int64.
constexpr int64_t kMaxSerializationDepth = 21;

// The curve of an order string: "z" / "z-trans" / "hilbert" / "hilbert-trans".
enum class SerializationCurve : int { kZOrder = 0, kHilbert = 1 };

// The low 21 bits of v moved to bits 0, 3, 6, ..., 60.
PPT_HOST_DEVICE uint64_t spread_bits_by_3(uint64_t v) {
  v &= 0x1fffffULL;
  v = (v | v << 32) & 0x1f00000000ffffULL;
  v = (v | v << 16) & 0x1f0000ff0000ffULL;
  v = (v | v << 8) & 0x100f00f00f00f00fULL;
  v = (v | v << 4) & 0x10c30c30c30c30c3ULL;
  v = (v | v << 2) & 0x1249249249249249ULL;
  return v;
}

// Inverse of spread_bits_by_3: bits 0, 3, 6, ..., 60 of v packed into the low 21 bits.
PPT_HOST_DEVICE uint64_t compact_bits_by_3(uint64_t v) {
  v &= 0x1249249249249249ULL;
  v = (v ^ (v >> 2)) & 0x10c30c30c30c30c3ULL;
  v = (v ^ (v >> 4)) & 0x100f00f00f00f00fULL;
  v = (v ^ (v >> 8)) & 0x1f0000ff0000ffULL;
  v = (v ^ (v >> 16)) & 0x1f00000000ffffULL;
  v = (v ^ (v >> 32)) & 0x1fffffULL;
  return v;
}

PPT_HOST_DEVICE uint64_t interleave3(uint64_t a, uint64_t b, uint64_t c) {
  return spread_bits_by_3(a) << 2 | spread_bits_by_3(b) << 1 | spread_bits_by_3(c);
}

// One step of Skilling's transform at the level of `bit` for axis `d`: where axis d has the bit set,
// invert the lower bits of axis 0; otherwise exchange the lower bits of axes 0 and d. Each step is
// its own inverse (it never changes the bit it tests), so decoding runs the steps in reverse.
PPT_HOST_DEVICE void skilling_step(uint64_t* axes, int d, uint64_t bit) {
  const uint64_t lower = bit - 1;
  if (axes[d] & bit) {
    axes[0] ^= lower;
  } else {
    const uint64_t swap = (axes[0] ^ axes[d]) & lower;
    axes[0] ^= swap;
    axes[d] ^= swap;
  }
}

// Hilbert code of (a, b, c), each in [0, 2^depth).
PPT_HOST_DEVICE uint64_t hilbert_encode3(uint64_t a, uint64_t b, uint64_t c, int depth) {
  uint64_t axes[3] = {a, b, c};
  for (int level = depth - 1; level >= 0; --level) {
    for (int d = 0; d < 3; ++d) skilling_step(axes, d, uint64_t(1) << level);
  }
  uint64_t code = interleave3(axes[0], axes[1], axes[2]);
  // Gray code -> binary: every bit becomes the XOR of itself and all bits above it.
  for (int shift = 1; shift < 64; shift <<= 1) code ^= code >> shift;
  return code;
}

// Inverse of hilbert_encode3 for a code of 3*depth bits.
PPT_HOST_DEVICE void hilbert_decode3(uint64_t code, int depth, uint64_t* axes) {
  code ^= code >> 1;  // binary -> Gray
  axes[0] = compact_bits_by_3(code >> 2);
  axes[1] = compact_bits_by_3(code >> 1);
  axes[2] = compact_bits_by_3(code);
  for (int level = 0; level < depth; ++level) {
    for (int d = 2; d >= 0; --d) skilling_step(axes, d, uint64_t(1) << level);
  }
}

// The code of grid point (x, y, z) in scene `batch`; coordinates in [0, 2^depth) and
// batch < 2^(63 - 3*depth) (the callers check both).
PPT_HOST_DEVICE int64_t serialization_code(int64_t x, int64_t y, int64_t z, int64_t batch, int depth,
                                           SerializationCurve curve, bool transposed) {
  const uint64_t first = static_cast<uint64_t>(transposed ? y : x);
  const uint64_t second = static_cast<uint64_t>(transposed ? x : y);
  const uint64_t third = static_cast<uint64_t>(z);
  const uint64_t code = curve == SerializationCurve::kZOrder ? interleave3(first, second, third)
                                                             : hilbert_encode3(first, second, third, depth);
  return static_cast<int64_t>(code | static_cast<uint64_t>(batch) << (3 * depth));
}

// Inverse of serialization_code for a non-negative code: xyz[0..2] and *batch.
PPT_HOST_DEVICE void serialization_decode_one(int64_t code_in, int depth, SerializationCurve curve, bool transposed,
                                              int64_t* xyz, int64_t* batch) {
  const uint64_t code = static_cast<uint64_t>(code_in);
  const int bits = 3 * depth;  // at most 63
  *batch = static_cast<int64_t>(code >> bits);
  const uint64_t coordinate_bits = code & ((uint64_t(1) << bits) - 1);
  uint64_t axes[3];
  if (curve == SerializationCurve::kZOrder) {
    axes[0] = compact_bits_by_3(coordinate_bits >> 2);
    axes[1] = compact_bits_by_3(coordinate_bits >> 1);
    axes[2] = compact_bits_by_3(coordinate_bits);
  } else {
    hilbert_decode3(coordinate_bits, depth, axes);
  }
  xyz[0] = static_cast<int64_t>(transposed ? axes[1] : axes[0]);
  xyz[1] = static_cast<int64_t>(transposed ? axes[0] : axes[1]);
  xyz[2] = static_cast<int64_t>(axes[2]);
}

}  // namespace ppt
