// Update rules of sparse max / average pooling over a kernel map, shared by the CPU and CUDA
// kernels so that both devices pick the same winner and divide the same way.
//
// Pooling visits the pairs (input row i, output row o) of kernel offset 0, then offset 1, ...;
// within one offset the output rows are distinct, so each output element is updated by at most
// one pair per offset and the visiting order of every element is the offset order.
#pragma once

#include "ppt/common.h"

namespace ppt {

// Whether the value `candidate` of the pair being visited replaces the running maximum `current`
// of one output element (`first`: no pair has reached it yet). A strictly larger value wins, so a
// tie keeps the earlier pair (the lowest kernel offset); a NaN always wins, so NaN propagates and
// the last NaN is kept. Both are the choices of torch's max_pool3d, whose window scan order is the
// kernel offset order. `x != x` tests for NaN on host and device alike.
template <typename T>
PPT_HOST_DEVICE bool max_pool_takes(T candidate, T current, bool first) {
  return first || candidate > current || candidate != candidate;
}

}  // namespace ppt
