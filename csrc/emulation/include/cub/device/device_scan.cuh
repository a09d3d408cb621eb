// Emulation build: cub::DeviceScan prefix sums on host memory, with CUB's two-call contract
// (d_temp_storage == nullptr: report the scratch size).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <iterator>

#include "emulation/cub_scratch.h"

namespace cub {

struct DeviceScan {
  template <typename Input, typename Output, typename NumItems>
  static cudaError_t InclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes, Input d_in, Output d_out,
                                  NumItems num_items, cudaStream_t = nullptr) {
    return scan(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, /*inclusive=*/true);
  }

  template <typename Input, typename Output, typename NumItems>
  static cudaError_t ExclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes, Input d_in, Output d_out,
                                  NumItems num_items, cudaStream_t = nullptr) {
    return scan(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, /*inclusive=*/false);
  }

 private:
  template <typename Input, typename Output, typename NumItems>
  static cudaError_t scan(void* d_temp_storage, size_t& temp_storage_bytes, Input d_in, Output d_out,
                          NumItems num_items, bool inclusive) {
    if (const cudaError_t status = ppt::emulation::cub_scratch(d_temp_storage, temp_storage_bytes);
        status != cudaSuccess || d_temp_storage == nullptr) {
      return status;
    }
    using Sum = typename std::iterator_traits<Input>::value_type;
    Sum total{};
    for (NumItems i = 0; i < num_items; ++i) {
      const Sum value = d_in[i];  // read before the write: CUB allows d_in == d_out
      if (inclusive) total += value;
      d_out[i] = total;
      if (!inclusive) total += value;
    }
    return cudaSuccess;
  }
};

}  // namespace cub
