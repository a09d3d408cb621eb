// Per-(segment, channel) batch-norm math shared by the CPU and CUDA kernels of segment_bn_*, so
// both devices evaluate the same formulas in the same order.
#pragma once

#include "ppt/common.h"

namespace ppt {

// Running moments of one (segment, channel): count, mean and M2 = sum of squared deviations.
template <typename acc_t>
struct Moments {
  acc_t count;
  acc_t mean;
  acc_t m2;
};

// Chan et al.'s pairwise update: merges moments b into a. Stable where the textbook
// sum/sum-of-squares formula cancels catastrophically (large means, small variances).
template <typename acc_t>
PPT_HOST_DEVICE void chan_merge(Moments<acc_t>& a, acc_t count_b, acc_t mean_b, acc_t m2_b) {
  if (count_b == acc_t(0)) return;
  if (a.count == acc_t(0)) {
    a.count = count_b;
    a.mean = mean_b;
    a.m2 = m2_b;
    return;
  }
  const acc_t count = a.count + count_b;
  const acc_t delta = mean_b - a.mean;
  const acc_t weight_b = count_b / count;
  a.mean = a.mean + delta * weight_b;
  a.m2 = a.m2 + m2_b + delta * delta * a.count * weight_b;
  a.count = count;
}

// y = (x - mean) * invstd * weight + bias.
template <typename acc_t>
PPT_HOST_DEVICE acc_t normalize_affine(acc_t x, acc_t mean, acc_t invstd, acc_t weight, acc_t bias) {
  return (x - mean) * invstd * weight + bias;
}

// dL/dx of batch norm. In training the statistics depend on x, which adds the two projections
// (mean of dy, and x̂ times the mean of dy·x̂, both over the segment); in eval they are constants.
template <typename acc_t>
PPT_HOST_DEVICE acc_t batch_norm_input_grad(acc_t dy, acc_t x, acc_t mean, acc_t invstd,
                                            acc_t weight, acc_t mean_dy, acc_t mean_dy_xhat) {
  const acc_t xhat = (x - mean) * invstd;
  return (dy - mean_dy - xhat * mean_dy_xhat) * invstd * weight;
}

}  // namespace ppt
