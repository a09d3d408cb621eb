// Emulation build: cub::DeviceRadixSort::SortPairs on host memory. Same contract as CUB: a first
// call with d_temp_storage == nullptr reports the scratch size; a second call sorts the pairs
// stably by bits [begin_bit, end_bit) of the keys and writes the full keys and their values.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "emulation/cub_scratch.h"

namespace cub {

struct DeviceRadixSort {
  template <typename Key, typename Value, typename NumItems>
  static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes, const Key* d_keys_in,
                               Key* d_keys_out, const Value* d_values_in, Value* d_values_out,
                               NumItems num_items, int begin_bit = 0, int end_bit = sizeof(Key) * 8,
                               cudaStream_t = nullptr) {
    if (const cudaError_t status = ppt::emulation::cub_scratch(d_temp_storage, temp_storage_bytes);
        status != cudaSuccess || d_temp_storage == nullptr) {
      return status;
    }
    if (begin_bit < 0 || end_bit > int(sizeof(Key) * 8) || begin_bit > end_bit) return cudaErrorInvalidValue;
    const int bits = end_bit - begin_bit;
    const uint64_t mask = bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
    auto sort_key = [&](int64_t i) { return (static_cast<uint64_t>(d_keys_in[i]) >> begin_bit) & mask; };
    std::vector<int64_t> order(static_cast<size_t>(num_items));
    std::iota(order.begin(), order.end(), int64_t(0));
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sort_key(a) < sort_key(b); });
    for (size_t i = 0; i < order.size(); ++i) {
      d_keys_out[i] = d_keys_in[order[i]];
      d_values_out[i] = d_values_in[order[i]];
    }
    return cudaSuccess;
  }
};

}  // namespace cub
