// Emulation build: the scratch-size protocol shared by the CUB stand-ins.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>

namespace ppt::emulation {

// CUB's device-wide calls are made twice: with no scratch to learn its size, then with it. The
// stand-ins need no scratch but still ask for one byte, so that a caller that forgets to allocate
// it (or passes a size smaller than reported) fails here as it would with CUB.
inline cudaError_t cub_scratch(void* d_temp_storage, size_t& temp_storage_bytes) {
  constexpr size_t kScratchBytes = 1;
  if (d_temp_storage == nullptr) {
    temp_storage_bytes = kScratchBytes;
    return cudaSuccess;
  }
  return temp_storage_bytes >= kScratchBytes ? cudaSuccess : cudaErrorInvalidValue;
}

}  // namespace ppt::emulation
