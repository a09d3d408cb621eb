// Emulation build: the part of the CUDA runtime API that ppt's launchers and glue use, for host
// memory and synchronous launches (csrc/emulation/runtime.cpp implements it). Found before any
// CUDA toolkit header because csrc/emulation/include comes first on the include path.
#pragma once

#include <cstddef>

// Launches are synchronous on the calling thread, so a stream carries no state: launchers receive
// the null stream and pass it on.
struct ppt_emulated_stream;
using cudaStream_t = ppt_emulated_stream*;

enum cudaError_t : int {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};

// Returns and clears the error of the last failed launch on this thread, as CUDA does.
cudaError_t cudaGetLastError();
// CUDA's description of `error`; for the error of this thread's last failed launch, followed by
// what failed (which kernel, which limit or fault).
const char* cudaGetErrorString(cudaError_t error);
