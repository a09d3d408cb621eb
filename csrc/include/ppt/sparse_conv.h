// Geometry of 3-D sparse convolution with spconv 2.x semantics, shared by the CPU and CUDA
// kernel-map builders.
//
// A kernel offset k in [0, kx*ky*kz) enumerates (i, j, l) with l (z) fastest, which is the
// flattening of spconv's weight (out, kx, ky, kz, in). Convolution is a cross-correlation like
// torch's conv3d: output site o receives input site  o * stride - padding + (i, j, l) * dilation.
//   * submanifold: stride 1, odd kernel sizes, and the output sites are the input sites; the padding is
//     kernel_size // 2 per axis whatever the layer's padding (spconv ignores it for SubM), so the
//     neighbour of o for offset k is o + ((i, j, l) - kernel_size // 2) * dilation;
//   * strided: the output sites are every in-range o reached from an input site.
#pragma once

#include "ppt/common.h"

namespace ppt {

struct ConvGeometry {
  int64_t in_shape[3];
  int64_t out_shape[3];
  int64_t kernel[3];
  int64_t stride[3];
  int64_t padding[3];
  int64_t dilation[3];

  PPT_HOST_DEVICE int64_t volume() const { return kernel[0] * kernel[1] * kernel[2]; }

  PPT_HOST_DEVICE void offset_of(int64_t k, int64_t* ijl) const {
    ijl[2] = k % kernel[2];
    k /= kernel[2];
    ijl[1] = k % kernel[1];
    ijl[0] = k / kernel[1];
  }

  // Input neighbour of submanifold output site `site` for offset k; false when outside the grid.
  PPT_HOST_DEVICE bool submanifold_neighbour(const int32_t* site, int64_t k, int64_t* neighbour) const {
    int64_t ijl[3];
    offset_of(k, ijl);
    for (int a = 0; a < 3; ++a) {
      const int64_t c = site[a] + (ijl[a] - kernel[a] / 2) * dilation[a];
      if (c < 0 || c >= in_shape[a]) return false;
      neighbour[a] = c;
    }
    return true;
  }

  // Output site that input site `site` feeds through offset k of a strided conv:
  // o = (site + padding - offset * dilation) / stride when that divides exactly and lies in the
  // output grid; false otherwise.
  PPT_HOST_DEVICE bool strided_output(const int32_t* site, int64_t k, int64_t* out) const {
    int64_t ijl[3];
    offset_of(k, ijl);
    for (int a = 0; a < 3; ++a) {
      const int64_t numerator = site[a] + padding[a] - ijl[a] * dilation[a];
      if (numerator < 0 || numerator % stride[a] != 0) return false;
      const int64_t o = numerator / stride[a];
      if (o >= out_shape[a]) return false;
      out[a] = o;
    }
    return true;
  }
};

// spconv's get_conv_output_size: floor((in + 2 p - d (k - 1) - 1) / s) + 1.
PPT_HOST_DEVICE int64_t conv_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                                         int64_t dilation) {
  const int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  return (span >= 0 ? span / stride : -((-span + stride - 1) / stride)) + 1;
}

}  // namespace ppt
