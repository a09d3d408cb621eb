// Emulation build: there is one emulated device and its memory is host memory, so the device
// guard has nothing to switch.
#pragma once

#include <c10/core/Device.h>

namespace c10::cuda {

struct CUDAGuard {
  explicit CUDAGuard(c10::Device) {}
  explicit CUDAGuard(c10::DeviceIndex) {}
};

struct OptionalCUDAGuard {
  explicit OptionalCUDAGuard(std::optional<c10::Device>) {}
};

}  // namespace c10::cuda
